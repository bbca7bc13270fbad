package npm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage"
)

// countingStore counts the bytes written and read through it.
type countingStore struct {
	storage.Driver
	written, read atomic.Int64
}

func (s *countingStore) Put(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	info, err := s.Driver.Put(ctx, key, r, cond)
	if err == nil {
		s.written.Add(info.Size)
	}
	return info, err
}

func (s *countingStore) Open(ctx context.Context, key string) (storage.Object, error) {
	o, err := s.Driver.Open(ctx, key)
	if err == nil {
		s.read.Add(o.Info().Size)
	}
	return o, err
}

// readme4K is a readme of 4 KB, as npm sends it in every version.
var readme4K = strings.Repeat("# bench\n"+readmeLine+"\n", 4096/38+1)[:4096]

const readmeLine = "A readme line of the package."

// publishWithReadme publishes name@version with a 4 KB readme in its
// manifest and at the top level, as npm does.
func (hs *harness) publishWithReadme(h http.Handler, name, version string) {
	hs.t.Helper()
	p := newPublish(name, version, tarballOf(name, version))
	p.manifest()["readme"], p.manifest()["readmeFilename"] = readme4K, "README.md"
	p.doc["readme"] = readme4K
	w := hs.doOn(h, call{method: http.MethodPut, path: "/" + escapeName(name), body: p.body(), user: "admin",
		header: map[string]string{"Content-Type": "application/json"}})
	expectStatus(hs.t, w, http.StatusCreated)
}

// listedSegments returns the storage keys of the segments name's index in
// store lists.
func listedSegments(t *testing.T, store storage.Driver, name string) []string {
	t.Helper()
	b, _, err := storage.ReadAll(context.Background(), store, packumentKey(name))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := decodePackument(b)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range asSlice(doc[segmentsField]) {
		keys = append(keys, segmentKey(name, str(obj(r)["id"])))
	}
	return keys
}

// TestPublishCostDoesNotGrowWithTheVersions publishes 1,000 versions with
// a 4 KB readme each and counts storage traffic: what the publishes
// around the 1,000th write and read, amortized over the merges, stays
// within a bound that does not depend on the version count (the whole
// document, rewritten by every publish before, was about 1 MB by then),
// and the document carries the readme once.
func TestPublishCostDoesNotGrowWithTheVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 publishes")
	}
	hs := newHarness(t, defaultUsers())
	cs := &countingStore{Driver: hs.store}
	h := mustNew(Options{Storage: cs, Gate: hs.gate})
	const window = 64
	var early, late struct{ written, read int64 }
	for i := range 1000 {
		w0, r0 := cs.written.Load(), cs.read.Load()
		hs.publishWithReadme(h, "big", fmt.Sprintf("1.0.%d", i))
		dw, dr := cs.written.Load()-w0, cs.read.Load()-r0
		switch {
		case i >= window && i < 2*window:
			early.written, early.read = early.written+dw, early.read+dr
		case i >= 1000-window:
			late.written, late.read = late.written+dw, late.read+dr
		}
	}
	perEarly, perLate := early.written/window, late.written/window
	t.Logf("bytes written per publish: %d at versions 64-127, %d at 936-999; read: %d, %d", perEarly, perLate, early.read/window, late.read/window)
	// A publish writes its tarball, the index (the readme's 4 KB and
	// more), one version and, amortized, O(log n) versions of merges:
	// 30 KB bounds that at any count a test can reach, the whole document
	// of 1,000 versions alone is 1 MB.
	if perLate > 30<<10 || perLate > 2*perEarly {
		t.Fatalf("a publish at 1,000 versions writes %d bytes (%d at 64): it grows with the versions", perLate, perEarly)
	}
	// The index is read, the segments come from the cache.
	if perRead := late.read / window; perRead > 16<<10 {
		t.Fatalf("a publish at 1,000 versions reads %d bytes", perRead)
	}
	w := hs.doOn(h, call{method: http.MethodGet, path: "/big", user: "reader"})
	expectStatus(t, w, http.StatusOK)
	if n := bytes.Count(w.Body.Bytes(), []byte(readmeLine)); n != strings.Count(readme4K, readmeLine) {
		t.Fatalf("the readme's lines are in the document %d times, want once (%d lines)", n, strings.Count(readme4K, readmeLine))
	}
	if got := len(versionsOf(decodeBody(t, w))); got != 1000 {
		t.Fatalf("%d versions, want 1000", got)
	}
	if n := len(listedSegments(t, hs.store, "big")); n > 11 {
		t.Fatalf("%d segments for 1,000 versions, want at most log2(1000)+1", n)
	}
}

