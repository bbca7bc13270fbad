package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// TokenHandler serves the realm of the Docker token flow (`GET /token` and the
// OAuth2 password grant `POST /token`): it authenticates the caller, keeps of
// the requested OCI access only what the caller may do, and answers with a
// short-lived JWT. A JWT is never a credential here: like Distribution's token
// servers, the realm takes only the credentials the JWT would be bought
// with, so no JWT is renewed past the life of the credential behind it.
type TokenHandler struct {
	Service *Service
	// Mirrored, if set, maps a repository a client asks for with the
	// realm's `ns` parameter (a pull through a mirror: containerd asks for
	// "repository:library/nginx:pull" when it pulls docker.io's) to the
	// repository the registry serves it as; the token grants that name.
	Mirrored func(ns, name string) string
}

type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeHTTP implements http.Handler.
func (h TokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	issuer := h.Service.Issuer()
	if issuer == nil {
		writeTokenError(w, http.StatusNotFound, "UNSUPPORTED", "the token flow is disabled")
		return
	}
	creds := CredentialsFrom(r)
	var scopes []string
	switch r.Method {
	case http.MethodGet:
		scopes = r.URL.Query()["scope"]
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			writeTokenError(w, http.StatusBadRequest, "UNSUPPORTED", "invalid form body")
			return
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			writeTokenError(w, http.StatusBadRequest, "UNSUPPORTED", "unsupported grant_type "+quoteShort(gt)+": only password is supported")
			return
		}
		if u, p := r.PostForm.Get("username"), r.PostForm.Get("password"); u != "" || p != "" {
			creds = Credentials{Username: u, Password: p}
		}
		scopes = r.PostForm["scope"]
	default:
		w.Header().Set("Allow", "GET, POST")
		writeTokenError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed")
		return
	}
	if svc := r.FormValue("service"); svc != "" && svc != issuer.Service() {
		writeTokenError(w, http.StatusBadRequest, "UNSUPPORTED", "unknown service "+quoteShort(svc))
		return
	}
	if looksLikeJWT(creds.Bearer) {
		w.Header().Set("WWW-Authenticate", `Basic realm="unireg"`)
		writeTokenError(w, http.StatusUnauthorized, "UNAUTHORIZED", "a JWT cannot buy another JWT: present the registry token it was bought with")
		return
	}
	id, err := h.Service.IdentifyCredentials(r.Context(), creds)
	if err != nil && !errors.Is(err, ErrInvalidCredentials) {
		// The credentials could not be checked (storage down): retry later.
		w.Header().Set("Retry-After", "1")
		writeTokenError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "credentials cannot be checked now; retry later")
		return
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="unireg"`)
		writeTokenError(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid credentials")
		return
	}
	access := h.grant(r, id, scopes, r.URL.Query().Get("ns"))
	var mountable []string
	for _, ra := range h.pullGrants(id) {
		mountable = append(mountable, ra.Name)
	}
	grant := Grant{Subject: id.Subject, Access: access, Mountable: mountable, NotAfter: id.ExpiresAt}
	if id.Anonymous {
		grant.Subject = ""
	} else if id.tracked {
		grant.TokenID = id.TokenID
	}
	jwt, err := issuer.IssueGrant(grant)
	if err != nil {
		writeTokenError(w, http.StatusInternalServerError, "UNKNOWN", "could not sign token")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(tokenResponse{
		Token: jwt.Token, AccessToken: jwt.Token,
		ExpiresIn: int(jwt.ExpiresAt.Sub(jwt.IssuedAt).Seconds()),
		IssuedAt:  jwt.IssuedAt.UTC().Format(time.RFC3339),
	})
}

// grant keeps, of every requested `repository:NAME:ACTIONS`, the actions the
// identity may perform. A `registry:catalog:*` request carries the caller's
// own pull grants into the token, so the catalog it lists stays filtered.
func (h TokenHandler) grant(r *http.Request, id *Identity, requested []string, ns string) []ResourceActions {
	var out []ResourceActions
	for _, param := range requested {
		for _, item := range strings.Fields(param) {
			ds, err := ParseDockerScope(item)
			if err != nil {
				continue
			}
			switch {
			case ds.Type == "registry" && ds.Name == "catalog":
				out = append(out, h.pullGrants(id)...)
			case ds.Type == TypeRepository && !strings.Contains(ds.Name, "*"):
				if ns != "" && h.Mirrored != nil {
					ds.Name = h.Mirrored(ns, ds.Name)
				}
				if ra := h.grantRepository(r, id, ds.Name, ds.Actions); ra != nil {
					out = append(out, *ra)
				}
			}
		}
	}
	return out
}

func (h TokenHandler) grantRepository(r *http.Request, id *Identity, name string, actions []string) *ResourceActions {
	var granted []string
	for _, a := range expandActions(actions) {
		if h.Service.Allowed(r.Context(), id, Access{ProtocolOCI, TypeRepository, name, a}) {
			granted = append(granted, a)
		}
	}
	if granted == nil {
		granted = []string{}
	}
	return &ResourceActions{Type: TypeRepository, Name: name, Actions: granted}
}

// expandActions expands `*` and drops unknown actions, which a grant of `*`
// would otherwise copy into the token.
func expandActions(actions []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range actions {
		list := []string{a}
		if a == "*" {
			list = validActions[ProtocolOCI]
		}
		for _, x := range list {
			if !seen[x] && actionKnown(ProtocolOCI, x) {
				seen[x] = true
				out = append(out, x)
			}
		}
	}
	return out
}

// pullGrants turns the identity's (and anonymous) pull grants into access
// entries with name patterns.
func (h TokenHandler) pullGrants(id *Identity) []ResourceActions {
	var out []ResourceActions
	for _, sc := range append(append(Scopes{}, h.Service.Anonymous()...), id.Scopes...) {
		if segmentMatch(sc.Protocol, ProtocolOCI) && segmentMatch(sc.Type, TypeRepository) && actionMatch(sc.Action, ActionPull) {
			out = append(out, ResourceActions{Type: TypeRepository, Name: sc.Name, Actions: []string{ActionPull}})
		}
	}
	return out
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return `"` + s + `"`
}

func writeTokenError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"code": code, "message": msg}},
	})
}
