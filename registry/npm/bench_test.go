package npm

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// packument150 is a package document with 150 versions of about 1 KB of
// typical metadata each (about 150 KB serialised).
func packument150(b *testing.B) packument {
	versions := map[string]any{}
	times := map[string]any{}
	for i := range 150 {
		v := fmt.Sprintf("1.%d.0", i)
		sum := sha512.Sum512([]byte(v))
		deps := map[string]any{}
		for d := range 10 {
			deps[fmt.Sprintf("dependency-number-%d", d)] = fmt.Sprintf("^%d.0.0", d+1)
		}
		versions[v] = map[string]any{
			"name": "bench", "version": v, "main": "index.js", "license": "MIT",
			"description":  "A package of the benchmark, with metadata of a typical size.",
			"keywords":     []any{"bench", "registry"},
			"author":       map[string]any{"name": "Bench", "email": "bench@example.com"},
			"repository":   map[string]any{"type": "git", "url": "git+https://example.com/bench.git"},
			"scripts":      map[string]any{"test": "node test.js"},
			"dependencies": deps,
			"dist": map[string]any{
				"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sum[:]),
				"shasum":    fmt.Sprintf("%x", sum[:20]),
				"tarball":   "http://x/bench/-/bench-" + v + ".tgz",
			},
		}
		times[v] = "2026-01-01T00:00:00.000Z"
	}
	raw, _ := json.Marshal(map[string]any{"_id": "bench", "name": "bench", "versions": versions, "time": times,
		"dist-tags": map[string]any{"latest": "1.149.0"}})
	var p packument
	if err := json.Unmarshal(raw, &p); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkPackumentRender is the work done once per change of a package:
// the full and the abbreviated document serialised for a base URL, each
// plain and gzipped.
func BenchmarkPackumentRender(b *testing.B) {
	p := packument150(b)
	b.ReportAllocs()
	for b.Loop() {
		c := newCachedDoc(p, "v1")
		full, err := c.render("http://registry.example/npm", false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.render("http://registry.example/npm", true); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(full.plain)))
	}
}

// BenchmarkPackumentRenderCached is what every later GET pays.
func BenchmarkPackumentRenderCached(b *testing.B) {
	c := newCachedDoc(packument150(b), "v1")
	c.render("http://registry.example/npm", false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.render("http://registry.example/npm", false); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPublisher is a Handler over in-memory storage that an admin token
// may publish to, and the storage it works on, which a benchmark swaps.
type benchPublisher struct {
	h     *Handler
	store *swapStore
	token string
}

// swapStore lets a benchmark give the handler a fresh copy of a seeded
// store before each measured publish.
type swapStore struct{ storage.Driver }

func newBenchPublisher(b *testing.B) *benchPublisher {
	tok, err := auth.NewToken()
	if err != nil {
		b.Fatal(err)
	}
	static, err := auth.NewStaticTokenStore(&authstore.File{Version: authstore.Version,
		Tokens: []authstore.Token{{Hash: auth.HashToken(tok), User: "admin", Scopes: []string{"*"}}}})
	if err != nil {
		b.Fatal(err)
	}
	st := &swapStore{inmemory.New()}
	gate := auth.NewService(auth.ServiceOptions{Authenticator: static})
	return &benchPublisher{h: mustNew(Options{Storage: st, Gate: gate}), store: st, token: tok}
}

// benchManifest is a version's manifest of a typical size (about 1 KB)
// with a 4 KB readme, as npm sends it.
func benchManifest(name, version string, tarball []byte) *publishReq {
	p := newPublish(name, version, tarball)
	m := p.manifest()
	deps := map[string]any{}
	for d := range 10 {
		deps[fmt.Sprintf("dependency-number-%d", d)] = fmt.Sprintf("^%d.0.0", d+1)
	}
	m["dependencies"], m["license"], m["keywords"] = deps, "MIT", []any{"bench", "registry"}
	m["repository"] = map[string]any{"type": "git", "url": "git+https://example.com/bench.git"}
	m["readme"], m["readmeFilename"] = readme4K, "README.md"
	p.doc["readme"] = readme4K
	return p
}

// seed publishes n versions of name through the store layer (the publish
// path's document update, without HTTP and tarballs), one update each, so
// the segments are what n publishes leave.
func (bp *benchPublisher) seed(b *testing.B, name string, n int) {
	ctx := context.Background()
	for i := range n {
		v := fmt.Sprintf("1.0.%d", i)
		p := benchManifest(name, v, []byte(v))
		vm := p.manifest()
		_, err := bp.h.packages.update(ctx, name, func(cur *draft) (*draft, error) {
			return mergePublish(cur, packument(p.doc), name, v, vm, map[string]string{"latest": v}, "admin")
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// copyStore is a new in-memory store with every object of from.
func copyStore(b *testing.B, from storage.Driver) storage.Driver {
	ctx := context.Background()
	to := inmemory.New()
	err := storage.Walk(ctx, from, "npm", func(info storage.Info) error {
		body, _, err := storage.ReadAll(ctx, from, info.Key)
		if err == nil {
			_, err = to.Put(ctx, info.Key, bytes.NewReader(body), storage.Condition{})
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return to
}

func (bp *benchPublisher) serve(b *testing.B, method, path string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://registry.bench/npm"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bp.token)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	bp.h.ServeHTTP(w, req)
	return w
}

// BenchmarkPublish is the publish of one version over HTTP (PUT /:pkg
// with its tarball, through the auth gate, to in-memory storage) into a
// package that has 1, 100 or 1,000 versions with a 4 KB readme each. Each
// measured publish starts from a copy of the seeded store, so every one
// lands on exactly that many versions, in the segments that many
// publishes leave; the handler's caches stay warm, as in the process that
// published them. The 1,000 case reports the full document's size.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("versions=%d", n), func(b *testing.B) {
			bp := newBenchPublisher(b)
			bp.seed(b, "bench", n)
			seeded := bp.store.Driver
			tb := tarballOf("bench", "2.0.0")
			body := benchManifest("bench", "2.0.0", tb).body()
			var doc []byte
			if n == 1000 {
				doc = bp.serve(b, http.MethodGet, "/bench", nil).Body.Bytes()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				bp.store.Driver = copyStore(b, seeded)
				b.StartTimer()
				if w := bp.serve(b, http.MethodPut, "/bench", body); w.Code != http.StatusCreated {
					b.Fatalf("publish: %d %s", w.Code, w.Body)
				}
			}
			if doc != nil { // after the loop: ResetTimer drops metrics
				b.ReportMetric(float64(len(doc)), "packument-bytes")
				b.ReportMetric(float64(bytes.Count(doc, []byte(readmeLine))/strings.Count(readme4K, readmeLine)), "readme-copies")
			}
		})
	}
}
