package npm

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"testing"
)

func TestAbbreviatedDocumentHasOnlyInstallFields(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	p := newPublish("x", "1.0.0", tarballOf("x", "1.0.0"))
	m := p.manifest()
	m["dependencies"] = map[string]any{"a": "^1.0.0"}
	m["peerDependencies"] = map[string]any{"b": "*"}
	m["bin"] = map[string]any{"x": "bin/x.js"}
	m["engines"] = map[string]any{"node": ">=18"}
	m["readme"] = "# a long readme"
	m["keywords"] = []any{"k"}
	m["author"] = "someone"
	p.doc["readme"] = "# a long readme"
	expectStatus(t, hs.publishAs("writer", "", p), http.StatusCreated)

	accept := "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
	w := hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": accept}})
	expectStatus(t, w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); ct != mediaTypeAbbreviated {
		t.Fatalf("Content-Type = %q, want %q", ct, mediaTypeAbbreviated)
	}
	doc := decodeBody(t, w)
	var keys []string
	for k := range doc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"dist-tags", "modified", "name", "time", "versions"}; !reflect.DeepEqual(keys, want) {
		t.Fatalf("top-level fields = %v, want %v", keys, want)
	}
	if doc["name"] != "x" || doc["modified"] == nil || doc["modified"] == "" {
		t.Fatalf("name/modified = %v/%v", doc["name"], doc["modified"])
	}
	if times, _ := doc["time"].(map[string]any); times["1.0.0"] == nil {
		t.Fatalf("time = %v, want the publish time of 1.0.0", doc["time"])
	}
	v := versionOf(doc, "1.0.0")
	for _, f := range []string{"name", "version", "dist", "dependencies", "peerDependencies", "bin", "engines"} {
		if _, ok := v[f]; !ok {
			t.Errorf("abbreviated version lacks %s: %v", f, v)
		}
	}
	for f := range v {
		if !slices.Contains(abbreviatedFields, f) {
			t.Errorf("abbreviated version carries %s", f)
		}
	}
	for _, f := range []string{"readme", "description", "scripts", "keywords", "author", "_id", "main"} {
		if _, ok := v[f]; ok {
			t.Errorf("abbreviated version carries %s", f)
		}
	}
	if got, want := tarballURLOf(doc, "1.0.0"), testRoot+"/x/-/x-1.0.0.tgz"; got != want {
		t.Fatalf("tarball URL = %s, want %s", got, want)
	}

	// ?write=true always gets the full document.
	w = hs.do(call{method: http.MethodGet, path: "/x?write=true", user: "reader", header: map[string]string{"Accept": accept}})
	expectStatus(t, w, http.StatusOK)
	if full := decodeBody(t, w); full["readme"] != "# a long readme" || versionOf(full, "1.0.0")["scripts"] == nil {
		t.Fatalf("GET ?write=true did not answer the full document: %v", full)
	}
}

func TestFullDocumentForPlainJSONAccept(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	for _, accept := range []string{"", "application/json", "*/*"} {
		w := hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": accept}})
		expectStatus(t, w, http.StatusOK)
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Accept %q: Content-Type %q", accept, ct)
		}
		if doc := decodeBody(t, w); versionOf(doc, "1.0.0")["scripts"] == nil || doc["_rev"] == nil {
			t.Fatalf("Accept %q: not the full document: %v", accept, doc)
		}
	}
}

