package npm

import (
	"net/http"
	"strings"
	"testing"
)

// expectNoOTPChallenge checks that a 401 would not make npm ask for a
// one-time password.
func expectNoOTPChallenge(t *testing.T, h http.Header) {
	t.Helper()
	for _, v := range h.Values("WWW-Authenticate") {
		if strings.Contains(strings.ToLower(v), "otp") {
			t.Fatalf("WWW-Authenticate %q makes npm prompt for an OTP", v)
		}
	}
}

func TestAnonymousWithoutAnonymousScopeIs401WithoutOTP(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	tests := []struct {
		method, path string
		body         []byte
	}{
		{http.MethodGet, "/x", nil},
		{http.MethodGet, "/x/latest", nil},
		{http.MethodGet, "/x/-/x-1.0.0.tgz", nil},
		{http.MethodGet, "/-/package/x/dist-tags", nil},
		{http.MethodPut, "/x", newPublish("x", "1.1.0", tarballOf("x", "1.1.0")).body()},
		{http.MethodDelete, "/x/-rev/1-a", nil},
		{http.MethodGet, "/-/whoami", nil},
		{http.MethodGet, "/-/npm/v1/tokens", nil},
		{http.MethodPost, "/-/npm/v1/tokens", []byte(`{}`)},
		{http.MethodGet, "/-/user/org.couchdb.user:bob", nil},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			w := hs.do(call{method: tt.method, path: tt.path, body: tt.body})
			expectError(t, w, http.StatusUnauthorized, "authentication required")
			expectNoOTPChallenge(t, w.Header())
		})
	}
	if got := versionsOf(hs.packument("reader", "x")); len(got) != 1 {
		t.Fatalf("anonymous publish landed: %v", got)
	}
}

func TestInvalidTokenIs401EvenWhereAnonymousMayRead(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), anonymous: []string{"npm:package:*:read"}})
	hs.mustPublish("x", "1.0.0")
	expectStatus(t, hs.get("", "/x"), http.StatusOK)
	for _, header := range []string{"Bearer unireg_notavalidtoken", "Basic !!!", "Bearer", "Digest abc"} {
		t.Run(header, func(t *testing.T) {
			w := hs.do(call{method: http.MethodGet, path: "/x", header: map[string]string{"Authorization": header}})
			expectError(t, w, http.StatusUnauthorized, "invalid or revoked token")
			expectNoOTPChallenge(t, w.Header())
		})
	}
}

func TestBasicAuthWithTokenAsPasswordWorks(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	req := call{method: http.MethodGet, path: "/x", header: map[string]string{}}
	// yarn classic with always-auth sends Basic with the token as password.
	req.header["Authorization"] = "Basic " + basic("reader", hs.tokens["reader"])
	expectStatus(t, hs.do(req), http.StatusOK)
}

func TestAnonymousScopeAllowsReadNotWrite(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), anonymous: []string{"npm:package:*:read"}})
	hs.mustPublish("x", "1.0.0")
	expectStatus(t, hs.get("", "/x"), http.StatusOK)
	expectStatus(t, hs.get("", "/x/-/x-1.0.0.tgz"), http.StatusOK)
	w := hs.publishAs("", "", newPublish("x", "1.1.0", tarballOf("x", "1.1.0")))
	expectError(t, w, http.StatusUnauthorized, "authentication required")
	expectError(t, hs.get("", "/-/whoami"), http.StatusUnauthorized, "authentication required")
}

func TestScopedGrantsStayInsideTheirScope(t *testing.T) {
	users := map[string][]string{
		"admin":     {"*"},
		"areader":   {"npm:package:@a/*:read"},
		"acmewrite": {"npm:package:@acme/*:write"},
	}
	hs := newHarness(t, users)
	for _, name := range []string{"@a/x", "@b/x", "@acme/y", "@acmex/y", "@a-b/x"} {
		hs.mustPublish(name, "1.0.0")
	}
	tests := []struct {
		name   string
		user   string
		method string
		pkg    string
		want   int
	}{
		{"scope read grants read", "areader", http.MethodGet, "@a/x", 200},
		{"scope read denies other scope", "areader", http.MethodGet, "@b/x", 403},
		{"scope read denies longer scope", "areader", http.MethodGet, "@a-b/x", 403},
		{"scope read denies publish in scope", "areader", http.MethodPut, "@a/x", 403},
		{"scope write grants publish", "acmewrite", http.MethodPut, "@acme/y", 201},
		{"scope write grants read", "acmewrite", http.MethodGet, "@acme/y", 200},
		{"@acme/* does not match @acmex/y (publish)", "acmewrite", http.MethodPut, "@acmex/y", 403},
		{"@acme/* does not match @acmex/y (read)", "acmewrite", http.MethodGet, "@acmex/y", 403},
		{"@acme/* does not match unscoped", "acmewrite", http.MethodPut, "acme", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w = hs.get(tt.user, "/"+escapeName(tt.pkg))
			if tt.method == http.MethodPut {
				w = hs.publishAs(tt.user, "", newPublish(tt.pkg, "2.0.0", tarballOf(tt.pkg, "2.0.0")))
			}
			if tt.want >= 400 {
				expectError(t, w, tt.want, tt.user)
				if tt.method == http.MethodPut {
					if objs := hs.objects("npm/staging"); len(objs) != 0 {
						t.Fatalf("staging objects left: %v", objs)
					}
				}
				return
			}
			expectStatus(t, w, tt.want)
		})
	}
	for _, name := range []string{"@a/x", "@b/x", "@acmex/y"} {
		if got := versionsOf(hs.packument("admin", name)); len(got) != 1 {
			t.Fatalf("%s has versions %v after refused publishes", name, got)
		}
	}
	if objs := hs.objects("npm/packages/acme"); len(objs) != 0 {
		t.Fatalf("refused publish stored %v", objs)
	}
	// The tarball of a package the caller may not read is refused too.
	expectStatus(t, hs.get("areader", "/@b/x/-/x-1.0.0.tgz"), http.StatusForbidden)
}

func TestForbiddenNamesTheMissingScope(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	w := hs.publishAs("reader", "", newPublish("x", "1.1.0", tarballOf("x", "1.1.0")))
	expectError(t, w, http.StatusForbidden, "npm:package:x:write")
}

func TestNilGateAllowsEverything(t *testing.T) {
	h := mustNew(Options{Storage: newHarness(t, nil).store})
	hs := &harness{t: t, h: h}
	p := newPublish("x", "1.0.0", tarballOf("x", "1.0.0"))
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/x", body: p.body()}), http.StatusCreated)
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/x"}), http.StatusOK)
	// Without a credential checker, login cannot work.
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/-/user/org.couchdb.user:bob", body: []byte(`{"name":"bob","password":"x"}`)}), http.StatusNotImplemented)
}