// killStore is the storage of a process that dies when it reaches the swap
// of a package's index: that write and every later call fail, so nothing
// after it (the cleanup of the segments it wrote) reaches storage.
type killStore struct {
	storage.Driver
	at   string
	dead atomic.Bool
}

var errKilled = errors.New("killed")

func (s *killStore) Put(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	if key == s.at {
		s.dead.Store(true)
	}
	if s.dead.Load() {
		return storage.Info{}, errKilled
	}
	return s.Driver.Put(ctx, key, r, cond)
}

func (s *killStore) Delete(ctx context.Context, key string) error {
	if s.dead.Load() {
		return errKilled
	}
	return s.Driver.Delete(ctx, key)
}

func (s *killStore) Move(ctx context.Context, src, dst string) error {
	if s.dead.Load() {
		return errKilled
	}
	return s.Driver.Move(ctx, src, dst)
}

// TestGCSweepsTheSegmentOfAPublishKilledBeforeItsIndex: a publish killed
// between its segment and its index leaves a segment no index lists. The
// collector keeps it while it is young (it may be a publish in flight)
// and everything the index lists always; once the grace passed, the
// orphan goes, and the package reads as before.
func TestGCSweepsTheSegmentOfAPublishKilledBeforeItsIndex(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
			env.mustPublish("x", v)
		}
		listed := listedSegments(t, env.store, "x")
		killed := mustNew(Options{Storage: &killStore{Driver: env.store, at: packumentKey("x")}, Gate: env.gate})
		p := newPublish("x", "2.0.0", tarballOf("x", "2.0.0"))
		w := env.doOn(killed, call{method: http.MethodPut, path: "/x", body: p.body(), user: "admin",
			header: map[string]string{"Content-Type": "application/json"}})
		if w.Code < 500 {
			t.Fatalf("the killed publish answered %d", w.Code)
		}
		var orphans []string
		for _, k := range env.keys(segmentsKey("x")) {
			if !contains(listed, k) {
				orphans = append(orphans, k)
			}
		}
		if len(orphans) != 1 {
			t.Fatalf("segments %v, listed %v: want one orphan", env.keys(segmentsKey("x")), listed)
		}
		if d := env.collect(gc.Options{}); len(d) != 0 {
			t.Fatalf("a young orphan segment was swept: %v", d)
		}
		env.age()
		deleted := env.collect(gc.Options{})
		var swept []string
		for _, d := range deleted {
			if strings.Contains(d.Key, "/versions/") {
				swept = append(swept, d.Key)
			}
		}
		if len(swept) != 1 || swept[0] != orphans[0] {
			t.Fatalf("swept segments %v, want the orphan %s", swept, orphans[0])
		}
		for _, k := range listed {
			if !env.exists(k) {
				t.Fatalf("listed segment %s was deleted", k)
			}
		}
		if got := versionsOf(env.packument("reader", "x")); len(got) != 3 {
			t.Fatalf("versions after the collection: %v", got)
		}
		for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
			expectStatus(t, env.get("reader", "/x/-/x-"+v+".tgz"), http.StatusOK)
		}
		env.mustPublish("x", "2.0.0") // the killed publish, retried
	})
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

