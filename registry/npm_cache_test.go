package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/internal/cachetest"
	"github.com/unireg/unireg/registry/npm"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The npm uplink (registry/npm/uplink.go) end to end in-process: an
// upstream unireg that takes bearer tokens, packages published into it the
// way the npm CLI publishes, a cachetest proxy in front of it counting what
// the cache asks for (and hanging or refusing on demand), and a cache
// registry whose --npm-upstream is the proxy.

// bearerTokens authenticates bearer tokens only: token -> subject.
type bearerTokens map[string]string

func (b bearerTokens) Authenticate(_ context.Context, c auth.Credentials) (*auth.Identity, error) {
	if s, ok := b[c.Bearer]; ok && c.Bearer != "" {
		return &auth.Identity{Subject: s}, nil
	}
	return nil, auth.ErrInvalidCredentials
}

const (
	npmUpstreamToken = "up-token"    // what the cache sends upstream
	npmCacheToken    = "cache-token" // what the test's clients send the cache
	corgi            = "application/vnd.npm.install-v1+json"
)

// npmCacheWorld is an upstream unireg behind a proxy, and a cache of it.
type npmCacheWorld struct {
	t     *testing.T
	up    *httptest.Server // the upstream, through the recorder
	proxy *cachetest.Proxy
	cache *httptest.Server

	mu          sync.Mutex
	auditBodies [][]byte // what reached the upstream's bulk advisories endpoint
	advisories  []byte   // when set, the upstream's answer to the bulk audit
	keys        []byte   // when set, the upstream's /-/npm/v1/keys
}

