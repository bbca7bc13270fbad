package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/unireg/unireg/registry/storage"
)

// driverOnly hides a backend's optional interfaces (Walker, BatchDeleter),
// so storage.Walk and storage.DeleteMany take their fallback through List,
// Stat and Delete.
type driverOnly struct{ storage.Driver }

// withFallback runs fn on the Driver methods alone.
func withFallback(fn func(*testing.T, storage.Driver)) func(*testing.T, storage.Driver) {
	return func(t *testing.T, d storage.Driver) { fn(t, driverOnly{d}) }
}

// walk returns the Infos storage.Walk visits under prefix.
func walk(t *testing.T, d storage.Driver, prefix string) []storage.Info {
	t.Helper()
	var infos []storage.Info
	err := storage.Walk(t.Context(), d, prefix, func(info storage.Info) error {
		infos = append(infos, info)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk(%q): %v", prefix, err)
	}
	return infos
}

func keysOf(infos []storage.Info) []string {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}

// walkTree holds keys that share prefixes, and names that sort before "/"
// ("b-c", "b.d"), so that a walk which visits a directory's names in their
// own order ("b" before "b-c") and not the keys' ("a/b-c" before "a/b/x")
// shows.
var walkTree = []string{
	"z",
	"ab",
	"a/b2",
	"a/b/x",
	"a/b/c/y",
	"a/b/c/d/z",
	"a/b-c",
	"a/b.d/z",
	"a/bc/x",
	"a/b0",
	"b/a/b/x",
}

// keysUnder returns the keys of walkTree under prefix, sorted byte-wise.
func keysUnder(prefix string) []string {
	var want []string
	for _, k := range walkTree {
		if prefix == "" || strings.HasPrefix(k, prefix+"/") {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	return want
}

func testWalkVisitsEveryObjectInKeyOrder(t *testing.T, d storage.Driver) {
	for _, k := range walkTree {
		put(t, d, k, k)
	}
	for _, prefix := range []string{"", "a", "a/b", "a/b/c", "b/a", "a/bc"} {
		t.Run(fmt.Sprintf("%q", prefix), func(t *testing.T) {
			if got, want := keysOf(walk(t, d, prefix)), keysUnder(prefix); !slices.Equal(got, want) {
				t.Fatalf("Walk(%q) visited\n%q\nwant\n%q", prefix, got, want)
			}
		})
	}
}

// testWalkOfMissingPrefixVisitsNothing: a prefix that holds nothing (never
// written, emptied, an object's own key, or below an object) walks nothing
// and is no error, as DeleteAll of it is none: a collector walks
// directories that may not exist yet.
func testWalkOfMissingPrefixVisitsNothing(t *testing.T, d storage.Driver) {
	if got := walk(t, d, ""); len(got) != 0 {
		t.Fatalf("Walk of an empty store visited %q", keysOf(got))
	}
	put(t, d, "a/b/x", "x")
	put(t, d, "gone/y", "y")
	if err := d.Delete(t.Context(), "gone/y"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, prefix := range []string{"missing", "a/missing", "gone", "a/b/x", "a/b/x/below"} {
		if got := walk(t, d, prefix); len(got) != 0 {
			t.Errorf("Walk(%q) visited %q, want nothing", prefix, keysOf(got))
		}
	}
}

func testWalkStopsAtTheCallbacksError(t *testing.T, d storage.Driver) {
	for _, k := range walkTree {
		put(t, d, k, k)
	}
	stop := errors.New("storagetest: stop here")
	var visited []string
	err := storage.Walk(t.Context(), d, "", func(info storage.Info) error {
		visited = append(visited, info.Key)
		if len(visited) == 3 {
			return stop
		}
		return nil
	})
	if err != stop {
		t.Fatalf("Walk = %v, want the callback's error itself", err)
	}
	if want := keysUnder("")[:3]; !slices.Equal(visited, want) {
		t.Fatalf("Walk visited %q before stopping, want %q", visited, want)
	}
}

// testWalkInfoMatchesStat: a walk reports what Stat does, for objects of
// any size and for objects built by Append; Version may be empty where a
// backend cannot tell it from a listing (S3), and is Stat's otherwise.
func testWalkInfoMatchesStat(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	put(t, d, "objects/empty", "")
	put(t, d, "objects/small", "small")
	put(t, d, "objects/big", strings.Repeat("b", 100<<10))
	var offset int64
	for _, chunk := range []string{"first ", "second ", "third"} {
		n, err := d.Append(ctx, "objects/appended", offset, strings.NewReader(chunk))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		offset += n
	}
	got := walk(t, d, "objects")
	if want := []string{"objects/appended", "objects/big", "objects/empty", "objects/small"}; !slices.Equal(keysOf(got), want) {
		t.Fatalf("Walk(objects) visited %q, want %q", keysOf(got), want)
	}
	for _, info := range got {
		st := stat(t, d, info.Key)
		if info.Size != st.Size || !info.ModTime.Equal(st.ModTime) {
			t.Errorf("Walk's %s: Size %d, ModTime %v; Stat's: Size %d, ModTime %v", info.Key, info.Size, info.ModTime, st.Size, st.ModTime)
		}
		if info.Version != "" && info.Version != st.Version {
			t.Errorf("Walk's %s: Version %q, Stat's %q", info.Key, info.Version, st.Version)
		}
	}
}

// testWalkMayDeleteWhatItVisits: a collector deletes as it walks; the
// walk still visits every object once, and the store ends empty.
func testWalkMayDeleteWhatItVisits(t *testing.T, d storage.Driver) {
	for _, k := range walkTree {
		put(t, d, k, k)
	}
	var visited []string
	err := storage.Walk(t.Context(), d, "", func(info storage.Info) error {
		visited = append(visited, info.Key)
		return d.Delete(t.Context(), info.Key)
	})
	if err != nil {
		t.Fatalf("Walk deleting each object: %v", err)
	}
	if want := keysUnder(""); !slices.Equal(visited, want) {
		t.Fatalf("Walk visited %q, want %q", visited, want)
	}
	if got := list(t, d, ""); len(got) != 0 {
		t.Fatalf("List(\"\") = %q after deleting every object, want nothing", got)
	}
}

// testDeleteManyRemovesThoseKeysAndSkipsMissingOnes: missing keys (never
// written, below a missing prefix, twice in the list) are no error; the
// "directories" the deleted keys leave empty are gone, as after Delete;
// nothing else is touched.
func testDeleteManyRemovesThoseKeysAndSkipsMissingOnes(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	for _, k := range []string{"r/a/1", "r/a/2", "r/b/deep/1", "r/keep", "keep/x"} {
		put(t, d, k, k)
	}
	if _, err := d.Append(ctx, "r/c/data", 0, strings.NewReader("appended")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	gone := []string{"r/a/1", "missing", "r/b/deep/1", "r/a/2", "r/nope/deeper", "r/c/data", "r/a/1"}
	if err := storage.DeleteMany(ctx, d, gone); err != nil {
		t.Fatalf("DeleteMany(%q): %v", gone, err)
	}
	for _, k := range gone {
		wantNotFound(t, d, k)
	}
	for _, prefix := range []string{"r/a", "r/b/deep", "r/b", "r/c"} {
		if names, err := d.List(ctx, prefix); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("List(%s) = %q, %v after DeleteMany; want ErrNotFound", prefix, names, err)
		}
	}
	if got := list(t, d, "r"); !slices.Equal(got, []string{"keep"}) {
		t.Errorf("List(r) = %q, want [keep]", got)
	}
	if got := keysOf(walk(t, d, "")); !slices.Equal(got, []string{"keep/x", "r/keep"}) {
		t.Errorf("Walk after DeleteMany = %q, want [keep/x r/keep]", got)
	}
	if err := storage.DeleteMany(ctx, d, nil); err != nil {
		t.Errorf("DeleteMany(nil) = %v, want nil", err)
	}
}

// testDeleteManyWithAnInvalidKeyDeletesNothing: the keys are checked before
// anything goes.
func testDeleteManyWithAnInvalidKeyDeletesNothing(t *testing.T, d storage.Driver) {
	put(t, d, "a", "a")
	put(t, d, "b", "b")
	if err := storage.DeleteMany(t.Context(), d, []string{"a", "../b", "b"}); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("DeleteMany with an invalid key = %v, want ErrInvalidKey", err)
	}
	if got := list(t, d, ""); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("List(\"\") = %q after the refused DeleteMany, want [a b]", got)
	}
}

// manyKeys is more than one S3 DeleteObjects request takes (1,000 keys):
// a backend that sent them at once would fail.
const manyKeys = 2500

// testDeleteManyOfMoreKeysThanOneRequestTakes deletes 2,500 keys spread
// over directories in one call.
func testDeleteManyOfMoreKeysThanOneRequestTakes(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	keys := make([]string, manyKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("many/%02d/%04d", i%25, i)
	}
	put(t, d, "many-keep/x", "x")
	work := make(chan string)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				if _, err := d.Put(ctx, k, strings.NewReader(k), storage.Condition{}); err != nil {
					select {
					case errs <- fmt.Errorf("Put(%s): %w", k, err):
					default:
					}
				}
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if got := len(walk(t, d, "many")); got != manyKeys {
		t.Fatalf("Walk(many) visited %d objects, want %d", got, manyKeys)
	}
	if err := storage.DeleteMany(ctx, d, append(keys, "many/missing")); err != nil {
		t.Fatalf("DeleteMany of %d keys: %v", len(keys), err)
	}
	if names, err := d.List(ctx, "many"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("List(many) after DeleteMany = %d names, %v; want ErrNotFound", len(names), err)
	}
	if got := keysOf(walk(t, d, "")); !slices.Equal(got, []string{"many-keep/x"}) {
		t.Fatalf("Walk after DeleteMany = %q, want [many-keep/x]", got)
	}
}