// TestWholeDocumentIsReadAndMigrated: a document of the older layout
// (versions inline, each with the readme, no segments) is served with the
// readme once, and the next publish writes it in segments, keeping every
// version and its publish time.
func TestWholeDocumentIsReadAndMigrated(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	versions, times := map[string]any{}, map[string]any{"created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-03T00:00:00.000Z"}
	for i, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		tb := tarballOf("old", v)
		if _, err := hs.store.Put(context.Background(), tarballKey("old", sha512Hex(tb)), bytes.NewReader(tb), storage.Condition{}); err != nil {
			t.Fatal(err)
		}
		versions[v] = map[string]any{"name": "old", "version": v, "readme": readme4K, "readmeFilename": "README.md",
			"dist": map[string]any{"integrity": integrityOf(tb), "shasum": shasumOf(tb), "tarball": "old/-/old-" + v + ".tgz"}}
		times[v] = fmt.Sprintf("2020-01-0%dT00:00:00.000Z", i+1)
	}
	putJSON(t, hs, packumentKey("old"), map[string]any{"_id": "old", "name": "old", "_rev": "3-abc",
		"dist-tags": map[string]any{"latest": "1.2.0"}, "versions": versions, "time": times})

	check := func(want int) map[string]any {
		t.Helper()
		w := hs.get("reader", "/old")
		expectStatus(t, w, http.StatusOK)
		if n := bytes.Count(w.Body.Bytes(), []byte(readmeLine)); n != strings.Count(readme4K, readmeLine) {
			t.Fatalf("the readme's lines are in the document %d times, want once (%d lines)", n, strings.Count(readme4K, readmeLine))
		}
		doc := decodeBody(t, w)
		if got := len(versionsOf(doc)); got != want {
			t.Fatalf("%d versions, want %d", got, want)
		}
		if doc["readme"] != readme4K {
			t.Fatalf("the top-level readme is missing")
		}
		if ts := obj(doc["time"]); ts["1.0.0"] != "2020-01-01T00:00:00.000Z" || ts["created"] != "2020-01-01T00:00:00.000Z" {
			t.Fatalf("times: %v", ts)
		}
		return doc
	}
	check(3)
	expectStatus(t, hs.get("reader", "/old/-/old-1.1.0.tgz"), http.StatusOK)
	hs.mustPublish("old", "2.0.0")
	doc := check(4)
	if versionOf(doc, "1.1.0")["readme"] != nil {
		t.Fatalf("a migrated version still has its readme")
	}
	stored, _ := decodePackument(hs.storedPackument("old"))
	if stored["versions"] != nil || stored[segmentsField] == nil {
		t.Fatalf("the migrated index: %v", stored)
	}
	for v := range obj(stored["time"]) {
		if validVersion(v) {
			t.Fatalf("the index holds version time %s: version times belong in the segments", v)
		}
	}
	// A version of the old document is still never reused.
	w := hs.publishAs("admin", "", newPublish("old", "1.0.0", tarballOf("old", "1.0.0")))
	expectStatus(t, w, http.StatusForbidden)
}

// TestConcurrentPublishesFromTwoHandlersBothLand: two processes publish
// different versions of one package at once; the one whose index swap
// loses reads the winner's document and merges its version into it.
func TestConcurrentPublishesFromTwoHandlersBothLand(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		env.mustPublish("x", "1.0.0")
		other := mustNew(Options{Storage: env.store, Gate: env.gate})
		swapping := env.store.pauseAt("put", packumentKey("x"))
		first := make(chan int, 1)
		go func() { first <- env.publishAs("admin", "", newPublish("x", "1.1.0", tarballOf("x", "1.1.0"))).Code }()
		swapping.wait(t)
		p := newPublish("x", "1.2.0", tarballOf("x", "1.2.0"))
		w := env.doOn(other, call{method: http.MethodPut, path: "/x", body: p.body(), user: "admin",
			header: map[string]string{"Content-Type": "application/json"}})
		expectStatus(t, w, http.StatusCreated)
		swapping.release()
		if code := <-first; code != http.StatusCreated {
			t.Fatalf("the publish that lost the swap: %d", code)
		}
		for _, h := range []http.Handler{env.h, other} {
			w := env.doOn(h, call{method: http.MethodGet, path: "/x", user: "reader"})
			expectStatus(t, w, http.StatusOK)
			if got := versionsOf(decodeBody(t, w)); len(got) != 3 {
				t.Fatalf("versions %v, want 1.0.0, 1.1.0 and 1.2.0", got)
			}
		}
		expectOnlyListedSegments(t, env.store, "x")

		// Many at once, alternating processes.
		var wg sync.WaitGroup
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h := []http.Handler{env.h, other}[i%2]
				p := newPublish("x", fmt.Sprintf("2.0.%d", i), tarballOf("x", fmt.Sprintf("2.0.%d", i)))
				w := env.doOn(h, call{method: http.MethodPut, path: "/x", body: p.body(), user: "admin",
					header: map[string]string{"Content-Type": "application/json"}})
				if w.Code != http.StatusCreated {
					t.Errorf("publish 2.0.%d: %d %s", i, w.Code, w.Body)
				}
			}()
		}
		wg.Wait()
		if got := versionsOf(env.packument("reader", "x")); len(got) != 19 {
			t.Fatalf("%d versions, want 19: %v", len(got), got)
		}
		expectOnlyListedSegments(t, env.store, "x")
	})
}

