package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// putSmallPackuments writes n small packuments (one version each, in the
// older whole layout) straight to storage, as n publishes would leave them.
func putSmallPackuments(tb testing.TB, store storage.Driver, n int) {
	tb.Helper()
	ctx := context.Background()
	for i := range n {
		name := fmt.Sprintf("pkg-%05d", i)
		doc := map[string]any{
			"_id": name, "name": name, "description": fmt.Sprintf("package number %d of the benchmark", i),
			"dist-tags": map[string]any{"latest": "1.0.0"},
			"versions": map[string]any{"1.0.0": map[string]any{
				"name": name, "version": "1.0.0", "keywords": []any{"bench", fmt.Sprintf("k%d", i%100)},
				"dist": map[string]any{"tarball": name + "/-/" + name + "-1.0.0.tgz"},
			}},
			"time":        map[string]any{"created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z", "1.0.0": "2026-01-01T00:00:00.000Z"},
			"maintainers": []any{map[string]any{"name": "bench", "email": "bench@example.com"}},
		}
		b, err := json.Marshal(doc)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := store.Put(ctx, packumentKey(name), bytes.NewReader(b), storage.Condition{}); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkSearch10kPackages is a search over 10,000 packages held here
// (in-memory storage, no gate), once the first search has been answered:
// the steady state of a registry that is searched more often than written.
func BenchmarkSearch10kPackages(b *testing.B) {
	store := inmemory.New()
	putSmallPackuments(b, store, 10000)
	h := mustNew(Options{Storage: store})
	queries := []string{"pkg-00042", "benchmark", "keywords:k7", "number 99"}
	search := func(text string) {
		req := httptest.NewRequest(http.MethodGet, "http://registry.bench/npm/-/v1/search?"+url.Values{"text": {text}}.Encode(), nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("search %q: %d %s", text, w.Code, w.Body)
		}
	}
	search("warm")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		search(queries[i%len(queries)])
		i++
	}
}

// packumentCounter counts the Opens and Stats of packuments.
type packumentCounter struct {
	storage.Driver
	opens, stats atomic.Int64
}

func (c *packumentCounter) Open(ctx context.Context, key string) (storage.Object, error) {
	if strings.HasSuffix(key, "/packument.json") {
		c.opens.Add(1)
	}
	return c.Driver.Open(ctx, key)
}

func (c *packumentCounter) Stat(ctx context.Context, key string) (storage.Info, error) {
	if strings.HasSuffix(key, "/packument.json") {
		c.stats.Add(1)
	}
	return c.Driver.Stat(ctx, key)
}

// searchOn runs a search on h as an anonymous caller (no gate: everyone
// reads everything) and returns the names found.
func searchOn(t *testing.T, h http.Handler, text string) []string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://registry.test/npm/-/v1/search?"+url.Values{"text": {text}, "size": {"250"}}.Encode(), nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	expectStatus(t, w, http.StatusOK)
	var names []string
	for _, o := range decodeBody(t, w)["objects"].([]any) {
		names = append(names, o.(map[string]any)["package"].(map[string]any)["name"].(string))
	}
	return names
}

// A second search reads no packument when nothing changed: not even with
// a document cache too small to hold one, and not even once the index is
// swept again (which Stats them, and reloads none).
func TestSearchAgainReadsNoPackument(t *testing.T) {
	const n = 200
	store := &packumentCounter{Driver: inmemory.New()}
	putSmallPackuments(t, store, n)
	h := mustNew(Options{Storage: store, Settings: Settings{DocumentCacheSize: 1}})
	if got := searchOn(t, h, "benchmark"); len(got) != n {
		t.Fatalf("first search found %d packages, want %d", len(got), n)
	}
	if o := store.opens.Load(); o < n {
		t.Fatalf("first search opened %d packuments, want every one of %d", o, n)
	}
	store.opens.Store(0)
	store.stats.Store(0)
	if got := searchOn(t, h, "benchmark"); len(got) != n {
		t.Fatalf("second search found %d packages, want %d", len(got), n)
	}
	if o, s := store.opens.Load(), store.stats.Load(); o != 0 || s != 0 {
		t.Fatalf("second search opened %d packuments and stat'ed %d, want none", o, s)
	}
}
