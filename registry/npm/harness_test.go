package npm

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// testRoot is the externally visible npm root of requests made by the harness.
const testRoot = "http://registry.test/npm"

// harness is a Handler over in-memory storage with the real auth gate: a
// static token store and the handler's own token store, chained and wrapped
// with the handler's revocation list, as the registry builds it.
type harness struct {
	t      *testing.T
	store  *inmemory.Driver
	h      *Handler
	gate   *auth.Service
	tokens map[string]string // user -> token
	// now is the clock of the user tokens; tests move it forward.
	now atomic.Pointer[func() time.Time]

	mu     sync.Mutex
	events []Event
}

type harnessConfig struct {
	users     map[string][]string  // user -> scopes
	expires   map[string]time.Time // user -> when the user's token expires
	anonymous []string             // scopes granted to everyone
	options   func(*Options)
}

// defaultUsers covers the permission levels most tests need.
func defaultUsers() map[string][]string {
	return map[string][]string{
		"admin":  {"*"},
		"writer": {"npm:package:*:write"},
		"reader": {"npm:package:*:read"},
	}
}

func newHarness(t *testing.T, users map[string][]string) *harness {
	t.Helper()
	return newHarnessWith(t, harnessConfig{users: users})
}

func newHarnessWith(t *testing.T, cfg harnessConfig) *harness {
	t.Helper()
	hs := &harness{t: t, store: inmemory.New(), tokens: map[string]string{}}
	f := &authstore.File{Version: authstore.Version}
	for user, scopes := range cfg.users {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		hs.tokens[user] = tok
		entry := authstore.Token{Hash: auth.HashToken(tok), User: user, Scopes: scopes}
		if exp, ok := cfg.expires[user]; ok {
			entry.ExpiresAt = &exp
		}
		f.Tokens = append(f.Tokens, entry)
	}
	static, err := auth.NewStaticTokenStore(f)
	if err != nil {
		t.Fatal(err)
	}
	anonymous, err := auth.ParseScopes(cfg.anonymous)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := auth.NewJWTIssuer(auth.JWTIssuerOptions{Key: bytes.Repeat([]byte("k"), 32), Service: "unireg"})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now
	hs.now.Store(&clock)
	tokens := auth.NewUserTokens(hs.store, auth.UserTokensOptions{Parents: static, Now: func() time.Time { return (*hs.now.Load())() }})
	hs.gate = auth.NewService(auth.ServiceOptions{
		Authenticator: auth.WithRevocations(auth.Chain{static, tokens}, tokens),
		Anonymous:     anonymous,
		Issuer:        issuer,
	})
	o := Options{Storage: hs.store, Gate: hs.gate, Tokens: tokens, OnEvent: hs.record}
	if cfg.options != nil {
		cfg.options(&o)
	}
	hs.h = mustNew(o)
	return hs
}

// setNow moves the clock of the harness's user tokens.
func (hs *harness) setNow(now func() time.Time) { hs.now.Store(&now) }

// hashHex is the bare hex of a token's hash, as npm's storage keys hold it.
func hashHex(token string) string { return strings.TrimPrefix(auth.HashToken(token), "sha256:") }

// newHandler builds another handler over the same storage and gate, as
// another process of the registry would be.
func (hs *harness) newHandler() *Handler {
	return mustNew(Options{Storage: hs.store, Gate: hs.gate, OnEvent: hs.record})
}

func (hs *harness) record(_ context.Context, e Event) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.events = append(hs.events, e)
}

func (hs *harness) recorded() []Event {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return append([]Event(nil), hs.events...)
}

type call struct {
	method string
	path   string // below the npm root ("/x"), or an absolute URL
	body   []byte
	header map[string]string
	user   string // sends this user's token as Bearer
	token  string // sends this token as Bearer
}

func (hs *harness) do(c call) *httptest.ResponseRecorder { return hs.doOn(hs.h, c) }

