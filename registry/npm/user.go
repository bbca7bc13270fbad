package npm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/limit"
)

// CredentialChecker authenticates credentials that arrive in a body (npm
// login, token creation); *auth.Service is one.
type CredentialChecker interface {
	IdentifyCredentials(ctx context.Context, c auth.Credentials) (*auth.Identity, error)
}

func readJSON(q *request, max int64, v any) error {
	b, err := io.ReadAll(io.LimitReader(q.R.Body, max+1))
	if err != nil {
		return newError(http.StatusBadRequest, "read body: %v", err)
	}
	if int64(len(b)) > max {
		return newError(http.StatusRequestEntityTooLarge, "body exceeds %d bytes", max)
	}
	if err := limit.JSONDepth(b, limit.DefaultJSONDepth); err != nil {
		return newError(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return newError(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	return nil
}

// login is npm's legacy login: the password is a registry token, and the
// answer hands that same token back, so `npm login` works with any token a
// user was given.
func (h *Handler) login(q *request) error {
	var body struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := readJSON(q, 64<<10, &body); err != nil {
		return err
	}
	if body.Password == "" {
		return newError(http.StatusBadRequest, "the password must be a registry token")
	}
	checker, ok := h.guard.Gate.(CredentialChecker)
	if !ok {
		return newError(http.StatusNotImplemented, "login is not available on this registry")
	}
	id, err := checker.IdentifyCredentials(q.R.Context(), auth.Credentials{Username: body.Name, Password: body.Password})
	if err != nil {
		return newError(http.StatusUnauthorized, "invalid token: use a registry token as the password")
	}
	writeJSON(q.W, q.R, http.StatusCreated, map[string]any{
		"ok": true, "id": "org.couchdb.user:" + q.route.arg, "token": body.Password, "username": protocol.Subject(id),
	})
	return nil
}

// getUser answers the user lookup `npm owner add` makes.
func (h *Handler) getUser(q *request) error {
	if err := h.requireUser(q); err != nil {
		return err
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"_id": "org.couchdb.user:" + q.route.arg, "name": q.route.arg, "email": ""})
	return nil
}

// logout revokes the token the request is made with.
func (h *Handler) logout(q *request) error {
	if h.opts.DisableTokenAPI {
		return h.logoutWithoutTokenAPI(q)
	}
	if err := q.Identify(); err != nil {
		return err
	}
	if q.Caller.Issued() {
		return h.logoutOfJWT(q)
	}
	if err := h.requireUser(q); err != nil {
		return err
	}
	presented := auth.CredentialsFrom(q.R)
	token := presented.Bearer
	if token == "" {
		token = presented.Password
	}
	if token == "" || token != q.route.arg {
		return newError(http.StatusForbidden, "only the token used for this request can be logged out")
	}
	if err := h.tokens.Revoke(q.R.Context(), token); err != nil {
		return err
	}
	h.emit(q, Event{Action: "token.revoked"})
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": true})
	return nil
}

// logoutOfJWT answers `npm logout` made with a JWT of the token flow, which
// cannot be revoked: it lives until its `exp` (or until the token it was
// bought with stops working). As with the token API off, the answer is a 200
// with the reason in the npm-notice header that npm prints, so that npm still
// forgets the JWT locally.
func (h *Handler) logoutOfJWT(q *request) error {
	msg := "a token-flow JWT cannot be revoked: it stays valid until it expires at " +
		q.Caller.ExpiresAt.UTC().Format(time.RFC3339) + "; revoke the registry token it was bought with to end it sooner"
	q.W.Header().Set("npm-notice", msg)
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": false, "error": msg})
	return nil
}

// logoutWithoutTokenAPI answers `npm logout` when the registry manages no
// tokens: nothing checks a revocation then, so none is recorded, and the
// caller is told the token stays valid. The answer is a 200 all the same,
// with the message in the npm-notice header that npm prints: npm treats any
// error status as a failed logout and keeps the token in .npmrc, and
// forgetting it locally is all a logout can still do.
func (h *Handler) logoutWithoutTokenAPI(q *request) error {
	const msg = "token management is disabled on this registry: the token was not revoked and stays valid"
	q.W.Header().Set("npm-notice", msg)
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": false, "error": msg})
	return nil
}

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
func viewOf(st *storedToken, token string) tokenView {
	if token == "" {
		token = st.Preview + "…"
	}
	v := tokenView{Key: st.id(), Token: token, Name: st.Name, Created: st.Created, Updated: st.Created, Readonly: st.Readonly, CIDRWhitelist: st.CIDR}
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
func manageable(id *auth.Identity, st *storedToken) bool {
	scopes, err := auth.ParseScopes(st.Scopes)
	return err == nil && id.Scopes.Covers(scopes)
}

func (h *Handler) listTokens(q *request) error {
	if h.opts.DisableTokenAPI {
		return newError(http.StatusNotFound, "the token API is disabled on this registry")
	}
	if err := h.requireUser(q); err != nil {
		return err
	}
	list, err := h.tokens.list(q.R.Context(), q.Subject())
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
	token, st, err := h.tokens.create(q.R.Context(), tokenSpec{
		user: q.Subject(), name: body.Name, scopes: scopes, readonly: readonly, expires: expires, parent: q.Caller.TokenID,
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
	list, err := h.tokens.list(q.R.Context(), q.Subject())
	if err != nil {
		return err
	}
	var match []*storedToken
	for _, st := range list {
		if strings.HasPrefix(st.id(), key) {
			match = append(match, st)
		}
	}
	if len(match) != 1 {
		return newError(http.StatusNotFound, "no single token of %s matches %s", q.Subject(), key)
	}
	if !manageable(q.Caller, match[0]) {
		return newError(http.StatusForbidden, "token %s may do more than the token revoking it: revoke it with a token at least as broad", match[0].id())
	}
	if err := h.tokens.delete(q.R.Context(), q.Subject(), match[0].Key); err != nil {
		if errors.Is(err, errTokenNotFound) {
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