func newNPMCacheWorld(t *testing.T, settings npm.Settings) *npmCacheWorld {
	t.Helper()
	w := &npmCacheWorld{t: t}
	up, err := New(context.Background(), Config{Storage: inmemory.New(), Authenticator: bearerTokens{npmUpstreamToken: "up"}, Authorizer: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	w.up = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/npm/-/npm/v1/security/advisories/bulk":
			body, _ := io.ReadAll(r.Body)
			w.mu.Lock()
			w.auditBodies = append(w.auditBodies, body)
			canned := w.advisories
			w.mu.Unlock()
			if canned != nil {
				rw.Header().Set("Content-Type", "application/json")
				rw.Write(canned)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		case "/npm/-/npm/v1/keys":
			w.mu.Lock()
			canned := w.keys
			w.mu.Unlock()
			if canned != nil {
				rw.Header().Set("Content-Type", "application/json")
				rw.Write(canned)
				return
			}
		}
		up.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.up.Close)
	w.proxy = cachetest.NewProxy(t, w.up.URL)
	settings.Upstream = npm.Upstream{URL: w.proxy.URL() + "/npm", Token: func() (string, error) { return npmUpstreamToken, nil }}
	w.cache = npmCacheOf(t, settings)
	return w
}

// npmCacheOf is a registry whose npm upstream is settings.Upstream.
func npmCacheOf(t *testing.T, settings npm.Settings) *httptest.Server {
	t.Helper()
	c, err := New(context.Background(), Config{
		Storage: inmemory.New(), Authenticator: bearerTokens{npmCacheToken: "me"}, Authorizer: allowAll{},
		NPM: NPMConfig{Settings: settings},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv
}

// npmDo sends a request with a bearer token and returns the answer, its
// body read.
func npmDo(t *testing.T, method, url, token string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, b
}

func escapeNPMName(name string) string { return strings.Replace(name, "/", "%2f", 1) }

func npmTarballFile(name, version string) string {
	short := name
	if _, s, ok := strings.Cut(name, "/"); ok {
		short = s
	}
	return short + "-" + version + ".tgz"
}

// publishNPMVersion publishes name@version with tgz as its tarball into
// the registry at base, as `npm publish` does (integrity and shasum in
// dist, the tarball attached), with extra fields in the version manifest.
func publishNPMVersion(t *testing.T, base, token, name, version string, tgz []byte, extra map[string]any) {
	t.Helper()
	file := npmTarballFile(name, version)
	s1 := sha1.Sum(tgz)
	manifest := map[string]any{
		"name": name, "version": version, "description": "a test package",
		"dist": map[string]any{
			"integrity": "sha512-" + sha512Base64(tgz), "shasum": hex.EncodeToString(s1[:]),
			"tarball": base + "/npm/" + name + "/-/" + file,
		},
	}
	for k, v := range extra {
		manifest[k] = v
	}
	body, _ := json.Marshal(map[string]any{
		"_id": name, "name": name, "dist-tags": map[string]string{"latest": version},
		"versions": map[string]any{version: manifest},
		"_attachments": map[string]any{file: map[string]any{
			"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz),
		}},
	})
	resp, b := npmDo(t, "PUT", base+"/npm/"+escapeNPMName(name), token, body, nil)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("publish %s@%s: %d %s", name, version, resp.StatusCode, b)
	}
}

// writeDoc is the package's document as `npm deprecate` and `npm
// unpublish` read it (?write=true).
func writeDoc(t *testing.T, base, token, name string) map[string]any {
	t.Helper()
	resp, b := npmDo(t, "GET", base+"/npm/"+escapeNPMName(name)+"?write=true", token, nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s?write=true: %d %s", name, resp.StatusCode, b)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// deprecateNPM deprecates name@version as `npm deprecate` does.
func deprecateNPM(t *testing.T, base, token, name, version, message string) {
	t.Helper()
	doc := writeDoc(t, base, token, name)
	doc["versions"].(map[string]any)[version].(map[string]any)["deprecated"] = message
	body, _ := json.Marshal(doc)
	resp, b := npmDo(t, "PUT", base+"/npm/"+escapeNPMName(name)+"/-rev/"+doc["_rev"].(string), token, body, nil)
	if resp.StatusCode >= 300 {
		t.Fatalf("deprecate %s@%s: %d %s", name, version, resp.StatusCode, b)
	}
}

// unpublishNPM unpublishes the whole package as `npm unpublish --force`.
func unpublishNPM(t *testing.T, base, token, name string) {
	t.Helper()
	doc := writeDoc(t, base, token, name)
	resp, b := npmDo(t, "DELETE", base+"/npm/"+escapeNPMName(name)+"/-rev/"+doc["_rev"].(string), token, nil, nil)
	if resp.StatusCode >= 300 {
		t.Fatalf("unpublish %s: %d %s", name, resp.StatusCode, b)
	}
}

func setDistTag(t *testing.T, base, token, name, tag, version string) {
	t.Helper()
	resp, b := npmDo(t, "PUT", base+"/npm/-/package/"+escapeNPMName(name)+"/dist-tags/"+tag, token, []byte(`"`+version+`"`), nil)
	if resp.StatusCode >= 300 {
		t.Fatalf("dist-tag %s %s: %d %s", name, tag, resp.StatusCode, b)
	}
}

// npmDoc is the parts of a packument the tests compare.
type npmDoc struct {
	Name     string            `json:"name"`
	DistTags map[string]string `json:"dist-tags"`
	Time     map[string]string `json:"time"`
	Versions map[string]struct {
		Deprecated string `json:"deprecated"`
		Dist       struct {
			Integrity string `json:"integrity"`
			Shasum    string `json:"shasum"`
			Tarball   string `json:"tarball"`
		} `json:"dist"`
	} `json:"versions"`
}

func decodeNPMDoc(t *testing.T, b []byte) npmDoc {
	t.Helper()
	var d npmDoc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("not a packument: %v: %s", err, b)
	}
	return d
}

// getDoc GETs a packument from srv (the cache or the upstream) with token.
func getDoc(t *testing.T, base, token, name string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	return npmDo(t, "GET", base+"/npm/"+escapeNPMName(name), token, nil, header)
}

// docRequests counts the upstream requests for name's document.
func (w *npmCacheWorld) docRequests(name string) int {
	return w.proxy.Count("GET", `^/npm/`+regexpQuote(name)+`$`)
}

// tarballRequests counts the upstream requests for name's tarballs.
func (w *npmCacheWorld) tarballRequests(name string) int {
	return w.proxy.Count("GET", `^/npm/`+regexpQuote(name)+`/-/`)
}

// anyRequests counts every upstream request naming name.
func (w *npmCacheWorld) anyRequests(name string) int {
	return w.proxy.Count("", `^/npm/`+regexpQuote(name)+`(/|$)`)
}

func regexpQuote(s string) string {
	return strings.NewReplacer(".", `\.`, "+", `\+`, "(", `\(`, ")", `\)`).Replace(s)
}

func tgzOf(name, version string) []byte {
	return []byte(fmt.Sprintf("tarball bytes of %s@%s, %s", name, version, strings.Repeat("x", 100)))
}

// The packument through the cache is the upstream's: its time, integrity,
// shasum, deprecations and dist-tags, with tarball URLs naming the cache;
// the tarball has the upstream's bytes and is fetched from it once.
func TestNPMCacheServesTheUpstreamsDocumentAndTarballs(t *testing.T) {
	w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour})
	for _, name := range []string{"left-pad", "@up/lib"} {
		t.Run(name, func(t *testing.T) {
			publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "1.0.0", tgzOf(name, "1.0.0"), nil)
			publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "1.1.0", tgzOf(name, "1.1.0"), nil)
			setDistTag(t, w.up.URL, npmUpstreamToken, name, "beta", "1.1.0")
			setDistTag(t, w.up.URL, npmUpstreamToken, name, "latest", "1.0.0")
			deprecateNPM(t, w.up.URL, npmUpstreamToken, name, "1.0.0", "use 1.1.0")
			_, upBody := getDoc(t, w.up.URL, npmUpstreamToken, name, nil)
			upDoc := decodeNPMDoc(t, upBody)

			resp, body := getDoc(t, w.cache.URL, npmCacheToken, name, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET through the cache: %d %s", resp.StatusCode, body)
			}
			got := decodeNPMDoc(t, body)
			if got.Name != name || !reflect.DeepEqual(got.Time, upDoc.Time) || len(got.Time) < 4 {
				t.Fatalf("time through the cache %v, upstream %v", got.Time, upDoc.Time)
			}
			if !reflect.DeepEqual(got.DistTags, map[string]string{"latest": "1.0.0", "beta": "1.1.0"}) {
				t.Fatalf("dist-tags through the cache %v", got.DistTags)
			}
			if len(got.Versions) != 2 {
				t.Fatalf("versions through the cache: %v", got.Versions)
			}
			for v, uv := range upDoc.Versions {
				gv := got.Versions[v]
				if gv.Dist.Integrity != uv.Dist.Integrity || gv.Dist.Integrity != "sha512-"+sha512Base64(tgzOf(name, v)) ||
					gv.Dist.Shasum != uv.Dist.Shasum || uv.Dist.Shasum == "" || gv.Deprecated != uv.Deprecated {
					t.Fatalf("%s through the cache %+v, upstream %+v", v, gv, uv)
				}
				if want := w.cache.URL + "/npm/" + name + "/-/" + npmTarballFile(name, v); gv.Dist.Tarball != want {
					t.Fatalf("tarball URL %s, want %s", gv.Dist.Tarball, want)
				}
			}
			if got.Versions["1.0.0"].Deprecated != "use 1.1.0" {
				t.Fatalf("deprecation lost: %+v", got.Versions["1.0.0"])
			}
			if n := w.docRequests(name); n != 1 {
				t.Fatalf("%d upstream document requests, want 1", n)
			}
			for _, r := range w.proxy.Requests() {
				if r.Header.Get("Authorization") != "Bearer "+npmUpstreamToken {
					t.Fatalf("%s %s reached the upstream with Authorization %q", r.Method, r.Path, r.Header.Get("Authorization"))
				}
			}

			// The tarball, from the URL the cache gave: the upstream's bytes, fetched once.
			url := got.Versions["1.1.0"].Dist.Tarball
			for i := range 2 {
				resp, b := npmDo(t, "GET", url, npmCacheToken, nil, nil)
				if resp.StatusCode != http.StatusOK || !bytes.Equal(b, tgzOf(name, "1.1.0")) {
					t.Fatalf("tarball GET %d through the cache: %d %q", i+1, resp.StatusCode, b)
				}
				if n := w.tarballRequests(name); n != 1 {
					t.Fatalf("after tarball GET %d: %d upstream tarball requests, want 1", i+1, n)
				}
			}
			// A version's manifest, by dist-tag.
			resp, b := npmDo(t, "GET", w.cache.URL+"/npm/"+escapeNPMName(name)+"/beta", npmCacheToken, nil, nil)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"version":"1.1.0"`) {
				t.Fatalf("GET %s/beta through the cache: %d %s", name, resp.StatusCode, b)
			}
		})
	}
}

// Within the max age a cached document is served without asking the
// upstream; after it the upstream is asked again and its new versions
// show.
func TestNPMCacheAsksAgainOnlyAfterTheMaxAge(t *testing.T) {
	const name = "aging"
	t.Run("within", func(t *testing.T) {
		w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour})
		publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "1.0.0", tgzOf(name, "1.0.0"), nil)
		getDoc(t, w.cache.URL, npmCacheToken, name, nil)
		publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "1.1.0", tgzOf(name, "1.1.0"), nil)
		w.proxy.Reset()
		for range 3 {
			resp, b := getDoc(t, w.cache.URL, npmCacheToken, name, nil)
			if d := decodeNPMDoc(t, b); resp.StatusCode != http.StatusOK || len(d.Versions) != 1 {
				t.Fatalf("cached document: %d %s", resp.StatusCode, b)
			}
		}
		if got := w.proxy.Requests(); len(got) != 0 {
			t.Fatalf("within the max age the cache asked the upstream %d times: %+v", len(got), got)
		}
	})
	t.Run("after", func(t *testing.T) {
		w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: 50 * time.Millisecond})
		publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "1.0.0", tgzOf(name, "1.0.0"), nil)
		getDoc(t, w.cache.URL, npmCacheToken, name, nil)
		publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "1.1.0", tgzOf(name, "1.1.0"), nil)
		time.Sleep(200 * time.Millisecond) // past the max age
		resp, b := getDoc(t, w.cache.URL, npmCacheToken, name, nil)
		if d := decodeNPMDoc(t, b); resp.StatusCode != http.StatusOK || len(d.Versions) != 2 || d.DistTags["latest"] != "1.1.0" {
			t.Fatalf("after the max age: %d %s", resp.StatusCode, b)
		}
		if n := w.docRequests(name); n != 2 {
			t.Fatalf("%d upstream document requests, want 2", n)
		}
	})
}

// A client asking for the abbreviated (corgi) document has the upstream
// asked for the abbreviated document, and gets it with tarball URLs to
// the cache.
func TestNPMCacheAsksTheUpstreamForTheAbbreviatedDocument(t *testing.T) {
	w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour})
	const name = "corgi-pkg"
	publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "1.0.0", tgzOf(name, "1.0.0"), map[string]any{"dependencies": map[string]string{"left-pad": "^1.0.0"}})
	resp, body := getDoc(t, w.cache.URL, npmCacheToken, name, map[string]string{"Accept": corgi + "; q=1.0, application/json; q=0.8, */*"})
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), corgi) {
		t.Fatalf("abbreviated GET through the cache: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	reqs := w.proxy.Requests()
	if len(reqs) != 1 || !strings.Contains(reqs[0].Header.Get("Accept"), corgi) {
		t.Fatalf("upstream requests %+v, want one document GET accepting %s", reqs, corgi)
	}
	var doc map[string]any
	json.Unmarshal(body, &doc)
	if _, ok := doc["modified"]; !ok {
		t.Fatalf("not an abbreviated document (no modified): %s", body)
	}
	if v, _ := doc["versions"].(map[string]any)["1.0.0"].(map[string]any); v == nil || v["description"] != nil {
		t.Fatalf("not an abbreviated document (a version has its description): %s", body)
	}
	d := decodeNPMDoc(t, body)
	v := d.Versions["1.0.0"]
	if v.Dist.Tarball != w.cache.URL+"/npm/"+name+"/-/"+npmTarballFile(name, "1.0.0") || v.Dist.Integrity != "sha512-"+sha512Base64(tgzOf(name, "1.0.0")) {
		t.Fatalf("abbreviated version through the cache: %+v", v)
	}
	if !strings.Contains(string(body), `"left-pad":"^1.0.0"`) {
		t.Fatalf("dependencies lost: %s", body)
	}
	// A full document request is not answered from the abbreviated one.
	_, full := getDoc(t, w.cache.URL, npmCacheToken, name, nil)
	if fd := decodeNPMDoc(t, full); len(fd.Time) == 0 {
		t.Fatalf("full document through the cache has no time: %s", full)
	}
	if reqs := w.proxy.Requests(); len(reqs) != 2 || strings.Contains(reqs[1].Header.Get("Accept"), corgi) {
		t.Fatalf("upstream requests %+v, want a second, full, document GET", reqs)
	}
}

// When the upstream hangs or refuses, what was cached is served (stale),
// promptly; what was not fails within a bounded time, in npm's error
// format.
func TestNPMCacheServesCachedContentWhenTheUpstreamFails(t *testing.T) {
	for _, mode := range []string{"hang", "refuse"} {
		t.Run(mode, func(t *testing.T) {
			// A tiny max age: every read asks the upstream again.
			w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Millisecond})
			const name, other = "sturdy", "never-cached"
			publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "1.0.0", tgzOf(name, "1.0.0"), nil)
			publishNPMVersion(t, w.up.URL, npmUpstreamToken, other, "1.0.0", tgzOf(other, "1.0.0"), nil)
			tarball := w.cache.URL + "/npm/" + name + "/-/" + npmTarballFile(name, "1.0.0")
			for _, accept := range []string{"", corgi} {
				if resp, b := getDoc(t, w.cache.URL, npmCacheToken, name, map[string]string{"Accept": accept}); resp.StatusCode != http.StatusOK {
					t.Fatalf("warming: %d %s", resp.StatusCode, b)
				}
			}
			if resp, b := npmDo(t, "GET", tarball, npmCacheToken, nil, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("warming the tarball: %d %s", resp.StatusCode, b)
			}
			time.Sleep(10 * time.Millisecond) // past the max age
			if mode == "hang" {
				w.proxy.Hang()
			} else {
				w.proxy.RefuseStatus(http.StatusServiceUnavailable)
			}
			w.proxy.Reset()

			for _, accept := range []string{"", corgi} {
				start := time.Now()
				resp, b := getDoc(t, w.cache.URL, npmCacheToken, name, map[string]string{"Accept": accept})
				if d := decodeNPMDoc(t, b); resp.StatusCode != http.StatusOK || len(d.Versions) != 1 {
					t.Fatalf("cached document (Accept %q) with the upstream %s: %d %s", accept, mode, resp.StatusCode, b)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Fatalf("cached document (Accept %q) with the upstream %s answered after %s", accept, mode, took)
				}
			}
			start := time.Now()
			resp, b := npmDo(t, "GET", tarball, npmCacheToken, nil, nil)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(b, tgzOf(name, "1.0.0")) {
				t.Fatalf("cached tarball with the upstream %s: %d %q", mode, resp.StatusCode, b)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("cached tarball with the upstream %s answered after %s", mode, took)
			}
			if w.docRequests(name) == 0 {
				t.Fatalf("the cache did not ask the upstream past the max age: the stale path was not exercised")
			}

			start = time.Now()
			resp, b = getDoc(t, w.cache.URL, npmCacheToken, other, nil)
			took := time.Since(start)
			var e struct{ Error string }
			if resp.StatusCode < 500 || json.Unmarshal(b, &e) != nil || e.Error == "" {
				t.Fatalf("uncached package with the upstream %s: %d %s, want a 5xx npm error", mode, resp.StatusCode, b)
			}
			if took > 10*time.Second {
				t.Fatalf("uncached package with the upstream %s failed after %s", mode, took)
			}
			t.Logf("uncached package with the upstream %s: %d %s after %s", mode, resp.StatusCode, b, took)
		})
	}
}

// A package the upstream does not have is 404 here too, in npm's format.
func TestNPMCacheAnswersTheUpstreams404(t *testing.T) {
	w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour})
	for _, path := range []string{"/npm/no-such-package", "/npm/@up%2fmissing", "/npm/no-such-package/-/no-such-package-1.0.0.tgz"} {
		resp, b := npmDo(t, "GET", w.cache.URL+path, npmCacheToken, nil, nil)
		var e struct{ Error string }
		if resp.StatusCode != http.StatusNotFound || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Fatalf("GET %s: %d %s, want a 404 npm error", path, resp.StatusCode, b)
		}
	}
	if n := w.proxy.Count("GET", `^/npm/(no-such-package|@up/missing)$`); n == 0 {
		t.Fatalf("the upstream was not asked")
	}
}

// Local wins whole: a package published here, one unpublished here (its
// tombstone), and one of a local scope are never looked up upstream, even
// when the upstream has them at a higher version.
func TestNPMCacheNeverShadowsLocalPackages(t *testing.T) {
	w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour, LocalScopes: []string{"@local"}})
	for _, name := range []string{"shadowed", "gone", "@local/lib", "@up/lib"} {
		publishNPMVersion(t, w.up.URL, npmUpstreamToken, name, "9.9.9", tgzOf(name, "9.9.9"), nil)
	}
	publishNPMVersion(t, w.cache.URL, npmCacheToken, "shadowed", "1.0.0", tgzOf("shadowed", "1.0.0"), nil)
	publishNPMVersion(t, w.cache.URL, npmCacheToken, "gone", "1.0.0", tgzOf("gone", "1.0.0"), nil)
	unpublishNPM(t, w.cache.URL, npmCacheToken, "gone")
	w.proxy.Reset()

	for _, accept := range []string{"", corgi} {
		resp, b := getDoc(t, w.cache.URL, npmCacheToken, "shadowed", map[string]string{"Accept": accept})
		d := decodeNPMDoc(t, b)
		if _, up := d.Versions["9.9.9"]; resp.StatusCode != http.StatusOK || up || len(d.Versions) != 1 || d.DistTags["latest"] != "1.0.0" {
			t.Fatalf("local package (Accept %q): %d %s", accept, resp.StatusCode, b)
		}
	}
	for _, path := range []string{
		"/npm/shadowed/9.9.9", "/npm/shadowed/-/shadowed-9.9.9.tgz",
		"/npm/gone", "/npm/gone/9.9.9", "/npm/gone/-/gone-9.9.9.tgz",
		"/npm/@local%2flib", "/npm/@local/lib/-/lib-9.9.9.tgz",
	} {
		resp, b := npmDo(t, "GET", w.cache.URL+path, npmCacheToken, nil, nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET %s: %d %s, want 404", path, resp.StatusCode, b)
		}
	}
	resp, b := npmDo(t, "GET", w.cache.URL+"/npm/shadowed/-/shadowed-1.0.0.tgz", npmCacheToken, nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, tgzOf("shadowed", "1.0.0")) {
		t.Fatalf("local tarball: %d %q", resp.StatusCode, b)
	}
	for _, name := range []string{"shadowed", "gone", "@local/lib"} {
		if n := w.anyRequests(name); n != 0 {
			t.Fatalf("%s was looked up upstream %d times: %+v", name, n, w.proxy.Requests())
		}
	}
	// The control: a package of another scope does come from the upstream.
	if resp, b := getDoc(t, w.cache.URL, npmCacheToken, "@up/lib", nil); resp.StatusCode != http.StatusOK || w.anyRequests("@up/lib") == 0 {
		t.Fatalf("@up/lib through the cache: %d %s", resp.StatusCode, b)
	}
}

// evilUpstream is an npm upstream serving, for each package, a document
// with the integrity (or, for old versions, the shasum) of good bytes and
// a tarball of the bytes in served.
type evilUpstream struct {
	srv *httptest.Server
	mu  sync.Mutex
	// served is what the tarball of each version is, by file name.
	served map[string][]byte
}

func newEvilUpstream(t *testing.T, name string, versions map[string]string) *evilUpstream {
	t.Helper()
	e := &evilUpstream{served: map[string][]byte{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/"+name {
			vs := map[string]any{}
			times := map[string]string{"created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z"}
			for v, kind := range versions {
				good := tgzOf(name, v)
				dist := map[string]any{
					// It names another host: the cache must fetch from the upstream's own path.
					"tarball": "http://127.0.0.1:1/elsewhere/" + npmTarballFile(name, v),
				}
				s1 := sha1.Sum(good)
				dist["shasum"] = hex.EncodeToString(s1[:])
				if kind == "integrity" {
					dist["integrity"] = "sha512-" + sha512Base64(good)
				}
				vs[v] = map[string]any{"name": name, "version": v, "dist": dist}
				times[v] = "2020-01-01T00:00:00.000Z"
			}
			json.NewEncoder(w).Encode(map[string]any{"_id": name, "name": name, "dist-tags": map[string]string{"latest": "1.0.0"}, "versions": vs, "time": times})
			return
		}
		if file, ok := strings.CutPrefix(r.URL.Path, "/"+name+"/-/"); ok {
			e.mu.Lock()
			b, ok := e.served[file]
			e.mu.Unlock()
			if ok {
				w.Header().Set("Content-Length", fmt.Sprint(len(b)))
				w.Write(b)
				return
			}
		}
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *evilUpstream) serve(file string, b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.served[file] = b
}

// getTarballLoosely GETs a tarball and returns the status and what arrived
// of the body, and whether the body broke off.
func getTarballLoosely(t *testing.T, url string) (int, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+npmCacheToken)
	// A fresh connection each time: Go's client retries a GET once when a
	// reused connection closes before an answer, which would count twice.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// A tarball whose bytes do not match the document's integrity (or, for a
// version without integrity, its shasum) reaches no client whole and is not
// stored: the next GET asks the upstream again. One that matches is stored
// and served without asking again.
func TestNPMCacheRefusesATarballThatDoesNotMatchItsDocument(t *testing.T) {
	const name = "evil"
	evil := newEvilUpstream(t, name, map[string]string{"1.0.0": "integrity", "0.9.0": "shasum", "1.1.0": "integrity"})
	proxy := cachetest.NewProxy(t, evil.srv.URL)
	cache := npmCacheOf(t, npm.Settings{Upstream: npm.Upstream{URL: proxy.URL()}, UpstreamMaxAge: time.Hour})
	for _, v := range []string{"1.0.0", "0.9.0"} {
		file := npmTarballFile(name, v)
		bad := append(tgzOf(name, v)[:50:50], []byte("...with something else inside, the same length or not")...)
		evil.serve(file, bad)
		url := cache.URL + "/npm/" + name + "/-/" + file
		for i := range 2 {
			status, b, err := getTarballLoosely(t, url)
			if status == http.StatusOK && err == nil {
				t.Fatalf("%s (GET %d): a tarball that does not verify was served whole: %q", file, i+1, b)
			}
			if n := proxy.Count("GET", "^/"+name+"/-/"+regexpQuote(file)+"$"); n != i+1 {
				t.Fatalf("%s (GET %d): %d upstream tarball requests, want %d (a bad tarball must not be stored); requests %+v", file, i+1, n, i+1, proxy.Requests())
			}
		}
		// Once the upstream serves the right bytes, they are served and kept.
		evil.serve(file, tgzOf(name, v))
		for range 2 {
			status, b, err := getTarballLoosely(t, url)
			if status != http.StatusOK || err != nil || !bytes.Equal(b, tgzOf(name, v)) {
				t.Fatalf("%s with the right bytes: %d %v %q", file, status, err, b)
			}
		}
		if n := proxy.Count("GET", "^/"+name+"/-/"+regexpQuote(file)+"$"); n != 3 {
			t.Fatalf("%s: %d upstream tarball requests, want 3 (2 refused, 1 stored)", file, n)
		}
	}
	if n := proxy.Count("", "elsewhere"); n != 0 {
		t.Fatalf("the cache followed the document's tarball host")
	}
}

// npm audit through the cache: only the names that come from the upstream
// leave the registry; the upstream's answer is passed on; when the
// upstream is down the answer is "no advisories" with an npm-notice.
func TestNPMCacheAuditForwardsOnlyUpstreamNames(t *testing.T) {
	w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour, LocalScopes: []string{"@local"}})
	publishNPMVersion(t, w.up.URL, npmUpstreamToken, "left-pad", "1.0.0", tgzOf("left-pad", "1.0.0"), nil)
	publishNPMVersion(t, w.cache.URL, npmCacheToken, "secret-internal", "1.0.0", tgzOf("secret-internal", "1.0.0"), nil)
	advisories := `{"left-pad":[{"id":1,"url":"https://example.com/a/1","title":"bad pad","severity":"high","vulnerable_versions":"<2.0.0","cwe":[],"cvss":{"score":7.5,"vectorString":null}}]}`
	w.mu.Lock()
	w.advisories = []byte(advisories)
	w.mu.Unlock()
	const bulk = "/npm/-/npm/v1/security/advisories/bulk"
	asked := []byte(`{"left-pad":["1.0.0"],"secret-internal":["1.0.0"],"@local/private":["2.0.0"]}`)

	resp, b := npmDo(t, "POST", w.cache.URL+bulk, npmCacheToken, asked, nil)
	var got, want any
	json.Unmarshal(b, &got)
	json.Unmarshal([]byte(advisories), &want)
	if resp.StatusCode != http.StatusOK || !reflect.DeepEqual(got, want) {
		t.Fatalf("audit through the cache: %d %s, want the upstream's %s", resp.StatusCode, b, advisories)
	}
	w.mu.Lock()
	bodies := w.auditBodies
	w.mu.Unlock()
	if len(bodies) != 1 {
		t.Fatalf("%d audit requests reached the upstream, want 1", len(bodies))
	}
	var forwarded map[string][]string
	if err := json.Unmarshal(bodies[0], &forwarded); err != nil || !reflect.DeepEqual(forwarded, map[string][]string{"left-pad": {"1.0.0"}}) {
		t.Fatalf("forwarded audit body %s, want only left-pad", bodies[0])
	}

	// Only local names: nothing leaves.
	resp, b = npmDo(t, "POST", w.cache.URL+bulk, npmCacheToken, []byte(`{"secret-internal":["1.0.0"]}`), nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "{}" {
		t.Fatalf("audit of local names: %d %s", resp.StatusCode, b)
	}
	w.mu.Lock()
	n := len(w.auditBodies)
	w.mu.Unlock()
	if n != 1 {
		t.Fatalf("an audit of local names only reached the upstream")
	}
	for _, r := range w.proxy.Requests() {
		if strings.Contains(r.Path+r.RawQuery, "secret-internal") || strings.Contains(r.Path, "@local") {
			t.Fatalf("a local name reached the upstream: %s %s", r.Method, r.Path)
		}
	}

	// The upstream down: no advisories, and a notice saying why.
	w.proxy.RefuseStatus(http.StatusServiceUnavailable)
	resp, b = npmDo(t, "POST", w.cache.URL+bulk, npmCacheToken, asked, nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "{}" || resp.Header.Get("npm-notice") == "" {
		t.Fatalf("audit with the upstream down: %d %s, npm-notice %q", resp.StatusCode, b, resp.Header.Get("npm-notice"))
	}
}

// /-/npm/v1/keys carries the upstream's keys, and keeps them when the
// upstream goes down.
func TestNPMCacheServesTheUpstreamsKeys(t *testing.T) {
	w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour})
	keys := `{"keys":[{"expires":null,"keyid":"SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA","keytype":"ecdsa-sha2-nistp256","scheme":"ecdsa-sha2-nistp256","key":"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE1Olb3zMAFFxXKHiIkQO5cJ3Yhl5i6UPp+IhuteBJbuHcA5UogKo0EWtlWwW6KSaKoTNEYL7JlCQiVnkhBktUgg=="}]}`
	w.mu.Lock()
	w.keys = []byte(keys)
	w.mu.Unlock()
	var want any
	json.Unmarshal([]byte(keys), &want)
	for _, down := range []bool{false, true} {
		if down {
			w.proxy.RefuseStatus(http.StatusServiceUnavailable)
		}
		resp, b := npmDo(t, "GET", w.cache.URL+"/npm/-/npm/v1/keys", "", nil, nil)
		var got any
		json.Unmarshal(b, &got)
		if resp.StatusCode != http.StatusOK || !reflect.DeepEqual(got, want) {
			t.Fatalf("keys through the cache (upstream down: %v): %d %s, want %s", down, resp.StatusCode, b, keys)
		}
	}
	if n := w.proxy.Count("GET", "^/npm/-/npm/v1/keys$"); n != 1 {
		t.Fatalf("%d upstream keys requests, want 1", n)
	}
}

// npm sends the bulk advisories body gzipped (Content-Encoding: gzip, see
// npm's arborist audit-report.js): the cache must read it so.
func TestNPMCacheAuditReadsTheGzippedBodyNPMSends(t *testing.T) {
	w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour})
	publishNPMVersion(t, w.up.URL, npmUpstreamToken, "left-pad", "1.0.0", tgzOf("left-pad", "1.0.0"), nil)
	publishNPMVersion(t, w.cache.URL, npmCacheToken, "secret-internal", "1.0.0", tgzOf("secret-internal", "1.0.0"), nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"left-pad":["1.0.0"],"secret-internal":["1.0.0"]}`))
	zw.Close()
	resp, b := npmDo(t, "POST", w.cache.URL+"/npm/-/npm/v1/security/advisories/bulk", npmCacheToken, gz.Bytes(), map[string]string{"Content-Encoding": "gzip"})
	if resp.StatusCode == http.StatusBadRequest {
		t.Fatalf("registry/npm/audit.go auditUpstream reads the body as plain JSON, ignoring Content-Encoding: gzip, and answers 400 to every npm audit through a cache: %s", b)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("gzipped audit: %d %s", resp.StatusCode, b)
	}
	w.mu.Lock()
	bodies := w.auditBodies
	w.mu.Unlock()
	if len(bodies) != 1 || !strings.Contains(string(bodies[0]), "left-pad") || strings.Contains(string(bodies[0]), "secret-internal") {
		t.Fatalf("forwarded audit bodies %q, want one naming left-pad only", bodies)
	}
}

