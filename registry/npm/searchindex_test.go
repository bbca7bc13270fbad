package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

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
	opens, stats, lists atomic.Int64
}

func (c *packumentCounter) List(ctx context.Context, prefix string) ([]string, error) {
	c.lists.Add(1)
	return c.Driver.List(ctx, prefix)
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
	h.searchIndex.setIntervals(0, 0) // every search sweeps first
	if got := searchOn(t, h, "benchmark"); len(got) != n {
		t.Fatalf("search after a sweep found %d packages, want %d", len(got), n)
	}
	if o, s := store.opens.Load(), store.stats.Load(); o != 0 || s != n {
		t.Fatalf("search after a sweep opened %d packuments and stat'ed %d, want none and %d", o, s, n)
	}
}

// setIntervals sets the sweep intervals of the index (see searchIndex).
func (x *searchIndex) setIntervals(sweepEvery, maxAge time.Duration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.sweepEvery, x.maxAge = sweepEvery, maxAge
}

// searchNamesOn searches on h as user and returns the names found.
func (hs *harness) searchNamesOn(h http.Handler, user, text string) []string {
	hs.t.Helper()
	w := hs.doOn(h, call{method: http.MethodGet, path: "/-/v1/search?" + url.Values{"text": {text}}.Encode(), user: user})
	expectStatus(hs.t, w, http.StatusOK)
	var names []string
	for _, o := range decodeBody(hs.t, w)["objects"].([]any) {
		names = append(names, o.(map[string]any)["package"].(map[string]any)["name"].(string))
	}
	return names
}

// publishOn publishes name@1.0.0 with a description through h.
func (hs *harness) publishOn(h http.Handler, name, description string) {
	hs.t.Helper()
	p := newPublish(name, "1.0.0", tarballOf(name, "1.0.0"))
	p.doc["description"] = description
	w := hs.doOn(h, call{method: http.MethodPut, path: "/" + escapeName(name), body: p.body(), user: "admin",
		header: map[string]string{"Content-Type": "application/json"}})
	expectStatus(hs.t, w, http.StatusCreated)
}

// unpublishOn deletes the whole package through h.
func (hs *harness) unpublishOn(h http.Handler, name string) {
	hs.t.Helper()
	rev := hs.writeDoc(name)["_rev"].(string)
	expectStatus(hs.t, hs.doOn(h, call{method: http.MethodDelete, path: "/" + escapeName(name) + "/-rev/" + rev, user: "admin"}), http.StatusOK)
}

func TestSearchSeesItsOwnPublishAtOnce(t *testing.T) {
	hs := searchHarness(t)
	if got := hs.searchNamesOn(hs.h, "admin", "pad"); len(got) != 3 {
		t.Fatalf("search = %v", got)
	}
	hs.h.searchIndex.setIntervals(time.Hour, time.Hour) // no sweep from now on
	hs.publishOn(hs.h, "center-pad", "pads in the middle")
	if got, want := hs.searchNamesOn(hs.h, "admin", "middle"), []string{"center-pad"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("search after a publish = %v, want %v", got, want)
	}
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/-/package/center-pad/dist-tags/beta", user: "admin",
		body: []byte(`"1.0.0"`), header: map[string]string{"Content-Type": "application/json"}}), http.StatusCreated)
	hs.unpublishOn(hs.h, "center-pad")
	if got := hs.searchNamesOn(hs.h, "admin", "middle"); len(got) != 0 {
		t.Fatalf("search after the unpublish = %v, want nothing", got)
	}
}

func TestSearchSeesAnotherHandlersWritesAfterTheBound(t *testing.T) {
	hs := searchHarness(t)
	other := hs.newHandler() // another replica over the same storage
	if got := hs.searchNamesOn(hs.h, "admin", "pad"); len(got) != 3 {
		t.Fatalf("search = %v", got)
	}
	hs.h.searchIndex.setIntervals(time.Hour, time.Hour)
	hs.publishOn(other, "center-pad", "pads in the middle")
	hs.unpublishOn(other, "right-pad")
	// Within the bound, the index answers as it was: it read nothing.
	if got, want := hs.searchNamesOn(hs.h, "admin", "pad"), []string{"left-pad", "right-pad", "@acme/secret"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("search within the bound = %v, want %v", got, want)
	}
	hs.h.searchIndex.setIntervals(10*time.Millisecond, 30*time.Millisecond)
	time.Sleep(40 * time.Millisecond)
	if got, want := hs.searchNamesOn(hs.h, "admin", "pad"), []string{"center-pad", "left-pad", "@acme/secret"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("search after the bound = %v, want %v", got, want)
	}
}

func TestSearchForgetsPackagesWhoseFilesAreGone(t *testing.T) {
	hs := searchHarness(t)
	if got := hs.searchNamesOn(hs.h, "admin", "pad"); len(got) != 3 {
		t.Fatalf("search = %v", got)
	}
	if err := hs.store.DeleteAll(context.Background(), packageKey("left-pad")); err != nil {
		t.Fatal(err)
	}
	hs.h.searchIndex.setIntervals(0, 0) // every search sweeps first
	if got, want := hs.searchNamesOn(hs.h, "admin", "pad"), []string{"right-pad", "@acme/secret"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("search = %v, want %v", got, want)
	}
}

