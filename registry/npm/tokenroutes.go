package npm

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/unireg/unireg/registry/auth"
)

// The token routes of the npm API (`npm token list|create|revoke`): only
// their wire format. The tokens themselves, their storage and the
// revocation list both protocols honour are auth.UserTokens.

type tokenView struct {
	Key           string     `json:"key"`
	Token         string     `json:"token"`
	Name          string     `json:"name,omitempty"`
	Expires       *time.Time `json:"expires,omitempty"`
	Created       time.Time  `json:"created"`
	Updated       time.Time  `json:"updated"`
	Readonly      bool       `json:"readonly"`
	CIDRWhitelist []string   `json:"cidr_whitelist"`
}

// viewOf is a token as the token API shows it. Its key is the token's id
// (auth.TokenID), the identifier `npm token revoke` sends back; never the
// hash, which would let whoever reads a list test guesses offline.
func viewOf(st *auth.UserToken, token string) tokenView {
	if token == "" {
		token = st.Preview + "…"
	}
	v := tokenView{Key: st.ID(), Token: token, Name: st.Name, Created: st.Created, Updated: st.Created, Readonly: st.Readonly, CIDRWhitelist: st.CIDR}
	if !st.Expires.IsZero() {
		v.Expires = &st.Expires
	}
	return v
}

// narrowToPackages limits a token to the named packages and npm scopes
// (@acme): for each, the actions the creator has there. OCI grants are
// dropped: the request names npm packages only.
func narrowToPackages(creator auth.Scopes, packages, npmScopes []string) (auth.Scopes, error) {
	var names []string
	for _, p := range packages {
		if err := ValidName(p); err != nil {
			return nil, newError(http.StatusBadRequest, "packages: %v", err)
		}
		names = append(names, p)
	}
	for _, s := range npmScopes {
		s = "@" + strings.TrimPrefix(s, "@")
		if err := ValidName(s + "/x"); err != nil {
			return nil, newError(http.StatusBadRequest, "scopes: %v", err)
		}
		names = append(names, s+"/*")
	}
	var out auth.Scopes
	for _, n := range names {
		for _, action := range []string{auth.ActionRead, auth.ActionWrite, auth.ActionDelete} {
			sc := auth.Scope{Protocol: auth.ProtocolNPM, Type: auth.TypePackage, Name: n, Action: action}
			if creator.Covers(auth.Scopes{sc}) {
				out = append(out, sc)
			}
		}
	}
	if len(out) == 0 {
		return nil, newError(http.StatusForbidden, "you have no access to the packages and scopes asked for")
	}
	return out, nil
}

// manageable reports whether the caller may see and revoke st: its scopes
// cover everything st may do, so that a token narrowed to some packages
// manages only tokens as narrow as itself.
func manageable(id *auth.Identity, st *auth.UserToken) bool {
	scopes, ok := st.Grants()
	return ok && id.Scopes.Covers(scopes)
}

func (h *Handler) listTokens(q *request) error {
	if h.opts.DisableTokenAPI {
		return newError(http.StatusNotFound, "the token API is disabled on this registry")
	}
	if err := h.requireUser(q); err != nil {
		return err
	}
	list, err := h.tokens.List(q.R.Context(), q.Subject())
	if err != nil {
		return err
	}
	objects := make([]tokenView, 0, len(list))
	for _, st := range list {
		if manageable(q.Caller, st) {
			objects = append(objects, viewOf(st, ""))
		}
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"objects": objects, "total": len(objects), "urls": map[string]any{}})
	return nil
}

