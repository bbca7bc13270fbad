package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// The npm uplink against the real clients: two registry binaries, the
// upstream and a cache whose --npm-upstream is a counting proxy in front of
// it (the proxy of registry/internal/cachetest cannot be imported from
// here, so this is a small one of the same kind).

// upstreamProxy forwards to an upstream, keeping the client's Host header,
// records what it was asked, and can refuse or drop.
type upstreamProxy struct {
	srv *httptest.Server

	mu       sync.Mutex
	mode     string // "" passes, "refuse" answers 503, "drop" closes the connection
	requests []string
	audits   [][]byte // the bodies of bulk advisory requests
}

func newUpstreamProxy(t *testing.T, target string) *upstreamProxy {
	t.Helper()
	u, _ := url.Parse(target)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host // the upstream builds its URLs for the proxy
	}}
	p := &upstreamProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var audit []byte
		if strings.HasSuffix(r.URL.Path, "/security/advisories/bulk") {
			audit, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(audit))
		}
		p.mu.Lock()
		p.requests = append(p.requests, r.Method+" "+r.URL.Path)
		if audit != nil {
			p.audits = append(p.audits, audit)
		}
		mode := p.mode
		p.mu.Unlock()
		switch mode {
		case "refuse":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"refused by the test's proxy"}`)
		case "drop":
			panic(http.ErrAbortHandler)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(func() { p.srv.CloseClientConnections(); p.srv.Close() })
	return p
}

func (p *upstreamProxy) setMode(mode string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
}

// take returns the requests received since the last take and forgets them.
func (p *upstreamProxy) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.requests
	p.requests = nil
	return r
}

// npmCacheSetup is an upstream registry holding a small dependency tree,
// behind a proxy, and a cache registry of it.
type npmCacheSetup struct {
	up, cache *server
	proxy     *upstreamProxy
	upWorld   *npmWorld
}

// The tree: cache-tree-a depends on cache-tree-b and @treescope/c, both of
// which depend on cache-tree-d.
var npmCacheTree = []struct {
	name, version string
	deps          map[string]string
}{
	{"cache-tree-d", "1.2.0", nil},
	{"cache-tree-b", "1.0.0", map[string]string{"cache-tree-d": "^1.0.0"}},
	{"@treescope/c", "2.0.1", map[string]string{"cache-tree-d": "^1.1.0"}},
	{"cache-tree-a", "1.0.0", map[string]string{"cache-tree-b": "^1.0.0", "@treescope/c": "^2.0.0"}},
}

func startNPMCache(t *testing.T, cacheArgs ...string) *npmCacheSetup {
	t.Helper()
	npm := npmClient(t, "npm")
	up := startServer(t, "")
	upWorld := newNPMWorld(t, up, up.adminToken())
	for _, p := range npmCacheTree {
		extra := map[string]any{}
		if p.deps != nil {
			extra["dependencies"] = p.deps
		}
		dir := upWorld.pkg("pub/"+strings.ReplaceAll(p.name, "/", "_"), p.name, p.version, extra)
		upWorld.run(dir, npm, "publish")
	}
	proxy := newUpstreamProxy(t, up.url)
	cred := filepath.Join(t.TempDir(), "upstream-token")
	if err := os.WriteFile(cred, []byte(up.adminToken()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--npm-upstream", proxy.srv.URL + "/npm", "--npm-upstream-credentials", cred}, cacheArgs...)
	cache := startServer(t, "", args...)
	return &npmCacheSetup{up: up, cache: cache, proxy: proxy, upWorld: upWorld}
}

// upstreamDoc is the upstream's own packument of name.
func (s *npmCacheSetup) upstreamDoc(t *testing.T, name string) map[string]any {
	t.Helper()
	return packumentFrom(t, s.up, name)
}

func packumentFrom(t *testing.T, s *server, name string) map[string]any {
	t.Helper()
	resp := s.request("GET", "/npm/"+strings.Replace(name, "/", "%2f", 1), s.adminToken(), nil)
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s from %s: %d %v", name, s.url, resp.StatusCode, err)
	}
	return doc
}

func integrityOf(doc map[string]any, version string) string {
	v, _ := doc["versions"].(map[string]any)[version].(map[string]any)
	d, _ := v["dist"].(map[string]any)
	s, _ := d["integrity"].(string)
	return s
}

// lockPackages reads package-lock.json's packages.
func lockPackages(t *testing.T, dir string) map[string]struct{ Version, Resolved, Integrity string } {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct{ Version, Resolved, Integrity string }
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	return lock.Packages
}

// expectTree checks that the whole tree is installed in dir's node_modules
// (hoisted, as npm, yarn and the node-modules linker lay it out).
func expectTree(t *testing.T, dir string) {
	t.Helper()
	for _, p := range npmCacheTree {
		expectFile(t, filepath.Join(dir, "node_modules", p.name, "index.js"), p.name+"@"+p.version)
	}
}

// copyProject copies a project's package.json and lockfiles into a fresh
// project of w.
func copyProject(t *testing.T, from string, w *npmWorld, dir string, files ...string) string {
	t.Helper()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		w.write(filepath.Join(dir, f), string(b))
	}
	return filepath.Join(w.home, dir)
}

// npm install of a dependency tree through the cache keeps the upstream's
// integrity and publish times; a second npm ci (a fresh npm cache) within
// the max age sends nothing upstream.
func TestNPMCacheNPMInstallKeepsTheUpstreamsIntegrity(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startNPMCache(t)
	w := newNPMWorld(t, s.cache, s.cache.adminToken())
	app := w.project("app")
	w.run(app, npm, "install", "cache-tree-a")
	expectTree(t, app)
	if len(s.proxy.take()) == 0 {
		t.Fatalf("the install did not go through the upstream")
	}

	pkgs := lockPackages(t, app)
	for _, p := range npmCacheTree {
		upDoc := s.upstreamDoc(t, p.name)
		l := pkgs["node_modules/"+p.name]
		want := integrityOf(upDoc, p.version)
		if want == "" || l.Integrity != want || l.Version != p.version {
			t.Fatalf("%s in package-lock.json: %+v, upstream integrity %q", p.name, l, want)
		}
		if !strings.HasPrefix(l.Resolved, s.cache.url+"/npm/") {
			t.Fatalf("%s resolved from %s, not the cache %s", p.name, l.Resolved, s.cache.url)
		}
		// The publish times, as npm shows them through the cache.
		var times map[string]string
		if err := json.Unmarshal([]byte(w.run(app, npm, "view", p.name, "time", "--json")), &times); err != nil {
			t.Fatal(err)
		}
		upTimes := map[string]string{}
		for k, v := range upDoc["time"].(map[string]any) {
			upTimes[k] = v.(string)
		}
		if !reflect.DeepEqual(times, upTimes) || times[p.version] == "" {
			t.Fatalf("%s: time through the cache %v, upstream %v", p.name, times, upTimes)
		}
	}
	s.proxy.take()

	// A second machine (a fresh npm cache), the lockfile: nothing upstream.
	w2 := newNPMWorld(t, s.cache, s.cache.adminToken())
	app2 := copyProject(t, app, w2, "app", "package.json", "package-lock.json")
	w2.run(app2, npm, "ci", "--no-audit")
	expectTree(t, app2)
	if got := s.proxy.take(); len(got) != 0 {
		t.Fatalf("npm ci within the max age asked the upstream: %v", got)
	}
	// And an install resolving the tree again (packuments, not the lockfile).
	w3 := newNPMWorld(t, s.cache, s.cache.adminToken())
	app3 := w3.project("app")
	w3.run(app3, npm, "install", "--no-audit", "cache-tree-a")
	expectTree(t, app3)
	if got := s.proxy.take(); len(got) != 0 {
		t.Fatalf("npm install within the max age asked the upstream: %v", got)
	}
}

// With the upstream down (refusing, or dropping connections), and the
// cached documents past their max age, npm ci still installs from the
// cache, and so does an install that resolves the tree from the (stale)
// packuments.
func TestNPMCacheNPMCIWorksWithTheUpstreamDown(t *testing.T) {
	npm := npmClient(t, "npm")
	// A cache for each mode: the breaker one mode opens would keep the
	// next from reaching the upstream at all.
	for _, mode := range []string{"refuse", "drop"} {
		t.Run(mode, func(t *testing.T) {
			s := startNPMCache(t, "--npm-upstream-max-age", "1s")
			w := newNPMWorld(t, s.cache, s.cache.adminToken())
			app := w.project("app")
			w.run(app, npm, "install", "cache-tree-a")
			expectTree(t, app)
			time.Sleep(1500 * time.Millisecond) // past the max age: each read asks again
			s.proxy.setMode(mode)
			s.proxy.take()
			w2 := newNPMWorld(t, s.cache, s.cache.adminToken())
			app2 := copyProject(t, app, w2, "app", "package.json", "package-lock.json")
			w2.run(app2, npm, "ci")
			expectTree(t, app2)
			if len(s.proxy.take()) == 0 {
				t.Fatalf("the cache never asked the upstream: the stale path was not exercised")
			}
			app3 := w2.project("fresh")
			w2.run(app3, npm, "install", "cache-tree-a")
			expectTree(t, app3)
		})
	}
}

// pnpm, yarn classic and yarn berry install the tree through the cache,
// with the upstream's integrity where their lockfiles record it.
func TestNPMCacheOtherClientsInstallThroughTheCache(t *testing.T) {
	npmClient(t, "npm")
	s := startNPMCache(t)
	aIntegrity := integrityOf(s.upstreamDoc(t, "cache-tree-a"), "1.0.0")
	dIntegrity := integrityOf(s.upstreamDoc(t, "cache-tree-d"), "1.2.0")

	ran := 0
	t.Run("pnpm", func(t *testing.T) {
		pnpm := npmClient(t, "pnpm")
		ran++
		w := newNPMWorld(t, s.cache, s.cache.adminToken())
		app := w.project("app")
		w.run(app, pnpm, "add", "cache-tree-a")
		expectFile(t, filepath.Join(app, "node_modules/cache-tree-a/index.js"), "cache-tree-a@1.0.0")
		for _, want := range []string{aIntegrity, dIntegrity, "'@treescope/c@2.0.1'"} {
			expectFile(t, filepath.Join(app, "pnpm-lock.yaml"), want)
		}
		os.RemoveAll(filepath.Join(app, "node_modules"))
		w.run(app, pnpm, "install", "--frozen-lockfile")
		expectFile(t, filepath.Join(app, "node_modules/cache-tree-a/index.js"), "cache-tree-a@1.0.0")
	})
	t.Run("yarn classic", func(t *testing.T) {
		yarn := npmClient(t, "yarn")
		ran++
		w := newNPMWorld(t, s.cache, s.cache.adminToken())
		app := w.project("app")
		w.run(app, yarn, "add", "cache-tree-a")
		expectTree(t, app)
		for _, want := range []string{aIntegrity, dIntegrity, s.cache.url + "/npm/cache-tree-d/-/cache-tree-d-1.2.0.tgz"} {
			expectFile(t, filepath.Join(app, "yarn.lock"), want)
		}
		os.RemoveAll(filepath.Join(app, "node_modules"))
		w.run(app, yarn, "install", "--frozen-lockfile")
		expectTree(t, app)
	})
	t.Run("yarn berry", func(t *testing.T) {
		yarn := npmClient(t, "yarn-berry")
		ran++
		w := newNPMWorld(t, s.cache, s.cache.adminToken())
		app := w.project("app")
		w.write("app/yarn.lock", "")
		w.run(app, yarn, "add", "cache-tree-a")
		expectTree(t, app)
		expectFile(t, filepath.Join(app, "yarn.lock"), `"@treescope/c@npm:2.0.1"`)
		os.RemoveAll(filepath.Join(app, "node_modules"))
		w.run(app, yarn, "install", "--immutable")
		expectTree(t, app)
	})
	// Everything the clients fetched came through the upstream once per
	// tarball at most (tarballs are stored for good).
	counts := map[string]int{}
	for _, r := range s.proxy.take() {
		if strings.Contains(r, "/-/cache-tree-") || strings.Contains(r, "/-/c-") {
			counts[r]++
		}
	}
	for r, n := range counts {
		if n > 1 {
			t.Fatalf("%s reached the upstream %d times", r, n)
		}
	}
	if ran == 3 && len(counts) != len(npmCacheTree) {
		t.Fatalf("upstream tarball requests %v, want one per package of the tree", counts)
	}
}

// npm audit through the cache: the upstream is asked about the packages
// that came from it, never about a local one; with the upstream down the
// audit reports nothing instead of failing.
func TestNPMCacheNPMAuditForwardsOnlyUpstreamNames(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startNPMCache(t)
	w := newNPMWorld(t, s.cache, s.cache.adminToken())
	local := w.pkg("local", "cache-local-secret", "1.0.0", nil)
	w.run(local, npm, "publish")
	app := w.project("app")
	w.run(app, npm, "install", "--no-audit", "cache-tree-a", "cache-local-secret")
	out, err := w.cmd(app, npm, "audit").CombinedOutput()
	if err != nil && strings.Contains(string(out), "the audit body must be a JSON object") {
		// npm sends the bulk advisories body gzipped (Content-Encoding:
		// gzip); auditUpstream decodes it as plain JSON and answers 400.
		t.Fatal("registry/npm/audit.go auditUpstream does not decode a gzipped audit body (Content-Encoding: gzip), so npm audit fails with 400 through a cache: " + audit400(string(out)))
	}
	if err != nil || !strings.Contains(string(out), "found 0 vulnerabilities") {
		t.Fatalf("npm audit through the cache: %v\n%s", err, out)
	}
	s.proxy.mu.Lock()
	audits := s.proxy.audits
	s.proxy.mu.Unlock()
	if len(audits) == 0 {
		t.Fatalf("the audit was not forwarded upstream")
	}
	for _, a := range audits {
		var names map[string]any
		if err := json.Unmarshal(a, &names); err != nil || names["cache-tree-a"] == nil || names["cache-tree-d"] == nil {
			t.Fatalf("forwarded audit %q, want the tree's names", a)
		}
		if _, leaked := names["cache-local-secret"]; leaked {
			t.Fatalf("the local package's name reached the upstream: %s", a)
		}
	}
	s.proxy.setMode("refuse")
	if out := w.run(app, npm, "audit"); !strings.Contains(out, "found 0 vulnerabilities") {
		t.Fatalf("npm audit with the upstream down: %s", out)
	}
}

// audit400 is the line of npm's output saying the audit was refused.
func audit400(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "400") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