// doOn serves one request; it is safe to call from several goroutines.
func (hs *harness) doOn(h http.Handler, c call) *httptest.ResponseRecorder {
	hs.t.Helper()
	var body io.Reader = http.NoBody
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	target := c.path
	if !strings.HasPrefix(target, "http") {
		target = testRoot + target
	}
	req := httptest.NewRequest(c.method, target, body)
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	token := c.token
	if c.user != "" {
		tok, ok := hs.tokens[c.user]
		if !ok {
			hs.t.Errorf("harness has no user %q", c.user)
		}
		token = tok
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func (hs *harness) get(user, path string) *httptest.ResponseRecorder {
	hs.t.Helper()
	return hs.do(call{method: http.MethodGet, path: path, user: user})
}

func expectStatus(t *testing.T, w *httptest.ResponseRecorder, want int) {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d; body: %s", w.Code, want, w.Body.String())
	}
}

// expectError checks the status and that the body is {"error": message}
// with message containing want.
func expectError(t *testing.T, w *httptest.ResponseRecorder, status int, want string) {
	t.Helper()
	expectStatus(t, w, status)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, w.Body.String())
	}
	msg, _ := body["error"].(string)
	if msg == "" {
		t.Fatalf("error body has no error message: %s", w.Body.String())
	}
	if !strings.Contains(msg, want) {
		t.Fatalf("error %q does not mention %q", msg, want)
	}
}

func decodeBody(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, w.Body.String())
	}
	return m
}

// tarballOf is the content published for name@version by default.
func tarballOf(name, version string) []byte {
	return []byte("\x1f\x8b tarball of " + name + "@" + version)
}

func integrityOf(b []byte) string {
	s := sha512.Sum512(b)
	return "sha512-" + base64.StdEncoding.EncodeToString(s[:])
}

func shasumOf(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// namedAttachment is one member of _attachments.
type namedAttachment struct {
	name string
	att  map[string]any
}

// publishReq is a publish body as npm 11 builds it: the document, then
// _attachments as the last member.
type publishReq struct {
	name, version string
	doc           map[string]any
	atts          []namedAttachment
}

func newPublish(name, version string, tarball []byte) *publishReq {
	manifest := map[string]any{
		"name":        name,
		"version":     version,
		"description": "the " + name + " package",
		"main":        "index.js",
		"scripts":     map[string]any{"test": "echo ok"},
		"dist": map[string]any{
			"integrity": integrityOf(tarball),
			"shasum":    shasumOf(tarball),
			"tarball":   "http://whatever/" + name + "/-/" + tarballFileName(name, version),
		},
	}
	return &publishReq{
		name:    name,
		version: version,
		doc: map[string]any{
			"_id":         name,
			"name":        name,
			"description": "the " + name + " package",
			"dist-tags":   map[string]any{"latest": version},
			"versions":    map[string]any{version: manifest},
			"access":      nil,
		},
		atts: []namedAttachment{{name: name + "-" + version + ".tgz", att: map[string]any{
			"content_type": "application/octet-stream",
			"data":         base64.StdEncoding.EncodeToString(tarball),
			"length":       len(tarball),
		}}},
	}
}

// manifest returns the version's entry of the document.
func (p *publishReq) manifest() map[string]any {
	return p.doc["versions"].(map[string]any)[p.version].(map[string]any)
}

func (p *publishReq) dist() map[string]any { return p.manifest()["dist"].(map[string]any) }

func (p *publishReq) tag(tags map[string]any) *publishReq {
	p.doc["dist-tags"] = tags
	return p
}

func (p *publishReq) body() []byte {
	doc, err := json.Marshal(p.doc)
	if err != nil {
		panic(err)
	}
	if len(p.atts) == 0 {
		return doc
	}
	var b bytes.Buffer
	b.Write(doc[:len(doc)-1])
	b.WriteString(`,"_attachments":{`)
	for i, a := range p.atts {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(a.name)
		v, _ := json.Marshal(a.att)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}}")
	return b.Bytes()
}

// publish sends p as user to PUT /<path>; path "" uses the escaped name.
func (hs *harness) publishAs(user, path string, p *publishReq) *httptest.ResponseRecorder {
	hs.t.Helper()
	if path == "" {
		path = "/" + escapeName(p.name)
	}
	return hs.do(call{method: http.MethodPut, path: path, body: p.body(), user: user,
		header: map[string]string{"Content-Type": "application/json"}})
}

