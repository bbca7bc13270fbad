package npm

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage"
)

// The account commands of npm, mapped onto unireg's model: there are no
// users, organisations or teams, only tokens whose scopes say who may do
// what. What maps is answered from the scopes, the identity and the
// packages' stars; the rest with why it is not supported, as a 405 whose
// message npm prints (a 404 would make npm explain it as a missing package
// or permission, a 5xx would make it retry).

// starredByUser answers `npm stars [user]`: GET
// /-/_view/starredByUser?key="<user>" (a CouchDB view), the packages the
// user starred among those the caller may read, by name.
func (h *Handler) starredByUser(q *request) error {
	raw := q.R.URL.Query().Get("key")
	var user string
	if raw == "" || json.Unmarshal([]byte(raw), &user) != nil {
		return newError(http.StatusBadRequest, `the key parameter must name a user as a JSON string: key="name"`)
	}
	if err := q.Identify(); err != nil {
		return err
	}
	rows := []map[string]any{}
	err := h.eachReadablePackage(q, func(name string, c *cachedDoc) {
		if starred, _ := obj(c.doc["users"])[user].(bool); starred {
			rows = append(rows, map[string]any{"id": name, "key": user, "value": name})
		}
	})
	if err != nil {
		return err
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"rows": rows})
	return nil
}

// eachReadablePackage calls fn, in name order, for every package held here
// that the caller may read.
func (h *Handler) eachReadablePackage(q *request, fn func(name string, c *cachedDoc)) error {
	if !q.MaySeeSome(auth.ActionRead) {
		return nil
	}
	names, err := h.packageNames(q.R.Context())
	if err != nil {
		return err
	}
	return h.eachReadable(q, names, fn)
}

// eachReadable is eachReadablePackage over the given names.
func (h *Handler) eachReadable(q *request, names []string, fn func(name string, c *cachedDoc)) error {
	sort.Strings(names)
	for _, name := range names {
		if !q.Allowed(name, auth.ActionRead) {
			continue
		}
		c, err := h.packages.cached(q.R.Context(), name)
		if err != nil {
			return err
		}
		if c != nil {
			fn(name, c)
		}
	}
	return nil
}

// visibility answers `npm access get status`: a package is public when the
// registry's anonymous scopes let anyone read it.
func (h *Handler) visibility(q *request) error {
	if _, err := h.readablePackage(q); err != nil {
		return err
	}
	public := true
	if h.guard.Gate != nil {
		public = h.guard.Gate.Allowed(q.R.Context(), &auth.Identity{Anonymous: true}, auth.Access{
			Protocol: auth.ProtocolNPM, Type: auth.TypePackage, Name: q.route.pkg, Action: auth.ActionRead,
		})
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"public": public})
	return nil
}

// orgPackages answers `npm access list packages @scope`: GET
// /-/org/<scope>/package, the scope's packages the caller may read, each
// with the caller's access. A scope where the caller may read nothing is a
// 404, whether or not it holds packages, so that npm goes on to ask for a
// user of that name (userPackages), as it does on the public registry.
func (h *Handler) orgPackages(q *request) error {
	if err := q.Identify(); err != nil {
		return err
	}
	scope := "@" + q.route.arg
	notFound := newError(http.StatusNotFound, "no package of %s that you may read", truncate(scope))
	if !scopeRE.MatchString(scope) || !q.MaySeeSome(auth.ActionRead) {
		return notFound
	}
	entries, err := h.store.List(q.R.Context(), packagesKey+"/"+scope)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = scope + "/" + e
	}
	access := map[string]string{}
	if err := h.eachReadable(q, names, func(name string, _ *cachedDoc) { access[name] = h.accessOf(q, name) }); err != nil {
		return err
	}
	if len(access) == 0 {
		return notFound
	}
	writeJSON(q.W, q.R, http.StatusOK, access)
	return nil
}