// createToken makes a token that carries at most the caller's scopes (their
// read-only form when asked), stored hashed.
func (h *Handler) createToken(q *request) error {
	if h.opts.DisableTokenAPI {
		return newError(http.StatusNotFound, "the token API is disabled on this registry")
	}
	if err := h.requireUser(q); err != nil {
		return err
	}
	// npm 11 sends granular-token fields; older clients send readonly.
	var body struct {
		Password    string   `json:"password"`
		Readonly    bool     `json:"readonly"`
		CIDR        []string `json:"cidr_whitelist"`
		Name        string   `json:"name"`
		Packages    []string `json:"packages"`
		Scopes      []string `json:"scopes"`
		Permission  string   `json:"packages_and_scopes_permission"`
		ExpiresDays int      `json:"expires"`
	}
	if err := readJSON(q, 64<<10, &body); err != nil {
		return err
	}
	if len(body.CIDR) > 0 {
		return newError(http.StatusBadRequest, "CIDR-restricted tokens are not supported")
	}
	// npm asks for the password first: it must be a token of the same user.
	if body.Password != "" {
		checker, ok := h.guard.Gate.(CredentialChecker)
		if !ok {
			return newError(http.StatusNotImplemented, "token creation is not available on this registry")
		}
		again, err := checker.IdentifyCredentials(q.R.Context(), auth.Credentials{Password: body.Password})
		if err != nil || again.Subject != q.Caller.Subject {
			return newError(http.StatusUnauthorized, "the password must be a valid token of %s", q.Subject())
		}
	}
	if len(q.Caller.Scopes) == 0 && !q.Caller.Issued() {
		return newError(http.StatusForbidden, "%s has no scopes to hand to a new token", q.Subject())
	}
	if err := mayManageTokens(q.Caller); err != nil {
		return err
	}
	if !q.Caller.Tracked() || q.Caller.TokenID == "" {
		// The new token must stop working with its parent, and nothing would
		// tell when this credential does.
		return newError(http.StatusForbidden, "tokens cannot be made with this credential: the registry cannot tell when it stops working")
	}
	readonly := body.Readonly || body.Permission == "read-only"
	granted := q.Caller.Scopes
	if len(body.Packages) > 0 || len(body.Scopes) > 0 {
		var err error
		if granted, err = narrowToPackages(q.Caller.Scopes, body.Packages, body.Scopes); err != nil {
			return err
		}
	}
	scopes := granted.Strings()
	if readonly {
		scopes = readonlyScopes(granted)
	}
	var expires time.Time
	if body.ExpiresDays > 0 {
		expires = time.Now().UTC().AddDate(0, 0, body.ExpiresDays)
	}
	// A token made with an expiring token must not outlive it.
	if limit := q.Caller.ExpiresAt; !limit.IsZero() && (expires.IsZero() || expires.After(limit)) {
		expires = limit.UTC()
	}
	token, st, err := h.tokens.Create(q.R.Context(), auth.UserTokenSpec{
		User: q.Subject(), Name: body.Name, Scopes: scopes, Readonly: readonly, Expires: expires, Parent: q.Caller.TokenID,
	})
	if err != nil {
		return err
	}
	h.emit(q, Event{Action: "token.created"})
	writeJSON(q.W, q.R, http.StatusOK, viewOf(st, token))
	return nil
}

func (h *Handler) revokeToken(q *request) error {
	if h.opts.DisableTokenAPI {
		return newError(http.StatusNotFound, "the token API is disabled on this registry")
	}
	if err := h.requireUser(q); err != nil {
		return err
	}
	if err := mayManageTokens(q.Caller); err != nil {
		return err
	}
	key := q.route.arg
	if len(key) < 6 || strings.ContainsAny(key, "/.") {
		return newError(http.StatusBadRequest, "invalid token key")
	}
	// The client sends the key of the list (the token's id) or a prefix of
	// it; resolve it among the caller's own tokens. Only the id is matched,
	// never more of the hash: the answers (403 for a token the caller may
	// not revoke, 404 for none) would spell it out digit by digit.
	list, err := h.tokens.List(q.R.Context(), q.Subject())
	if err != nil {
		return err
	}
	var match []*auth.UserToken
	for _, st := range list {
		if strings.HasPrefix(st.ID(), key) {
			match = append(match, st)
		}
	}
	if len(match) != 1 {
		return newError(http.StatusNotFound, "no single token of %s matches %s", q.Subject(), key)
	}
	if !manageable(q.Caller, match[0]) {
		return newError(http.StatusForbidden, "token %s may do more than the token revoking it: revoke it with a token at least as broad", match[0].ID())
	}
	if err := h.tokens.RevokeOwn(q.R.Context(), q.Subject(), match[0].Key); err != nil {
		if errors.Is(err, auth.ErrTokenNotFound) {
			return newError(http.StatusNotFound, "token %s not found", key)
		}
		return err
	}
	h.emit(q, Event{Action: "token.revoked"})
	q.W.WriteHeader(http.StatusNoContent)
	return nil
}

// mayManageTokens refuses token creation and revocation to a token-flow JWT
// (it lives minutes; a token made from it would outlive it) and to a
// read-only credential (one that may only read or pull: a CI download
// token must not mint or revoke credentials).
func mayManageTokens(id *auth.Identity) error {
	if id.Issued() {
		return newError(http.StatusForbidden, "a token-flow JWT cannot manage tokens; use a registry token")
	}
	for _, s := range id.Scopes {
		switch s.Action {
		case auth.ActionRead, auth.ActionPull:
		default:
			return nil
		}
	}
	return newError(http.StatusForbidden, "a read-only token cannot manage tokens")
}

// readonlyScopes turns every grant into its read-only form: oci pull, npm read.
func readonlyScopes(scopes auth.Scopes) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s auth.Scope) {
		if k := s.String(); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, s := range scopes {
		switch s.Protocol {
		case auth.ProtocolOCI:
			s.Action = auth.ActionPull
			add(s)
		case auth.ProtocolNPM:
			s.Action = auth.ActionRead
			add(s)
		default: // "*": both protocols
			oci, npm := s, s
			oci.Protocol, oci.Action = auth.ProtocolOCI, auth.ActionPull
			npm.Protocol, npm.Action = auth.ProtocolNPM, auth.ActionRead
			if s.Type == "*" || s.Type == auth.TypeRepository {
				oci.Type = auth.TypeRepository
				add(oci)
			}
			if s.Type == "*" || s.Type == auth.TypePackage {
				npm.Type = auth.TypePackage
				add(npm)
			}
		}
	}
	return out
}