// An audit forwards only names the caller may read: an anonymous caller of
// a cache without anonymous scopes sends the upstream nothing, and a body
// naming more packages than an audit may is refused before any lookup.
func TestNPMCacheAuditForwardsOnlyNamesTheCallerMayRead(t *testing.T) {
	w := newNPMCacheWorld(t, npm.Settings{UpstreamMaxAge: time.Hour})
	publishNPMVersion(t, w.up.URL, npmUpstreamToken, "left-pad", "1.0.0", tgzOf("left-pad", "1.0.0"), nil)
	const bulk = "/npm/-/npm/v1/security/advisories/bulk"
	resp, b := npmDo(t, "POST", w.cache.URL+bulk, "", []byte(`{"left-pad":["1.0.0"]}`), nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "{}" {
		t.Fatalf("anonymous audit: %d %s", resp.StatusCode, b)
	}
	w.mu.Lock()
	n := len(w.auditBodies)
	w.mu.Unlock()
	if n != 0 {
		t.Fatalf("an anonymous audit sent %d requests upstream", n)
	}
	var many strings.Builder
	many.WriteString("{")
	for i := range 10001 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"p%d":["1.0.0"]`, i)
	}
	many.WriteString("}")
	if resp, b := npmDo(t, "POST", w.cache.URL+bulk, npmCacheToken, []byte(many.String()), nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an audit of 10,001 names: %d %s", resp.StatusCode, b)
	}
}