func TestPackumentETagAnswers304(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	get := func(header map[string]string) *httptest.ResponseRecorder {
		return hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: header})
	}
	w := get(nil)
	expectStatus(t, w, http.StatusOK)
	etag := w.Header().Get("ETag")
	if etag == "" || etag[0] != '"' {
		t.Fatalf("ETag = %q, want a quoted entity tag", etag)
	}
	abbr := hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": mediaTypeAbbreviated}}).Header().Get("ETag")
	if abbr == etag {
		t.Fatalf("full and abbreviated documents share ETag %s", etag)
	}
	tests := []struct {
		name        string
		ifNoneMatch string
		want        int
	}{
		{"same tag", etag, http.StatusNotModified},
		{"weak form", "W/" + etag, http.StatusNotModified},
		{"in a list", `"other", ` + etag, http.StatusNotModified},
		{"star", "*", http.StatusNotModified},
		{"other tag", `"other"`, http.StatusOK},
		{"abbreviated tag for full document", abbr, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := get(map[string]string{"If-None-Match": tt.ifNoneMatch})
			expectStatus(t, w, tt.want)
			if tt.want == http.StatusNotModified && w.Body.Len() != 0 {
				t.Fatalf("304 with a body: %q", w.Body.String())
			}
		})
	}
	hs.mustPublish("x", "1.1.0")
	w = get(map[string]string{"If-None-Match": etag})
	expectStatus(t, w, http.StatusOK)
	if w.Header().Get("ETag") == etag {
		t.Fatal("ETag unchanged after a publish")
	}
	if got := versionsOf(decodeBody(t, w)); !slices.Contains(got, "1.1.0") {
		t.Fatalf("versions = %v", got)
	}
}

func TestPackumentETagDependsOnHost(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	a := hs.get("reader", "http://a.test/npm/x")
	b := hs.get("reader", "http://b.test/npm/x")
	expectStatus(t, a, http.StatusOK)
	expectStatus(t, b, http.StatusOK)
	if a.Header().Get("ETag") == b.Header().Get("ETag") {
		t.Fatal("documents with different tarball URLs share an ETag")
	}
	if got := tarballURLOf(decodeBody(t, b), "1.0.0"); got != "http://b.test/npm/x/-/x-1.0.0.tgz" {
		t.Fatalf("tarball URL = %s, want it under the request's host", got)
	}
}

func TestPackumentIsGzippedWhenAccepted(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	for _, accept := range []string{"application/json", mediaTypeAbbreviated} {
		t.Run(accept, func(t *testing.T) {
			plain := hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": accept}})
			expectStatus(t, plain, http.StatusOK)
			if plain.Header().Get("Content-Encoding") != "" {
				t.Fatal("gzip sent to a client that did not ask for it")
			}
			w := hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": accept, "Accept-Encoding": "deflate, gzip;q=1.0, br"}})
			expectStatus(t, w, http.StatusOK)
			if ce := w.Header().Get("Content-Encoding"); ce != "gzip" {
				t.Fatalf("Content-Encoding = %q", ce)
			}
			if cl := w.Header().Get("Content-Length"); cl != itoa(w.Body.Len()) {
				t.Fatalf("Content-Length %s for %d bytes", cl, w.Body.Len())
			}
			zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain.Body.Bytes()) {
				t.Fatalf("gunzipped body differs from the plain one:\n%s\n%s", got, plain.Body.Bytes())
			}
			w = hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": accept, "Accept-Encoding": "gzip;q=0"}})
			if w.Header().Get("Content-Encoding") != "" {
				t.Fatal("gzip sent although q=0 refused it")
			}
		})
	}
}

func TestPackumentHeadHasNoBody(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	w := hs.do(call{method: http.MethodHead, path: "/x", user: "reader"})
	expectStatus(t, w, http.StatusOK)
	if w.Body.Len() != 0 || w.Header().Get("ETag") == "" {
		t.Fatalf("HEAD: body %d bytes, ETag %q", w.Body.Len(), w.Header().Get("ETag"))
	}
}