// userPackages answers `npm access list packages [user]`: GET
// /-/user/<name>/package. Only the caller's own list can be told: every
// package the caller may read, with read or write.
func (h *Handler) userPackages(q *request) error {
	if err := h.requireUser(q); err != nil {
		return err
	}
	if q.route.arg != q.Subject() {
		return unsupported("npm access list packages of another user",
			"what anyone may do is the scopes of their tokens, and only the caller's can be read; run it without a user")
	}
	access := map[string]string{}
	if err := h.eachReadablePackage(q, func(name string, _ *cachedDoc) { access[name] = h.accessOf(q, name) }); err != nil {
		return err
	}
	writeJSON(q.W, q.R, http.StatusOK, access)
	return nil
}

// accessOf is the caller's access to a package in npm's words.
func (h *Handler) accessOf(q *request, name string) string {
	if q.Allowed(name, auth.ActionWrite) {
		return "write"
	}
	return "read"
}

// profile answers `npm profile get` (GET /-/npm/v1/user) from the identity,
// and refuses its changes (POST).
func (h *Handler) profile(q *request) error {
	if err := h.requireUser(q); err != nil {
		return err
	}
	if q.R.Method == http.MethodPost {
		var body struct {
			TFA *struct {
				Mode string `json:"mode"`
			} `json:"tfa"`
		}
		if err := readJSON(q, 64<<10, &body); err != nil {
			return err
		}
		switch {
		case body.TFA != nil && body.TFA.Mode == "disable":
			return unsupported("npm profile disable-2fa", "it has no one-time passwords")
		case body.TFA != nil:
			return unsupported("npm profile enable-2fa", "it has no one-time passwords; tokens are the credentials, and a token with write is what publishing needs")
		}
		return unsupported("npm profile set", "the profile is the identity of the token (its user name), set where the token is made")
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{
		"name": q.Subject(), "email": "", "email_verified": false, "tfa": false,
	})
	return nil
}

// unsupportedCommand answers the account commands that have no counterpart
// in unireg's model.
func (h *Handler) unsupportedCommand(q *request) error {
	if err := q.Identify(); err != nil {
		return err
	}
	const byScopes = "who may do what is the scopes of each token (npm:package:@scope/*:read|write|delete)"
	m := q.R.Method
	switch q.route.arg {
	case unsupportedOrg:
		return unsupported("npm org", "it has no organisations or members; "+byScopes)
	case unsupportedTeam:
		return unsupported("npm team", "it has no teams; "+byScopes)
	case unsupportedTeamPackages:
		switch m {
		case http.MethodPut:
			return unsupported("npm access grant", "it has no teams; access is granted by the scopes of tokens (npm:package:NAME:read|write|delete)")
		case http.MethodDelete:
			return unsupported("npm access revoke", "it has no teams; access ends when the tokens that grant it are changed or revoked")
		}
		return unsupported("npm access list packages of a team", "it has no teams; npm access list packages lists yours")
	case unsupportedTrust:
		return unsupported("npm trust", "it has no trusted publishing (OIDC); publish with a token that has write on the package")
	case unsupportedStage:
		return unsupported("npm stage", "it has no staged publishes: a publish is visible at once; publish with npm publish")
	case unsupportedCollaborators:
		return unsupported("npm access list collaborators", "access belongs to tokens, which it cannot list by package; npm access list packages lists yours")
	case unsupportedAccess:
		var body map[string]any
		if err := readJSON(q, 64<<10, &body); err != nil {
			return err
		}
		if _, ok := body["access"]; !ok {
			return unsupported("npm access set mfa", "it has no one-time passwords; publishing needs a token with write on the package")
		}
		return unsupported("npm access set status", "a package is public when the registry's anonymous scopes let anyone read it "+
			"(registry --anonymous 'npm:package:NAME:read'); npm access get status shows which")
	}
	return newError(http.StatusNotFound, "not found")
}

// unsupported is the answer to a command the registry does not offer.
func unsupported(command, why string) error {
	return newError(http.StatusMethodNotAllowed, "%s is not supported by this registry: %s", command, why)
}