// A caller who may read nothing gets the empty answer without a look at
// storage, or at the index.
func TestSearchByACallerWhoMayReadNothingReadsNothing(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}, "pusher": {"oci:repository:*:push"}})
	hs.mustPublish("left-pad", "1.0.0")
	store := &packumentCounter{Driver: hs.store}
	h := mustNew(Options{Storage: store, Gate: hs.gate})
	if got := hs.searchNamesOn(h, "pusher", "pad"); len(got) != 0 {
		t.Fatalf("search = %v, want nothing", got)
	}
	if o, s, l := store.opens.Load(), store.stats.Load(), store.lists.Load(); o+s+l != 0 {
		t.Fatalf("search opened %d packuments, stat'ed %d, listed %d times: want nothing", o, s, l)
	}
	h.searchIndex.mu.Lock()
	defer h.searchIndex.mu.Unlock()
	if !h.searchIndex.started.IsZero() {
		t.Fatal("the search swept the index")
	}
}

// interposer runs a function after a List or a Stat of the store returned,
// before the caller sees what it returned: a write racing that call.
type interposer struct {
	storage.Driver
	afterList, afterStat func(key string)
}

func (s *interposer) List(ctx context.Context, prefix string) ([]string, error) {
	names, err := s.Driver.List(ctx, prefix)
	if s.afterList != nil {
		s.afterList(prefix)
	}
	return names, err
}

func (s *interposer) Stat(ctx context.Context, key string) (storage.Info, error) {
	info, err := s.Driver.Stat(ctx, key)
	if s.afterStat != nil {
		s.afterStat(key)
	}
	return info, err
}

// A sweep never undoes a write of this handler that raced it: neither a
// publish between the sweep's listing and its answer (the package is not
// listed), nor one between a package's Stat (not found) and its answer.
func TestSearchIndexKeepsWritesThatRaceASweep(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	store := &interposer{Driver: hs.store}
	h := mustNew(Options{Storage: store, Gate: hs.gate})
	putJSON(t, hs, packageKey("late")+"/tarballs/0", "a file: late is listed, without a document")
	var listed, statted atomic.Bool
	store.afterList = func(prefix string) {
		if prefix == packagesKey && listed.CompareAndSwap(false, true) {
			hs.publishOn(h, "early", "a racing package")
		}
	}
	store.afterStat = func(key string) {
		if key == packumentKey("late") && statted.CompareAndSwap(false, true) {
			hs.publishOn(h, "late", "a racing package")
		}
	}
	hs.searchNamesOn(h, "reader", "racing") // the first search, and its sweep
	if !listed.Load() || !statted.Load() {
		t.Fatalf("the writes did not race the sweep (listed %v, stat'ed %v)", listed.Load(), statted.Load())
	}
	h.searchIndex.setIntervals(time.Hour, time.Hour) // what the index holds now
	if got, want := hs.searchNamesOn(h, "reader", "racing"), []string{"early", "late"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("search = %v, want %v", got, want)
	}
}

func TestSearchIndexSkipsACorruptDocumentUntilItChanges(t *testing.T) {
	store := &packumentCounter{Driver: inmemory.New()}
	putSmallPackuments(t, store, 3)
	ctx := context.Background()
	if _, err := store.Put(ctx, packumentKey("pkg-00001"), strings.NewReader("{not json"), storage.Condition{}); err != nil {
		t.Fatal(err)
	}
	h := mustNew(Options{Storage: store})
	if got, want := searchOn(t, h, "benchmark"), []string{"pkg-00000", "pkg-00002"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("search = %v, want %v", got, want)
	}
	h.searchIndex.setIntervals(0, 0)
	store.opens.Store(0)
	searchOn(t, h, "benchmark")
	if o := store.opens.Load(); o != 0 {
		t.Fatalf("a sweep opened %d packuments, want none: the corrupt one did not change", o)
	}
	putSmallPackuments(t, store, 3) // repaired
	if got := searchOn(t, h, "benchmark"); len(got) != 3 {
		t.Fatalf("search after the repair = %v", got)
	}
}

// The index keeps a bounded part of a package however large its document.
func TestSearchDocIsBounded(t *testing.T) {
	var keywords, maintainers []any
	for i := range 100 {
		keywords = append(keywords, fmt.Sprintf("keyword-%d-%s", i, strings.Repeat("k", 200)))
		maintainers = append(maintainers, map[string]any{"name": strings.Repeat("n", 500), "email": strings.Repeat("é", 300)})
	}
	d := newSearchDoc(packument{
		"name": "big", "description": strings.Repeat("é", 5000), "dist-tags": map[string]any{"latest": "1.0.0"},
		"versions":    map[string]any{"1.0.0": map[string]any{"keywords": keywords}},
		"maintainers": maintainers,
	})
	if n := len(d.hit.description); n > maxIndexedText || n < maxIndexedText-1 || !utf8.ValidString(d.hit.description) {
		t.Errorf("description of %d bytes (valid UTF-8: %v), want at most %d", n, utf8.ValidString(d.hit.description), maxIndexedText)
	}
	if len(d.keywords) != maxIndexedKeywords || len(d.hit.keywords) != maxIndexedKeywords {
		t.Errorf("%d keywords (%d in the hit), want %d", len(d.keywords), len(d.hit.keywords), maxIndexedKeywords)
	}
	if len(d.hit.maintainers) != maxIndexedPeople {
		t.Errorf("%d maintainers, want %d", len(d.hit.maintainers), maxIndexedPeople)
	}
	for _, w := range append(append([]string{}, d.keywords...), d.maintainers...) {
		if len(w) > maxIndexedWord || !utf8.ValidString(w) {
			t.Fatalf("kept %q (%d bytes), want at most %d of valid UTF-8", w, len(w), maxIndexedWord)
		}
	}
}
