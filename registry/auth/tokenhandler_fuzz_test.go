package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// fuzzUsers authenticates a user name with the password "pw".
type fuzzUsers map[string]Scopes

func (u fuzzUsers) Authenticate(_ context.Context, c Credentials) (*Identity, error) {
	if sc, ok := u[c.Username]; ok && c.Password == "pw" {
		return &Identity{Subject: c.Username, Scopes: sc}, nil
	}
	return nil, ErrInvalidCredentials
}

// FuzzTokenRequest: whatever scope, service and grant_type parameters a GET
// or POST to the token endpoint carries, a token is issued only for the
// configured service (and only for the password grant), and each entry of
// its access grants a known OCI action on a repository that the request
// asked for, by name and action (or `*`), and that the caller may perform;
// the only other entries are the caller's own pull grants, and only when the
// request asked for the catalog.
func FuzzTokenRequest(f *testing.F) {
	must := func(list ...string) Scopes {
		ss, err := ParseScopes(list)
		if err != nil {
			f.Fatal(err)
		}
		return ss
	}
	users := fuzzUsers{
		"admin":  must("*"),
		"team":   must("oci:repository:team/*:*", "npm:package:*:write"),
		"reader": must("oci:repository:*:pull"),
	}
	issuer, err := NewJWTIssuer(JWTIssuerOptions{Key: testKey, Service: "unireg"})
	if err != nil {
		f.Fatal(err)
	}
	svc := NewService(ServiceOptions{Authenticator: users, Anonymous: must("oci:repository:public/*:pull"), Issuer: issuer})
	h := TokenHandler{Service: svc}

	for _, s := range []struct {
		post                 bool
		user, scope1, scope2 string
		service, grantType   string
	}{
		{false, "team", "repository:team/app:pull,push", "", "unireg", ""},
		{false, "", "repository:public/x:pull,push", "repository:private:pull", "", ""},
		{false, "admin", "repository:a:foo", "repository:b:*", "", ""},
		{false, "reader", "repository:x:push,pull repository:y:pull", "registry:catalog:*", "", ""},
		{false, "team", "repository:team/*:push", "repository:teamx/y:push", "", ""},
		{false, "admin", "repository:a:b:pull", "repository::pull", "other", ""},
		{true, "admin", "repository:a:delete", "", "unireg", "password"},
		{true, "team", "repository:team/a:pull", "", "", "client_credentials"},
		{true, "nobody", "repository:public/a:pull", "", "", "password"},
		{false, "admin", "repository:a:pull,,push,", "repository:a", "", ""},
	} {
		f.Add(s.post, s.user, s.scope1, s.scope2, s.service, s.grantType)
	}
	f.Fuzz(func(t *testing.T, post bool, user, scope1, scope2, service, grantType string) {
		form := url.Values{"scope": {scope1, scope2}}
		if service != "" {
			form.Set("service", service)
		}
		var r *http.Request
		if post {
			form.Set("grant_type", grantType)
			if user != "" {
				form.Set("username", user)
				form.Set("password", "pw")
			}
			r = httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest(http.MethodGet, "/token?"+form.Encode(), nil)
			if user != "" {
				r.SetBasicAuth(user, "pw")
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			return
		}
		if service != "" && service != "unireg" || post && grantType != "password" {
			t.Fatalf("token issued for service %q, grant_type %q", service, grantType)
		}
		var body struct{ Token string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q: %v", w.Body, err)
		}
		_, claims, err := issuer.verify(body.Token)
		if err != nil {
			t.Fatalf("issued token does not verify: %v", err)
		}
		id := &Identity{Anonymous: true}
		if sc, ok := users[user]; ok {
			id = &Identity{Subject: user, Scopes: sc}
		}
		items := strings.Fields(scope1 + " " + scope2)
		for _, ra := range claims.Access {
			if ra.Type != TypeRepository {
				t.Fatalf("access %+v: type", ra)
			}
			if catalogGrant(items, id, svc, ra) {
				continue
			}
			for _, a := range ra.Actions {
				if !slices.Contains(validActions[ProtocolOCI], a) {
					t.Fatalf("scopes %q granted unknown action %q on %q", items, a, ra.Name)
				}
				if !requested(items, ra.Name, a) {
					t.Fatalf("scopes %q granted %s on %q, not requested", items, a, ra.Name)
				}
				if !svc.Allowed(context.Background(), id, Access{ProtocolOCI, TypeRepository, ra.Name, a}) {
					t.Fatalf("%q granted %s on %q, which it may not do", user, a, ra.Name)
				}
			}
		}
	})
}

// requested reports whether an item `repository:NAME:ACTIONS` asks for
// action on name.
func requested(items []string, name, action string) bool {
	for _, it := range items {
		acts, ok := strings.CutPrefix(it, TypeRepository+":"+name+":")
		if !ok || strings.Contains(acts, ":") {
			continue
		}
		if list := strings.Split(acts, ","); slices.Contains(list, action) || slices.Contains(list, "*") {
			return true
		}
	}
	return false
}

// catalogGrant reports whether ra is one of the caller's pull grants,
// carried because the request asked for the catalog.
func catalogGrant(items []string, id *Identity, svc *Service, ra ResourceActions) bool {
	asked := false
	for _, it := range items {
		if strings.HasPrefix(it, "registry:catalog:") && strings.Count(it, ":") == 2 {
			asked = true
		}
	}
	if !asked || len(ra.Actions) != 1 || ra.Actions[0] != ActionPull {
		return false
	}
	for _, sc := range append(append(Scopes{}, svc.Anonymous()...), id.Scopes...) {
		if sc.Name == ra.Name && sc.Allows(Access{ProtocolOCI, TypeRepository, sc.Name, ActionPull}) {
			return true
		}
	}
	return false
}
