package npm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
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