func TestWritesThroughAnotherInstanceAreSeen(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	other := hs.newHandler()
	hs.mustPublish("x", "1.0.0")
	first := hs.get("reader", "/x")
	expectStatus(t, first, http.StatusOK)
	etag := first.Header().Get("ETag")
	// Warm the abbreviated rendering too.
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": mediaTypeAbbreviated}}), http.StatusOK)

	p := newPublish("x", "2.0.0", tarballOf("x", "2.0.0"))
	w := hs.doOn(other, call{method: http.MethodPut, path: "/x", body: p.body(), user: "writer"})
	expectStatus(t, w, http.StatusCreated)

	w = hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"If-None-Match": etag}})
	expectStatus(t, w, http.StatusOK)
	doc := decodeBody(t, w)
	if got := versionsOf(doc); !reflect.DeepEqual(got, []string{"1.0.0", "2.0.0"}) || distTagsOf(doc)["latest"] != "2.0.0" {
		t.Fatalf("first instance serves versions %v, dist-tags %v", got, distTagsOf(doc))
	}
	w = hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": mediaTypeAbbreviated}})
	if got := versionsOf(decodeBody(t, w)); len(got) != 2 {
		t.Fatalf("abbreviated document stale: %v", got)
	}
	w = hs.get("reader", "/x/latest")
	expectStatus(t, w, http.StatusOK)
	if decodeBody(t, w)["version"] != "2.0.0" {
		t.Fatalf("latest manifest stale: %s", w.Body.String())
	}
	w = hs.get("reader", "/x/-/x-2.0.0.tgz")
	expectStatus(t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), tarballOf("x", "2.0.0")) {
		t.Fatal("new tarball not served by the first instance")
	}

	rev := doc["_rev"].(string)
	expectStatus(t, hs.doOn(other, call{method: http.MethodDelete, path: "/x/-rev/" + rev, user: "admin"}), http.StatusOK)
	expectStatus(t, hs.get("reader", "/x"), http.StatusNotFound)
	expectStatus(t, hs.get("reader", "/x/-/x-1.0.0.tgz"), http.StatusNotFound)
}

func TestGetVersionByVersionOrTag(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("@acme/x", "1.0.0")
	expectStatus(t, hs.publishAs("writer", "", newPublish("@acme/x", "2.0.0-beta.1", tarballOf("@acme/x", "2.0.0-beta.1")).tag(map[string]any{"beta": "2.0.0-beta.1"})), http.StatusCreated)
	tests := []struct {
		path, want string
	}{
		{"/@acme%2fx/1.0.0", "1.0.0"},
		{"/@acme/x/latest", "1.0.0"},
		{"/@acme%2Fx/beta", "2.0.0-beta.1"},
		{"/@acme%2fx/2.0.0-beta.1", "2.0.0-beta.1"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := hs.get("reader", tt.path)
			expectStatus(t, w, http.StatusOK)
			m := decodeBody(t, w)
			if m["version"] != tt.want || m["name"] != "@acme/x" {
				t.Fatalf("manifest = %v, want version %s", m, tt.want)
			}
			d := m["dist"].(map[string]any)
			if want := testRoot + "/@acme/x/-/x-" + tt.want + ".tgz"; d["tarball"] != want {
				t.Fatalf("tarball = %v, want %s", d["tarball"], want)
			}
		})
	}
	expectError(t, hs.get("reader", "/@acme%2fx/9.9.9"), http.StatusNotFound, "9.9.9")
	expectError(t, hs.get("reader", "/@acme%2fx/nope"), http.StatusNotFound, "nope")
}

func TestGetTarball(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	tb := hs.mustPublish("x", "1.0.0")
	t.Run("range", func(t *testing.T) {
		w := hs.do(call{method: http.MethodGet, path: "/x/-/x-1.0.0.tgz", user: "reader", header: map[string]string{"Range": "bytes=2-5"}})
		expectStatus(t, w, http.StatusPartialContent)
		if !bytes.Equal(w.Body.Bytes(), tb[2:6]) {
			t.Fatalf("range body = %q, want %q", w.Body.Bytes(), tb[2:6])
		}
	})
	t.Run("immutable caching", func(t *testing.T) {
		w := hs.get("reader", "/x/-/x-1.0.0.tgz")
		expectStatus(t, w, http.StatusOK)
		if w.Header().Get("ETag") == "" || w.Header().Get("Cache-Control") == "" {
			t.Fatalf("headers = %v", w.Header())
		}
		etag := w.Header().Get("ETag")
		w = hs.do(call{method: http.MethodGet, path: "/x/-/x-1.0.0.tgz", user: "reader", header: map[string]string{"If-None-Match": etag}})
		expectStatus(t, w, http.StatusNotModified)
	})
	t.Run("unknown file", func(t *testing.T) {
		expectError(t, hs.get("reader", "/x/-/x-9.9.9.tgz"), http.StatusNotFound, "x-9.9.9.tgz")
	})
	t.Run("another package's file", func(t *testing.T) {
		hs.mustPublish("y", "1.0.0")
		expectStatus(t, hs.get("reader", "/x/-/y-1.0.0.tgz"), http.StatusNotFound)
	})
	t.Run("head", func(t *testing.T) {
		w := hs.do(call{method: http.MethodHead, path: "/x/-/x-1.0.0.tgz", user: "reader"})
		expectStatus(t, w, http.StatusOK)
		if w.Body.Len() != 0 {
			t.Fatal("HEAD carried a body")
		}
	})
}

