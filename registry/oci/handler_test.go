package oci

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// harness is a Handler over in-memory storage with the real auth gate.
type harness struct {
	t      *testing.T
	store  storage.Driver
	h      *Handler
	gate   *auth.Service
	tokens map[string]string // user -> token
}

type harnessOpt func(*Options)

// newHarness builds a handler whose users are given as user -> scopes.
func newHarness(t *testing.T, users map[string][]string, opts ...harnessOpt) *harness {
	t.Helper()
	return newHarnessOn(t, inmemory.New(), users, opts...)
}

// newHarnessOn is newHarness over the given storage.
func newHarnessOn(t *testing.T, store storage.Driver, users map[string][]string, opts ...harnessOpt) *harness {
	t.Helper()
	hs := &harness{t: t, store: store, tokens: map[string]string{}}
	f := &authstore.File{Version: authstore.Version}
	for user, scopes := range users {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		hs.tokens[user] = tok
		f.Tokens = append(f.Tokens, authstore.Token{Hash: auth.HashToken(tok), User: user, Scopes: scopes})
	}
	ts, err := auth.NewStaticTokenStore(f)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := auth.NewJWTIssuer(auth.JWTIssuerOptions{Key: bytes.Repeat([]byte("k"), 32), Service: "unireg"})
	if err != nil {
		t.Fatal(err)
	}
	hs.gate = auth.NewService(auth.ServiceOptions{Authenticator: ts, Issuer: issuer})
	hs.h = hs.newHandler(opts...)
	return hs
}

// newHandler builds another handler over the same storage, as a second
// replica (or the same server after a restart) would be.
func (hs *harness) newHandler(opts ...harnessOpt) *Handler {
	o := Options{
		Storage: hs.store, Gate: hs.gate, Service: "unireg",
		Realm: func(*http.Request) string { return "http://registry.test/token" },
	}
	for _, fn := range opts {
		fn(&o)
	}
	h, err := New(o)
	if err != nil {
		panic(err)
	}
	return h
}

type call struct {
	method, path string
	body         []byte
	header       map[string]string
	user         string // Basic credentials of this user; "" for anonymous
}

func (hs *harness) do(c call) *httptest.ResponseRecorder {
	return hs.doOn(hs.h, c)
}

func (hs *harness) doOn(h *Handler, c call) *httptest.ResponseRecorder {
	hs.t.Helper()
	var body io.Reader = http.NoBody
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req := httptest.NewRequest(c.method, c.path, body)
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if c.user != "" {
		tok, ok := hs.tokens[c.user]
		if !ok {
			hs.t.Fatalf("no user %q", c.user)
		}
		req.SetBasicAuth(c.user, tok)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func expectStatus(t *testing.T, w *httptest.ResponseRecorder, want int) {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d; body: %s", w.Code, want, w.Body.String())
	}
}

// expectError checks the status and the spec's error JSON code.
func expectError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	expectStatus(t, w, status)
	var body errorBody
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, w.Body.String())
	}
	if len(body.Errors) != 1 || body.Errors[0].Code != code {
		t.Fatalf("error code %+v, want %s", body.Errors, code)
	}
	if body.Errors[0].Message == "" {
		t.Fatalf("error %s has no message", code)
	}
}

// pushBlob uploads content monolithically and returns its digest.
func (hs *harness) pushBlob(user, repo string, content []byte) digest.Digest {
	hs.t.Helper()
	d := digest.FromBytes(content)
	w := hs.do(call{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: content, user: user})
	expectStatus(hs.t, w, http.StatusCreated)
	return d
}

// pushImage pushes a config and one layer, then a manifest under tag, and
// returns the manifest digest.
func (hs *harness) pushImage(user, repo, tag string, extra map[string]any) (digest.Digest, []byte) {
	hs.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("layer of " + repo + ":" + tag)
	cd := hs.pushBlob(user, repo, cfg)
	ld := hs.pushBlob(user, repo, layer)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeOCIManifest,
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}},
	}
	for k, v := range extra {
		m[k] = v
	}
	body, _ := json.Marshal(m)
	w := hs.do(call{method: "PUT", path: "/v2/" + repo + "/manifests/" + tag, body: body, user: user,
		header: map[string]string{"Content-Type": MediaTypeOCIManifest}})
	expectStatus(hs.t, w, http.StatusCreated)
	return digest.FromBytes(body), body
}