// mustPublish publishes name@version with default content as admin.
func (hs *harness) mustPublish(name, version string) []byte {
	hs.t.Helper()
	tb := tarballOf(name, version)
	w := hs.publishAs("admin", "", newPublish(name, version, tb))
	expectStatus(hs.t, w, http.StatusCreated)
	return tb
}

// packument fetches the full document as user.
func (hs *harness) packument(user, name string) map[string]any {
	hs.t.Helper()
	w := hs.get(user, "/"+escapeName(name))
	expectStatus(hs.t, w, http.StatusOK)
	return decodeBody(hs.t, w)
}

// writeDoc is what `GET ?write=true` answers, for read-modify-write changes.
func (hs *harness) writeDoc(name string) map[string]any {
	hs.t.Helper()
	w := hs.get("admin", "/"+escapeName(name)+"?write=true")
	expectStatus(hs.t, w, http.StatusOK)
	return decodeBody(hs.t, w)
}

// putDoc sends a changed document back as `npm` does: PUT /:pkg/-rev/:rev.
func (hs *harness) putDoc(user, name string, doc map[string]any) *httptest.ResponseRecorder {
	hs.t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		hs.t.Fatal(err)
	}
	rev, _ := doc["_rev"].(string)
	return hs.do(call{method: http.MethodPut, path: "/" + escapeName(name) + "/-rev/" + rev, body: b, user: user})
}

// storedPackument returns the stored document's bytes, nil when absent.
func (hs *harness) storedPackument(name string) []byte {
	hs.t.Helper()
	b, _, err := storage.ReadAll(context.Background(), hs.store, packumentKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		hs.t.Fatal(err)
	}
	return b
}

// objects lists every stored key under prefix.
func (hs *harness) objects(prefix string) []string {
	hs.t.Helper()
	ctx := context.Background()
	names, err := hs.store.List(ctx, prefix)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		hs.t.Fatal(err)
	}
	var out []string
	for _, n := range names {
		k := prefix + "/" + n
		if _, err := hs.store.Stat(ctx, k); err == nil {
			// The tombstone of a deleted package is not content.
			if doc, _, _ := (&packages{store: hs.store}).load(ctx, strings.TrimSuffix(strings.TrimPrefix(k, "npm/packages/"), "/packument.json")); doc == nil && strings.HasSuffix(k, "/packument.json") {
				continue
			}
			out = append(out, k)
			continue
		}
		out = append(out, hs.objects(k)...)
	}
	return out
}

// versionsOf returns the sorted version keys of a document.
func versionsOf(doc map[string]any) []string {
	vs, _ := doc["versions"].(map[string]any)
	out := make([]string, 0, len(vs))
	for v := range vs {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func distTagsOf(doc map[string]any) map[string]any {
	m, _ := doc["dist-tags"].(map[string]any)
	return m
}

func versionOf(doc map[string]any, v string) map[string]any {
	vs, _ := doc["versions"].(map[string]any)
	m, _ := vs[v].(map[string]any)
	return m
}

func tarballURLOf(doc map[string]any, v string) string {
	d, _ := versionOf(doc, v)["dist"].(map[string]any)
	s, _ := d["tarball"].(string)
	return s
}

// sha512Hex is how tarballs are keyed in storage.
func sha512Hex(b []byte) string {
	s := sha512.Sum512(b)
	return hex.EncodeToString(s[:])
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// mustPublishAs publishes name@version with default content as user.
func (hs *harness) mustPublishAs(user, name, version string) []byte {
	hs.t.Helper()
	tb := tarballOf(name, version)
	expectStatus(hs.t, hs.publishAs(user, "", newPublish(name, version, tb)), http.StatusCreated)
	return tb
}

// putJSON writes v under key, bypassing the handler.
func putJSON(t *testing.T, hs *harness, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hs.store.Put(context.Background(), key, bytes.NewReader(b), storage.Condition{}); err != nil {
		t.Fatal(err)
	}
}

// jsonString marshals v for a request body.
func jsonString(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mustNew is New for options that cannot be refused.
func mustNew(o Options) *Handler {
	h, err := New(o)
	if err != nil {
		panic(err)
	}
	return h
}