// expectOnlyListedSegments fails when storage holds a segment of name its
// index does not list: updates delete the segments they replace, and
// those of an index swap they lost.
func expectOnlyListedSegments(t *testing.T, store storage.Driver, name string) {
	t.Helper()
	listed := listedSegments(t, store, name)
	err := storage.Walk(context.Background(), store, segmentsKey(name), func(info storage.Info) error {
		if !contains(listed, info.Key) {
			t.Errorf("segment %s is stored but not listed (%v)", info.Key, listed)
		}
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
}

// TestDeprecateAndUnpublishOneVersionInSegments: changes to published
// versions rewrite the segments that hold them, never a manifest a reader
// holds, and an unpublished version's time stays.
func TestDeprecateAndUnpublishOneVersionInSegments(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	for i := range 5 {
		hs.mustPublish("x", fmt.Sprintf("1.0.%d", i))
	}
	before, err := hs.h.packages.cached(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	doc := hs.writeDoc("x")
	obj(obj(doc["versions"])["1.0.1"])["deprecated"] = "use 1.0.4"
	expectStatus(t, hs.putDoc("admin", "x", doc), http.StatusOK)
	if before.doc.version("1.0.1")["deprecated"] != nil {
		t.Fatalf("the deprecation wrote into a manifest a reader held")
	}
	got := hs.packument("reader", "x")
	for _, v := range versionsOf(got) {
		if dep := versionOf(got, v)["deprecated"]; (v == "1.0.1") != (dep == "use 1.0.4") {
			t.Fatalf("%s deprecated: %v", v, dep)
		}
	}
	expectOnlyListedSegments(t, hs.store, "x")

	doc = hs.writeDoc("x")
	delete(obj(doc["versions"]), "1.0.2")
	expectStatus(t, hs.putDoc("admin", "x", doc), http.StatusOK)
	got = hs.packument("reader", "x")
	if v := versionsOf(got); len(v) != 4 || versionOf(got, "1.0.2") != nil {
		t.Fatalf("versions after unpublishing 1.0.2: %v", v)
	}
	if obj(got["time"])["1.0.2"] == nil {
		t.Fatalf("the unpublished version's time went")
	}
	if versionOf(got, "1.0.1")["deprecated"] != "use 1.0.4" {
		t.Fatalf("the deprecation went with the unpublish")
	}
	expectStatus(t, hs.get("reader", "/x/-/x-1.0.2.tgz"), http.StatusNotFound)
	expectStatus(t, hs.publishAs("admin", "", newPublish("x", "1.0.2", tarballOf("x", "1.0.2"))), http.StatusForbidden)
	expectOnlyListedSegments(t, hs.store, "x")

	// The whole package goes: its segments too, its versions stay used.
	w := hs.do(call{method: http.MethodDelete, path: "/x/-rev/" + str(got["_rev"]), user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if objs := hs.objects(segmentsKey("x")); len(objs) != 0 {
		t.Fatalf("segments of a deleted package: %v", objs)
	}
	expectStatus(t, hs.publishAs("admin", "", newPublish("x", "1.0.3", tarballOf("x", "1.0.3"))), http.StatusForbidden)
	hs.mustPublish("x", "3.0.0")
}