func TestParsePath(t *testing.T) {
	cases := []struct {
		path string
		want route
	}{
		{"/", route{kind: RouteBase}},
		{"", route{kind: RouteBase}},
		{"/_catalog", route{kind: RouteCatalog}},
		{"/a/tags/list", route{kind: RouteTags, name: "a"}},
		{"/a/b/c/tags/list", route{kind: RouteTags, name: "a/b/c"}},
		{"/a/manifests/latest", route{kind: RouteManifest, name: "a", ref: "latest"}},
		{"/team/blobs/manifests/v1", route{kind: RouteManifest, name: "team/blobs", ref: "v1"}},
		{"/a/b/blobs/sha256:abc", route{kind: RouteBlob, name: "a/b", ref: "sha256:abc"}},
		{"/a/blobs/uploads/", route{kind: RouteUploadStart, name: "a"}},
		{"/a/blobs/uploads", route{kind: RouteUploadStart, name: "a"}},
		{"/a/b/blobs/uploads/0123", route{kind: RouteUpload, name: "a/b", ref: "0123"}},
		{"/a/referrers/sha256:abc", route{kind: RouteReferrers, name: "a", ref: "sha256:abc"}},
		{"/a/uploads/x", route{kind: RouteUnknown}},
		{"/a", route{kind: RouteUnknown}},
		{"/a/things/x", route{kind: RouteUnknown}},
	}
	for _, c := range cases {
		if got := parsePath(c.path); got != c.want {
			t.Errorf("parsePath(%q) = %+v, want %+v", c.path, got, c.want)
		}
	}
}

func TestAnonymousGets401WithBearerChallenge(t *testing.T) {
	hs := newHarness(t, nil)
	w := hs.do(call{method: "GET", path: "/v2/team/app/manifests/latest"})
	expectError(t, w, http.StatusUnauthorized, CodeUnauthorized)
	want := `Bearer realm="http://registry.test/token",service="unireg",scope="repository:team/app:pull"`
	if got := w.Header().Get("WWW-Authenticate"); got != want {
		t.Fatalf("WWW-Authenticate = %q, want %q", got, want)
	}
	w = hs.do(call{method: "GET", path: "/v2/"})
	expectStatus(t, w, http.StatusUnauthorized)
	if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="http://registry.test/token"`) {
		t.Fatalf("base endpoint challenge = %q", w.Header().Get("WWW-Authenticate"))
	}
}

func TestAuthenticatedWithoutScopeGetsDenied(t *testing.T) {
	hs := newHarness(t, map[string][]string{"reader": {"oci:repository:team/*:pull"}})
	w := hs.do(call{method: "POST", path: "/v2/team/app/blobs/uploads/", user: "reader"})
	expectError(t, w, http.StatusForbidden, CodeDenied)
	w = hs.do(call{method: "GET", path: "/v2/other/app/tags/list", user: "reader"})
	expectError(t, w, http.StatusForbidden, CodeDenied)
}

func TestWrongCredentialsAre401(t *testing.T) {
	hs := newHarness(t, nil)
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.SetBasicAuth("x", "unireg_wrong")
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, req)
	expectError(t, w, http.StatusUnauthorized, CodeUnauthorized)
}

func TestJWTLackingActionGetsInsufficientScopeChallenge(t *testing.T) {
	hs := newHarness(t, nil)
	jwt, _, err := hs.gate.Issuer().Issue("ci", []auth.ResourceActions{{Type: "repository", Name: "team/app", Actions: []string{"pull"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("POST", "/v2/team/app/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, req)
	expectStatus(t, w, http.StatusUnauthorized)
	ch := w.Header().Get("WWW-Authenticate")
	if !strings.Contains(ch, `scope="repository:team/app:push"`) || !strings.Contains(ch, `error="insufficient_scope"`) {
		t.Fatalf("challenge %q lacks scope or insufficient_scope", ch)
	}
	// The same JWT may pull.
	req = httptest.NewRequest("GET", "/v2/team/app/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	w = httptest.NewRecorder()
	hs.h.ServeHTTP(w, req)
	expectError(t, w, http.StatusNotFound, CodeNameUnknown)
}

func TestInvalidNameIsNameInvalid(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	for _, p := range []string{"/v2/Upper/tags/list", "/v2/a..b/tags/list", "/v2/-a/manifests/x", "/v2/a/_x/tags/list"} {
		w := hs.do(call{method: "GET", path: p, user: "admin"})
		expectError(t, w, http.StatusBadRequest, CodeNameInvalid)
	}
}

func TestDisabledDeleteIsUnsupported(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}}, func(o *Options) { o.DisableDelete = true })
	d, _ := hs.pushImage("admin", "a", "v1", nil)
	w := hs.do(call{method: "DELETE", path: "/v2/a/manifests/" + d.String(), user: "admin"})
	expectError(t, w, http.StatusMethodNotAllowed, CodeUnsupported)
	// Cancelling an upload deletes nothing that was pushed: it still works.
	loc := startSession(t, hs, "a")
	expectStatus(t, hs.do(call{method: "DELETE", path: loc, user: "admin"}), http.StatusNoContent)
}
