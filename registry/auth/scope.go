// Package auth is the auth core shared by both protocols: the scope language
// (scope.go: Scope, DockerScope), identities, the pluggable Authenticator and
// Authorizer interfaces, the credentials of the registry itself (the
// auth-store tokens of a file or Secret, tokenstore.go; the tokens users make
// through the npm token API and the revocations both protocols honour,
// usertokens.go), and the JWT token service of the Docker token flow.
package auth

import (
	"fmt"
	"strings"
)

// Protocols, resource types and actions of the scope language.
const (
	ProtocolOCI = "oci"
	ProtocolNPM = "npm"

	TypeRepository = "repository"
	TypePackage    = "package"

	ActionPull   = "pull"
	ActionPush   = "push"
	ActionRead   = "read"
	ActionWrite  = "write"
	ActionDelete = "delete"
)

// Scope is a parsed grant `{protocol}:{type}:{name}:{action}`. Each segment
// may be `*`; in the name, `*` matches any run of characters including `/`.
// The same four fields name what a request wants to do (an Access), so
// grants and accesses are one type: ParseScope is the one parser of the
// grammar, which the CRD's pattern is tested against
// (api/v1alpha1/scopepattern_test.go), and String the one way back.
type Scope struct {
	Protocol string
	Type     string
	Name     string
	Action   string
}

// Access is one thing a request wants to do: action on a named resource. It
// is a Scope without wildcards; the name says which side of Allows it is on.
type Access = Scope

// String renders the scope in its grammar.
func (s Scope) String() string {
	return s.Protocol + ":" + s.Type + ":" + s.Name + ":" + s.Action
}

// DockerScope is a scope of Docker's token flow, `TYPE:NAME:ACTIONS`
// (`repository:team/app:pull,push`, `registry:catalog:*`): what a client
// asks the realm for, what a Bearer challenge names, and, as an entry of a
// JWT's `access` claim, what the JWT grants. Docker's grammar is its own
// (no protocol, several actions); Scope is the registry's.
type DockerScope struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// ParseDockerScope parses one Docker scope. The name is everything between
// the first and the last ':', so a name may hold one (a registry host with
// a port, as Distribution allows).
func ParseDockerScope(s string) (DockerScope, error) {
	typ, rest, ok := strings.Cut(s, ":")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i < 0 {
		return DockerScope{}, fmt.Errorf("docker scope %q: want type:name:actions", s)
	}
	return DockerScope{Type: typ, Name: rest[:i], Actions: strings.Split(rest[i+1:], ",")}, nil
}

// String renders the scope in Docker's grammar.
func (d DockerScope) String() string {
	return d.Type + ":" + d.Name + ":" + strings.Join(d.Actions, ",")
}

var validActions = map[string][]string{
	ProtocolOCI: {ActionPull, ActionPush, ActionDelete},
	ProtocolNPM: {ActionRead, ActionWrite, ActionDelete},
}

var validTypes = map[string]string{ProtocolOCI: TypeRepository, ProtocolNPM: TypePackage}

// ParseScope parses one scope. The bare `*` means everything.
func ParseScope(s string) (Scope, error) {
	if s == "*" {
		return Scope{"*", "*", "*", "*"}, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) != 4 {
		return Scope{}, fmt.Errorf("scope %q: want protocol:type:name:action (4 parts separated by ':'), got %d part(s)", s, len(parts))
	}
	sc := Scope{parts[0], parts[1], parts[2], parts[3]}
	if sc.Protocol != "*" {
		if _, ok := validTypes[sc.Protocol]; !ok {
			return Scope{}, fmt.Errorf("scope %q: unknown protocol %q (want oci, npm or *)", s, sc.Protocol)
		}
	}
	if sc.Type != "*" && sc.Protocol != "*" && sc.Type != validTypes[sc.Protocol] {
		return Scope{}, fmt.Errorf("scope %q: type %q is not valid for %s (want %s or *)", s, sc.Type, sc.Protocol, validTypes[sc.Protocol])
	}
	if sc.Type != "*" && sc.Type != TypeRepository && sc.Type != TypePackage {
		return Scope{}, fmt.Errorf("scope %q: unknown type %q", s, sc.Type)
	}
	if sc.Name == "" {
		return Scope{}, fmt.Errorf("scope %q: empty name (use * for every name)", s)
	}
	if strings.ContainsAny(sc.Name, " \t\r\n\x00") {
		return Scope{}, fmt.Errorf("scope %q: name contains whitespace or NUL", s)
	}
	// With any protocol, a named type still fixes whose actions apply:
	// `*:repository:x:read` could never match anything.
	protocol := sc.Protocol
	if protocol == "*" {
		for p, typ := range validTypes {
			if sc.Type == typ {
				protocol = p
			}
		}
	}
	if sc.Action != "*" && !actionKnown(protocol, sc.Action) {
		return Scope{}, fmt.Errorf("scope %q: unknown action %q (oci: pull, push, delete; npm: read, write, delete; or *)", s, sc.Action)
	}
	return sc, nil
}

