package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/inmemory"
	"github.com/unireg/unireg/registry/storage/s3"
	"github.com/unireg/unireg/registry/storage/storagetest"
)

var emptyIndex = []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`)

// catalogPage is one GET of the catalog as user: the names and the path
// of the next page ("" without a Link).
func catalogPage(t *testing.T, hs *harness, user, path string) ([]string, string) {
	t.Helper()
	w := hs.do(call{method: "GET", path: path, user: user})
	expectStatus(t, w, http.StatusOK)
	var c struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatalf("catalog %s: %v", w.Body, err)
	}
	next := ""
	if link := w.Header().Get("Link"); link != "" {
		next = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
	}
	return c.Repositories, next
}

// catalogWalk follows the Links from the first page of n.
func catalogWalk(t *testing.T, hs *harness, user string, n int) []string {
	t.Helper()
	var all []string
	path := fmt.Sprintf("/v2/_catalog?n=%d", n)
	for pages := 0; path != ""; pages++ {
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		names, next := catalogPage(t, hs, user, path)
		if len(names) > n {
			t.Fatalf("%s: %d names", path, len(names))
		}
		all = append(all, names...)
		path = next
	}
	return all
}

// Names that share prefixes with '-', '.' and '/' after them are listed
// in the lexical order of the names, on every page size.
func TestCatalogOrdersNamesLexically(t *testing.T) {
	forEachStore(t, testCatalogOrdersNamesLexically)
}

// forEachStore runs fn on the in-memory and the filesystem backends, and
// on S3 under hack/with-minio.sh (UNIREG_S3_ENDPOINT set).
func forEachStore(t *testing.T, fn func(t *testing.T, store storage.Driver)) {
	t.Run("inmemory", func(t *testing.T) { fn(t, inmemory.New()) })
	t.Run("filesystem", func(t *testing.T) {
		store, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fn(t, store)
	})
	t.Run("s3", func(t *testing.T) {
		if os.Getenv("UNIREG_S3_ENDPOINT") == "" {
			t.Skip("no UNIREG_S3_ENDPOINT (hack/with-minio.sh)")
		}
		endpoint, access, secret := storagetest.MinIO(t)
		store, err := s3.New(t.Context(), s3.Options{Endpoint: endpoint, Bucket: fmt.Sprintf("catalog-%d", time.Now().UnixNano()),
			AccessKey: access, SecretKey: secret, CreateBucket: true})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, store)
	})
}

func testCatalogOrdersNamesLexically(t *testing.T, store storage.Driver) {
	hs := newHarnessOn(t, store, map[string][]string{"admin": {"*"}})
	names := []string{"a/b", "a.b", "a", "a-c", "a/b/c", "a0", "a/b-c", "ab", "b", "a__x"}
	for _, name := range names {
		expectStatus(t, putManifest(hs, name, "v1", MediaTypeOCIIndex, emptyIndex), http.StatusCreated)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if got, _ := catalogPage(t, hs, "admin", "/v2/_catalog"); !slices.Equal(got, want) {
		t.Fatalf("catalog %q, want %q", got, want)
	}
	for _, n := range []int{1, 2, 3, 100} {
		if got := catalogWalk(t, hs, "admin", n); !slices.Equal(got, want) {
			t.Fatalf("pages of %d: %q, want %q", n, got, want)
		}
	}
	if got, _ := catalogPage(t, hs, "admin", "/v2/_catalog?last=a&n=2"); !slices.Equal(got, []string{"a-c", "a.b"}) {
		t.Fatalf("after a: %q", got)
	}
	// last need not be a name: "a+" sorts between "a" and "a-c".
	if got, _ := catalogPage(t, hs, "admin", "/v2/_catalog?last=a%2B&n=1"); !slices.Equal(got, []string{"a-c"}) {
		t.Fatalf("after a+: %q", got)
	}
	if got, next := catalogPage(t, hs, "admin", "/v2/_catalog?n=0"); len(got) != 0 || next != "" {
		t.Fatalf("n=0: %q, next %q", got, next)
	}
	expectError(t, hs.do(call{method: "GET", path: "/v2/_catalog?n=x", user: "admin"}), http.StatusBadRequest, CodeUnsupported)
}

// A repository whose content is deleted leaves the catalog at once,
// though its marker stays; pushed again, it is back.
func TestCatalogSkipsDeletedRepository(t *testing.T) {
	forEachStore(t, testCatalogSkipsDeletedRepository)
}

func testCatalogSkipsDeletedRepository(t *testing.T, store storage.Driver) {
	hs := newHarnessOn(t, store, map[string][]string{"admin": {"*"}})
	for _, name := range []string{"keep", "gone", "zz"} {
		expectStatus(t, putManifest(hs, name, "v1", MediaTypeOCIIndex, emptyIndex), http.StatusCreated)
	}
	d := digest.FromBytes(emptyIndex)
	expectStatus(t, hs.do(call{method: "DELETE", path: "/v2/gone/manifests/" + d.String(), user: "admin"}), http.StatusAccepted)
	if _, err := hs.store.Stat(t.Context(), catalogMarkerKey("gone")); err != nil {
		t.Fatalf("marker of the deleted repository: %v", err)
	}
	for _, n := range []int{1, 2, 10} {
		if got := catalogWalk(t, hs, "admin", n); !slices.Equal(got, []string{"keep", "zz"}) {
			t.Fatalf("pages of %d after the delete: %q", n, got)
		}
	}
	other := hs.newHandler() // another replica sees it gone too
	w := hs.doOn(other, call{method: "GET", path: "/v2/_catalog", user: "admin"})
	if w.Body.String() != `{"repositories":["keep","zz"]}` {
		t.Fatalf("another replica's catalog: %s", w.Body)
	}
	expectStatus(t, putManifest(hs, "gone", "v1", MediaTypeOCIIndex, emptyIndex), http.StatusCreated)
	if got := catalogWalk(t, hs, "admin", 2); !slices.Equal(got, []string{"gone", "keep", "zz"}) {
		t.Fatalf("after pushing it again: %q", got)
	}
}

// A caller who may pull some repositories gets full pages of those only,
// however many others sort between them, and its Links name only them.
func TestCatalogPagesOfAScopedCaller(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}, "a-dev": {"oci:repository:team-a/*:pull"}})
	var want []string
	for i := range 30 {
		team := []string{"team-a", "team-b", "team-c"}[i%3]
		name := fmt.Sprintf("%s/r%02d", team, i)
		expectStatus(t, putManifest(hs, name, "v1", MediaTypeOCIIndex, emptyIndex), http.StatusCreated)
		if team == "team-a" {
			want = append(want, name)
		}
		name = fmt.Sprintf("team-a%02d", i) // sorts after team-a/*, invisible
		expectStatus(t, putManifest(hs, name, "v1", MediaTypeOCIIndex, emptyIndex), http.StatusCreated)
	}
	slices.Sort(want)
	path := "/v2/_catalog?n=3"
	var got []string
	for path != "" {
		names, next := catalogPage(t, hs, "a-dev", path)
		if next != "" && len(names) != 3 {
			t.Fatalf("%s: a page of %d with a next one", path, len(names))
		}
		if next != "" && !strings.Contains(next, "last=team-a%2F") {
			t.Fatalf("%s: Link %s names no visible repository", path, next)
		}
		got = append(got, names...)
		path = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("a-dev's pages: %q, want %q", got, want)
	}
	if all := catalogWalk(t, hs, "admin", 7); len(all) != 60 {
		t.Fatalf("admin's pages: %d names, want 60", len(all))
	}
}

// countingStore counts the requests to its store, Page included, and the
// names and keys its listings returned.
type countingStore struct {
	storage.Driver
	mu     sync.Mutex
	calls  int
	listed int
}

func (c *countingStore) takeListed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.listed
	c.listed = 0
	return n
}

func (c *countingStore) saw(names []string) {
	c.mu.Lock()
	c.listed += len(names)
	c.mu.Unlock()
}

func (c *countingStore) count() {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
}

func (c *countingStore) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.calls
	c.calls = 0
	return n
}

func (c *countingStore) Stat(ctx context.Context, key string) (storage.Info, error) {
	c.count()
	return c.Driver.Stat(ctx, key)
}

func (c *countingStore) List(ctx context.Context, prefix string) ([]string, error) {
	c.count()
	names, err := c.Driver.List(ctx, prefix)
	c.saw(names)
	return names, err
}

func (c *countingStore) Page(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	c.count()
	keys, err := c.Driver.(storage.Pager).Page(ctx, prefix, after, limit)
	c.saw(keys)
	return keys, err
}

// A page of 10 of 1,000 repositories costs about 10 storage requests, not
// a walk of the 1,000.
func TestCatalogPageCostsItsSizeNotTheRegistrys(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	hs := newHarnessOn(t, store, map[string][]string{"admin": {"*"}})
	if _, err := store.Put(t.Context(), catalogIndexedKey, strings.NewReader(""), storage.Condition{}); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		name := fmt.Sprintf("team%02d/app%03d", i/100, i)
		if _, err := store.Put(t.Context(), revisionKey(name, digest.FromBytes(emptyIndex)), strings.NewReader(MediaTypeOCIIndex), storage.Condition{}); err != nil {
			t.Fatal(err)
		}
		if err := hs.h.noteRepository(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	catalogPage(t, hs, "admin", "/v2/_catalog?n=1") // the flag is known from now on
	store.take()
	names, next := catalogPage(t, hs, "admin", "/v2/_catalog?n=10&last=team05/app512")
	calls := store.take()
	if len(names) != 10 || names[0] != "team05/app513" || next == "" {
		t.Fatalf("page %q, next %q", names, next)
	}
	if calls > 15 {
		t.Fatalf("a page of 10 of 1,000 repositories made %d storage requests, want about 10", calls)
	}
}

// A store written before the index (repositories without markers) has its
// whole catalog before the migration, while it runs, and after it.
func TestCatalogOfAStoreWrittenBeforeTheIndex(t *testing.T) {
	store := inmemory.New()
	var want []string
	for i := range 40 {
		name := fmt.Sprintf("old/r%02d", i)
		key := revisionKey(name, digest.FromBytes(emptyIndex))
		if i%2 == 1 {
			key = layerLinkKey(name, digest.FromBytes(emptyIndex))
		}
		if _, err := store.Put(t.Context(), key, strings.NewReader(""), storage.Condition{}); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	hs := newHarnessOn(t, store, map[string][]string{"admin": {"*"}})
	expectStatus(t, putManifest(hs, "new", "v1", MediaTypeOCIIndex, emptyIndex), http.StatusCreated)
	want = append(want, "new")
	slices.Sort(want)
	if got := catalogWalk(t, hs, "admin", 7); !slices.Equal(got, want) {
		t.Fatalf("catalog before the migration: %q, want %q", got, want)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := store.Stat(t.Context(), catalogIndexedKey); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the migration did not write its flag")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, h := range []*Handler{hs.h, hs.newHandler()} {
		if indexed, err := h.catalogIndexed(t.Context()); !indexed || err != nil {
			t.Fatalf("indexed %v, %v after the migration", indexed, err)
		}
	}
	if got := catalogWalk(t, hs, "admin", 7); !slices.Equal(got, want) {
		t.Fatalf("catalog after the migration: %q, want %q", got, want)
	}
	for _, name := range want {
		if _, err := store.Stat(t.Context(), catalogMarkerKey(name)); err != nil {
			t.Errorf("marker of %s: %v", name, err)
		}
	}
}

// A new store is indexed from its first push: it never walks.
func TestCatalogOfANewStoreIsIndexedFromTheStart(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	expectStatus(t, putManifest(hs, "first", "v1", MediaTypeOCIIndex, emptyIndex), http.StatusCreated)
	if _, err := hs.store.Stat(t.Context(), catalogIndexedKey); err != nil {
		t.Fatalf("flag after the first push of a new store: %v", err)
	}
}

// BenchmarkCatalogFullWalk pages through the whole catalog of 10,000
// repositories on the filesystem, 100 names a page: 100 teams of 100
// ("nested"), and 10,000 names at the top ("flat": one directory of
// 10,000 markers, which the driver keeps the names of). The store is
// written directly (markers and the flag too, as pushes leave them) and
// its directories dated an hour back, as in a registry whose repositories
// were not all created in the last seconds.
func BenchmarkCatalogFullWalk(b *testing.B) {
	b.Run("nested", func(b *testing.B) {
		benchCatalogFullWalk(b, func(i int) string { return fmt.Sprintf("team%02d/app%04d", i/100, i) })
	})
	b.Run("flat", func(b *testing.B) {
		benchCatalogFullWalk(b, func(i int) string { return fmt.Sprintf("app%05d", i) })
	})
}

// BenchmarkCatalogFullWalkMinIO pages through 1,000 repositories (10 teams
// of 100) on MinIO, 100 names a page, when storagetest.MinIO finds one.
func BenchmarkCatalogFullWalkMinIO(b *testing.B) {
	endpoint, access, secret := storagetest.MinIO(b)
	store, err := s3.New(b.Context(), s3.Options{Endpoint: endpoint, Bucket: fmt.Sprintf("catalog-bench-%d", time.Now().UnixNano()),
		AccessKey: access, SecretKey: secret, CreateBucket: true})
	if err != nil {
		b.Fatal(err)
	}
	const repos = 1000
	keys := []string{catalogIndexedKey}
	for i := range repos {
		name := fmt.Sprintf("team%02d/app%04d", i/100, i)
		keys = append(keys, revisionKey(name, digest.FromBytes(emptyIndex)), catalogMarkerKey(name))
	}
	var wg sync.WaitGroup
	work := make(chan string)
	for range 16 {
		wg.Go(func() {
			for key := range work {
				if _, err := store.Put(b.Context(), key, strings.NewReader(""), storage.Condition{}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, key := range keys {
		work <- key
	}
	close(work)
	wg.Wait()
	h, _ := New(Options{Storage: store})
	for b.Loop() {
		if total := walkCatalog(b, h, 100); total != repos {
			b.Fatalf("walked %d repositories, want %d", total, repos)
		}
	}
}

// walkCatalog follows the catalog's Links from its first page of n and
// returns how many names it saw.
func walkCatalog(b *testing.B, h *Handler, n int) int {
	path, total := fmt.Sprintf("/v2/_catalog?n=%d", n), 0
	for path != "" {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		var c struct{ Repositories []string }
		json.Unmarshal(w.Body.Bytes(), &c)
		total += len(c.Repositories)
		path = ""
		if link := w.Header().Get("Link"); link != "" {
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
	}
	return total
}

func benchCatalogFullWalk(b *testing.B, nameOf func(int) string) {
	root := b.TempDir()
	store, err := filesystem.New(root)
	if err != nil {
		b.Fatal(err)
	}
	write := func(key string) {
		p := filepath.Join(root, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	d := digest.FromBytes(emptyIndex)
	for i := range 10000 {
		name := nameOf(i)
		write(revisionKey(name, d))
		write(catalogMarkerKey(name))
	}
	write(catalogIndexedKey)
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	h, _ := New(Options{Storage: store})
	for b.Loop() {
		if total := walkCatalog(b, h, 100); total != 10000 {
			b.Fatalf("walked %d repositories, want 10000", total)
		}
	}
}