func TestTarballURLsFollowPrefixAndBaseURL(t *testing.T) {
	tests := []struct {
		name    string
		options func(*Options)
		prefix  string // what Prefix() reports
		target  string // where requests go, before the package path
		want    string // the tarball URL's start
	}{
		{"default prefix, request host", nil, "/npm", "http://registry.test/npm", "http://registry.test/npm"},
		{"custom prefix", func(o *Options) { o.Prefix = "registry/npm/" }, "/registry/npm", "http://registry.test/registry/npm", "http://registry.test/registry/npm"},
		{"configured base URL", func(o *Options) {
			o.BaseURL = func(*http.Request) string { return "https://public.example/" }
		}, "/npm", "http://internal:5000/npm", "https://public.example/npm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: tt.options})
			if got := hs.h.Prefix(); got != tt.prefix {
				t.Fatalf("Prefix() = %q, want %q", got, tt.prefix)
			}
			p := newPublish("@acme/x", "1.0.0", tarballOf("@acme/x", "1.0.0"))
			w := hs.do(call{method: http.MethodPut, path: tt.target + "/@acme%2fx", body: p.body(), user: "writer"})
			expectStatus(t, w, http.StatusCreated)
			w = hs.get("reader", tt.target+"/@acme%2fx")
			expectStatus(t, w, http.StatusOK)
			if got, want := tarballURLOf(decodeBody(t, w), "1.0.0"), tt.want+"/@acme/x/-/x-1.0.0.tgz"; got != want {
				t.Fatalf("tarball URL = %s, want %s", got, want)
			}
			w = hs.get("reader", tt.target+"/@acme/x/-/x-1.0.0.tgz")
			expectStatus(t, w, http.StatusOK)
		})
	}
}

func TestPathsOutsideThePrefixAre404(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	for _, target := range []string{"http://registry.test/x", "http://registry.test/npmx", "http://registry.test/npm", "http://registry.test/npm/", "http://registry.test/npmx/x"} {
		w := hs.get("reader", target)
		expectError(t, w, http.StatusNotFound, "not found")
	}
}

func TestWrongMethodsAre405(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	tests := []struct{ method, path string }{
		{http.MethodPost, "/x"},
		{http.MethodDelete, "/x"},
		{http.MethodPut, "/x/-/x-1.0.0.tgz"},
		{http.MethodPut, "/x/1.0.0"},
		{http.MethodGet, "/x/-rev/1-a"},
		{http.MethodGet, "/x/-/x-1.0.0.tgz/-rev/1-a"},
		{http.MethodPost, "/-/v1/search"},
		{http.MethodGet, "/-/npm/v1/security/advisories/bulk"},
		{http.MethodPut, "/-/package/x/dist-tags"},
		{http.MethodGet, "/-/package/x/dist-tags/latest"},
		{http.MethodDelete, "/-/npm/v1/tokens"},
		{http.MethodGet, "/-/npm/v1/tokens/token/abcdef"},
		{http.MethodGet, "/-/user/token/abc"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			expectError(t, hs.do(call{method: tt.method, path: tt.path, user: "admin"}), http.StatusMethodNotAllowed, tt.method)
		})
	}
}

func TestUnknownPathsAre404(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	for _, path := range []string{"/-/nope", "/x/1.0.0/more", "/-/package/x/owners"} {
		expectError(t, hs.get("admin", path), http.StatusNotFound, "not found")
	}
}

func TestInvalidNameInURLIs400(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	for _, path := range []string{"/_upper", "/.x", "/@Acme%2fx", "/-/package/-dash/dist-tags", "/node_modules/-/node_modules-1.0.0.tgz"} {
		expectError(t, hs.get("admin", path), http.StatusBadRequest, "invalid package name")
	}
}