func actionKnown(protocol, action string) bool {
	for p, actions := range validActions {
		if protocol != "*" && p != protocol {
			continue
		}
		for _, a := range actions {
			if a == action {
				return true
			}
		}
	}
	return false
}

// ParseScopes parses a list of scopes, failing on the first invalid one.
func ParseScopes(list []string) (Scopes, error) {
	out := make(Scopes, 0, len(list))
	for _, s := range list {
		sc, err := ParseScope(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// Allows reports whether the scope grants a. Pushing implies pulling and
// writing implies reading: a client that may change content must be able to
// read what it changes (docker push checks blobs before uploading them).
func (s Scope) Allows(a Access) bool {
	return segmentMatch(s.Protocol, a.Protocol) &&
		segmentMatch(s.Type, a.Type) &&
		actionMatch(s.Action, a.Action) &&
		globMatch(s.Name, a.Name)
}

func segmentMatch(pattern, v string) bool { return pattern == "*" || pattern == v }

func actionMatch(granted, wanted string) bool {
	switch {
	case granted == "*" || granted == wanted:
		return true
	case granted == ActionPush && wanted == ActionPull:
		return true
	case granted == ActionWrite && wanted == ActionRead:
		return true
	}
	return false
}

// GlobMatch reports whether name matches pattern as a scope's resource
// name does: `*` matches any run of characters, `/` included (so "team/*"
// matches every repository below team/). Retention rules use it too.
func GlobMatch(pattern, name string) bool { return globMatch(pattern, name) }

// globMatch matches name against pattern where `*` matches any run of
// characters, `/` included. It runs in O(len(pattern)*len(name)) at worst.
func globMatch(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	if !strings.Contains(pattern, "*") {
		return pattern == name
	}
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			starP, starN = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case starP >= 0:
			starN++
			p, n = starP+1, starN
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Scopes is a set of grants.
type Scopes []Scope

// Allows reports whether any scope grants a.
func (ss Scopes) Allows(a Access) bool {
	for _, s := range ss {
		if s.Allows(a) {
			return true
		}
	}
	return false
}

// Covers reports whether ss grants at least everything other grants: every
// access one of other's scopes allows, some scope of ss allows too. It
// decides whether one credential may manage another. Name patterns are
// compared conservatively: a pattern covers itself, `*` covers every name,
// and `prefix*` covers names and patterns that start with prefix.
func (ss Scopes) Covers(other Scopes) bool {
	for _, o := range other {
		for _, a := range elementaryAccesses(o) {
			if !ss.coversOne(a, o.Name) {
				return false
			}
		}
	}
	return true
}

// coversOne reports whether some scope grants action a on every name the
// pattern name matches.
func (ss Scopes) coversOne(a Access, name string) bool {
	for _, s := range ss {
		if segmentMatch(s.Protocol, a.Protocol) && segmentMatch(s.Type, a.Type) &&
			actionMatch(s.Action, a.Action) && patternCovers(s.Name, name) {
			return true
		}
	}
	return false
}

// elementaryAccesses expands the wildcards of a scope's protocol, type and
// action into the accesses they stand for (the name stays a pattern).
func elementaryAccesses(s Scope) []Access {
	var out []Access
	for _, p := range []string{ProtocolOCI, ProtocolNPM} {
		if !segmentMatch(s.Protocol, p) || !segmentMatch(s.Type, validTypes[p]) {
			continue
		}
		for _, action := range validActions[p] {
			if actionMatch(s.Action, action) {
				out = append(out, Access{Protocol: p, Type: validTypes[p], Name: s.Name, Action: action})
			}
		}
	}
	return out
}

// patternCovers reports whether every name pattern b matches, pattern a
// matches too (conservatively: false when unsure).
func patternCovers(a, b string) bool {
	if a == "*" || a == b {
		return true
	}
	prefix, ok := strings.CutSuffix(a, "*")
	return ok && !strings.Contains(prefix, "*") && strings.HasPrefix(b, prefix)
}

// Strings renders every scope.
func (ss Scopes) Strings() []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return out
}
