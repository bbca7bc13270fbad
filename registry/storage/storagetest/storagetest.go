// Package storagetest is the contract test suite of storage.Driver. Every
// backend runs it from its own tests, so the protocol handlers can rely on
// the behaviour documented in package storage whichever backend serves them:
//
//	func TestDriverMeetsStorageContract(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Driver { return inmemory.New() })
//	}
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

// Run runs the contract suite against drivers made by newDriver, which must
// return an empty store for every call; each sub-test gets its own.
func Run(t *testing.T, newDriver func(t *testing.T) storage.Driver) {
	tests := []struct {
		name string
		fn   func(t *testing.T, d storage.Driver)
	}{
		{"MissingKeyIsNotFound", testMissingKeyIsNotFound},
		{"PrefixIsNotAnObject", testPrefixIsNotAnObject},
		{"PutThenOpenReadsSameBytes", testPutThenOpenReadsSameBytes},
		{"PutReplacesWholeObject", testPutReplacesWholeObject},
		{"FailedPutKeepsPreviousObject", testFailedPutKeepsPreviousObject},
		{"InfoDescribesObject", testInfoDescribesObject},
		{"VersionChangesOnEveryWrite", testVersionChangesOnEveryWrite},
		{"PutIfNoneMatch", testPutIfNoneMatch},
		{"PutIfMatch", testPutIfMatch},
		{"ConcurrentIfNoneMatchCreatesOnce", testConcurrentIfNoneMatchCreatesOnce},
		{"ConcurrentCompareAndSwapLosesNoUpdate", testConcurrentCompareAndSwapLosesNoUpdate},
		{"Append", testAppend},
		{"AppendPastEndOfMissingObjectCreatesNothing", testAppendPastEndOfMissingObjectCreatesNothing},
		{"FailedAppendKeepsPreviousSize", testFailedAppendKeepsPreviousSize},
		{"MoveRenamesObject", testMoveRenamesObject},
		{"MoveReplacesDestination", testMoveReplacesDestination},
		{"MoveOfMissingSourceKeepsDestination", testMoveOfMissingSourceKeepsDestination},
		{"DeleteRemovesOnlyThatObject", testDeleteRemovesOnlyThatObject},
		{"DeleteAllRemovesPrefixButNotSiblings", testDeleteAllRemovesPrefixButNotSiblings},
		{"DeleteAllOfMissingPrefixSucceeds", testDeleteAllOfMissingPrefixSucceeds},
		{"ListReturnsSortedDirectChildren", testListReturnsSortedDirectChildren},
		{"ListOfEmptiedPrefixIsNotFound", testListOfEmptiedPrefixIsNotFound},
		{"ListOfEmptyStoreRootIsEmpty", testListOfEmptyStoreRootIsEmpty},
		{"InvalidKeysAreRejected", testInvalidKeysAreRejected},
		{"HostileKeysCannotEscapeTheStore", testHostileKeysCannotEscapeTheStore},
		{"LookalikeKeysAreLiteral", testLookalikeKeysAreLiteral},
		{"ObjectIsSeekable", testObjectIsSeekable},
		{"ReaderOpenedBeforeOverwriteSeesOldContent", testReaderOpenedBeforeOverwriteSeesOldContent},
		{"ConcurrentReadersNeverSeePartialWrites", testConcurrentReadersNeverSeePartialWrites},
		{"PingSucceeds", testPingSucceeds},
		{"WalkVisitsEveryObjectInKeyOrder", testWalkVisitsEveryObjectInKeyOrder},
		{"WalkOfMissingPrefixVisitsNothing", testWalkOfMissingPrefixVisitsNothing},
		{"WalkStopsAtTheCallbacksError", testWalkStopsAtTheCallbacksError},
		{"WalkInfoMatchesStat", testWalkInfoMatchesStat},
		{"WalkMayDeleteWhatItVisits", testWalkMayDeleteWhatItVisits},
		{"WalkByListVisitsEveryObjectInKeyOrder", withFallback(testWalkVisitsEveryObjectInKeyOrder)},
		{"WalkByListOfMissingPrefixVisitsNothing", withFallback(testWalkOfMissingPrefixVisitsNothing)},
		{"WalkByListStopsAtTheCallbacksError", withFallback(testWalkStopsAtTheCallbacksError)},
		{"WalkByListInfoMatchesStat", withFallback(testWalkInfoMatchesStat)},
		{"PageContinuesAfterAnyKey", testPageContinuesAfterAnyKey},
		{"PagesWalkEverything", testPagesWalkEverything},
		{"PageAfterADeeperKey", testPageAfterADeeperKey},
		{"PageByWalkContinuesAfterAnyKey", withFallback(testPageContinuesAfterAnyKey)},
		{"PageByWalkWalksEverything", withFallback(testPagesWalkEverything)},
		{"DeleteManyRemovesThoseKeysAndSkipsMissingOnes", testDeleteManyRemovesThoseKeysAndSkipsMissingOnes},
		{"DeleteManyWithAnInvalidKeyDeletesNothing", testDeleteManyWithAnInvalidKeyDeletesNothing},
		{"DeleteManyOfMoreKeysThanOneRequestTakes", testDeleteManyOfMoreKeysThanOneRequestTakes},
		{"DeleteManyByDeleteRemovesThoseKeysAndSkipsMissingOnes", withFallback(testDeleteManyRemovesThoseKeysAndSkipsMissingOnes)},
		{"DeleteManyByDeleteWithAnInvalidKeyDeletesNothing", withFallback(testDeleteManyWithAnInvalidKeyDeletesNothing)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDriver(t)) })
	}
}

var errReader = errors.New("storagetest: reader failed")

// failingReader yields data, then fails, as a client that disconnects mid-upload.
func failingReader(data []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errReader))
}

func put(t *testing.T, d storage.Driver, key, content string) storage.Info {
	t.Helper()
	info, err := d.Put(t.Context(), key, strings.NewReader(content), storage.Condition{})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func read(t *testing.T, d storage.Driver, key string) string {
	t.Helper()
	b, _, err := storage.ReadAll(t.Context(), d, key)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return string(b)
}

func stat(t *testing.T, d storage.Driver, key string) storage.Info {
	t.Helper()
	info, err := d.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	return info
}

func wantNotFound(t *testing.T, d storage.Driver, key string) {
	t.Helper()
	if _, err := d.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
}

func list(t *testing.T, d storage.Driver, prefix string) []string {
	t.Helper()
	names, err := d.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

// errOf drops a result so a table can call any method and check its error.
func errOf[T any](_ T, err error) error { return err }

func testMissingKeyIsNotFound(t *testing.T, d storage.Driver) {
	put(t, d, "present/object", "x")
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
	}{
		{"Stat", func() error { return errOf(d.Stat(ctx, "present/missing")) }},
		{"Open", func() error { return errOf(d.Open(ctx, "present/missing")) }},
		{"OpenUnderMissingPrefix", func() error { return errOf(d.Open(ctx, "absent/missing")) }},
		{"Delete", func() error { return d.Delete(ctx, "present/missing") }},
		{"MoveSource", func() error { return d.Move(ctx, "present/missing", "elsewhere") }},
		{"ListPrefix", func() error { return errOf(d.List(ctx, "absent")) }},
		{"ListObjectAsPrefix", func() error { return errOf(d.List(ctx, "present/object")) }},
		{"StatBelowObject", func() error { return errOf(d.Stat(ctx, "present/object/below")) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

// testPrefixIsNotAnObject: a "directory" exists only through its objects, so
// object methods must not treat it as one (a filesystem sees a directory).
func testPrefixIsNotAnObject(t *testing.T, d storage.Driver) {
	put(t, d, "dir/object", "x")
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
	}{
		{"Stat", func() error { return errOf(d.Stat(ctx, "dir")) }},
		{"Open", func() error { return errOf(d.Open(ctx, "dir")) }},
		{"Delete", func() error { return d.Delete(ctx, "dir") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			if got := read(t, d, "dir/object"); got != "x" {
				t.Fatalf("dir/object = %q after the call, want %q", got, "x")
			}
		})
	}
}

func testPutThenOpenReadsSameBytes(t *testing.T, d storage.Driver) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	tests := []struct {
		name    string
		key     string
		content []byte
	}{
		{"Empty", "empty", nil},
		{"Small", "small", []byte("hello")},
		{"AllByteValues", "bin", binary},
		{"NestedKey", "a/b/c/d", []byte("deep")},
		// Larger than the buffers backends copy with.
		{"Large", "large", bytes.Repeat([]byte("0123456789abcdef"), 3<<16+7)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info, err := d.Put(t.Context(), tc.key, bytes.NewReader(tc.content), storage.Condition{})
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if info.Size != int64(len(tc.content)) {
				t.Errorf("Put Info.Size = %d, want %d", info.Size, len(tc.content))
			}
			got, _, err := storage.ReadAll(t.Context(), d, tc.key)
			if err != nil {
				t.Fatalf("read back: %v", err)
			}
			if !bytes.Equal(got, tc.content) {
				t.Fatalf("read back %d bytes, want the %d bytes written", len(got), len(tc.content))
			}
		})
	}
}

func testPutReplacesWholeObject(t *testing.T, d storage.Driver) {
	put(t, d, "k", "a much longer first content")
	put(t, d, "k", "short")
	if got := read(t, d, "k"); got != "short" {
		t.Fatalf("content = %q, want %q (no tail of the old content)", got, "short")
	}
}

func testFailedPutKeepsPreviousObject(t *testing.T, d storage.Driver) {
	before := put(t, d, "k", "old")
	tests := []struct {
		name string
		key  string
	}{
		{"Existing", "k"},
		{"New", "fresh/k"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Put(t.Context(), tc.key, failingReader(bytes.Repeat([]byte("n"), 4096)), storage.Condition{})
			if !errors.Is(err, errReader) {
				t.Fatalf("Put with failing reader = %v, want the reader's error", err)
			}
		})
	}
	if got := read(t, d, "k"); got != "old" {
		t.Errorf("existing object = %q after failed Put, want %q", got, "old")
	}
	if v := stat(t, d, "k").Version; v != before.Version {
		t.Errorf("Version = %q after failed Put, want unchanged %q", v, before.Version)
	}
	wantNotFound(t, d, "fresh/k")
}

func testInfoDescribesObject(t *testing.T, d storage.Driver) {
	start := time.Now()
	written := put(t, d, "dir/k", "12345")
	if written.Key != "dir/k" || written.Size != 5 || written.Version == "" {
		t.Fatalf("Put Info = %+v, want Key dir/k, Size 5 and a Version", written)
	}
	// Filesystems may truncate or lag the clock by a tick; two seconds is plenty.
	if written.ModTime.Before(start.Add(-2*time.Second)) || written.ModTime.After(time.Now().Add(2*time.Second)) {
		t.Errorf("ModTime = %v, want about %v", written.ModTime, start)
	}

	stated := stat(t, d, "dir/k")
	obj, err := d.Open(t.Context(), "dir/k")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer obj.Close()
	for name, got := range map[string]storage.Info{"Stat": stated, "Object.Info": obj.Info()} {
		if got.Key != written.Key || got.Size != written.Size || got.Version != written.Version || !got.ModTime.Equal(written.ModTime) {
			t.Errorf("%s = %+v, want what Put returned: %+v", name, got, written)
		}
	}
}

// testVersionChangesOnEveryWrite writes identical content repeatedly: a
// version derived from metadata that can recur (a reused inode, a coarse
// clock) would let a stale compare-and-swap succeed.
func testVersionChangesOnEveryWrite(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	seen := map[string]string{}
	record := func(what string) {
		t.Helper()
		v := stat(t, d, "k").Version
		if v == "" {
			t.Fatalf("after %s: empty Version", what)
		}
		if prev, ok := seen[v]; ok {
			t.Fatalf("after %s: Version %q already seen after %s", what, v, prev)
		}
		seen[v] = what
	}
	for i := range 20 {
		put(t, d, "k", "same")
		record(fmt.Sprintf("Put #%d", i))
	}
	if _, err := d.Append(ctx, "k", 4, strings.NewReader("more")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	record("Append at the end")
	if _, err := d.Append(ctx, "k", 4, strings.NewReader("MORE")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	record("Append rewriting the tail with the same length")
	put(t, d, "src", "same")
	if err := d.Move(ctx, "src", "k"); err != nil {
		t.Fatalf("Move: %v", err)
	}
	record("Move onto it")
}

func testPutIfNoneMatch(t *testing.T, d storage.Driver) {
	put(t, d, "existing", "old")
	tests := []struct {
		name    string
		key     string
		wantErr error
		want    string
	}{
		{"ExistingObjectIsPreconditionFailed", "existing", storage.ErrPreconditionFailed, "old"},
		{"MissingObjectIsCreated", "missing", nil, "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Put(t.Context(), tc.key, strings.NewReader("new"), storage.Condition{IfNoneMatch: true})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Put IfNoneMatch = %v, want %v", err, tc.wantErr)
			}
			if got := read(t, d, tc.key); got != tc.want {
				t.Fatalf("content = %q, want %q", got, tc.want)
			}
		})
	}
}

func testPutIfMatch(t *testing.T, d storage.Driver) {
	tests := []struct {
		name    string
		key     string
		setup   func(t *testing.T) (ifMatch string)
		wantErr error
		want    string // content afterwards; "" means absent
	}{
		{
			name:  "CurrentVersionSucceeds",
			key:   "current",
			setup: func(t *testing.T) string { return put(t, d, "current", "old").Version },
			want:  "new",
		},
		{
			name: "StaleVersionIsPreconditionFailed",
			key:  "stale",
			setup: func(t *testing.T) string {
				stale := put(t, d, "stale", "first").Version
				put(t, d, "stale", "old")
				return stale
			},
			wantErr: storage.ErrPreconditionFailed,
			want:    "old",
		},
		{
			name: "DeletedObjectIsPreconditionFailed",
			key:  "deleted",
			setup: func(t *testing.T) string {
				v := put(t, d, "deleted", "old").Version
				if err := d.Delete(t.Context(), "deleted"); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				return v
			},
			wantErr: storage.ErrPreconditionFailed,
		},
		{
			name:    "MissingObjectIsPreconditionFailed",
			key:     "missing",
			setup:   func(t *testing.T) string { return "some-version" },
			wantErr: storage.ErrPreconditionFailed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ifMatch := tc.setup(t)
			info, err := d.Put(t.Context(), tc.key, strings.NewReader("new"), storage.Condition{IfMatch: ifMatch})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Put IfMatch = %v, want %v", err, tc.wantErr)
			}
			if err == nil && info.Version == ifMatch {
				t.Errorf("Version %q unchanged by a successful Put", info.Version)
			}
			if tc.want == "" {
				wantNotFound(t, d, tc.key)
				return
			}
			if got := read(t, d, tc.key); got != tc.want {
				t.Fatalf("content = %q, want %q", got, tc.want)
			}
		})
	}
}

func testConcurrentIfNoneMatchCreatesOnce(t *testing.T, d storage.Driver) {
	const writers = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		errs    []error
	)
	for i := range writers {
		wg.Go(func() {
			me := strconv.Itoa(i)
			_, err := d.Put(t.Context(), "once", strings.NewReader(me), storage.Condition{IfNoneMatch: true})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners = append(winners, me)
			case !errors.Is(err, storage.ErrPreconditionFailed):
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("unexpected errors: %v", errs)
	}
	if len(winners) != 1 {
		t.Fatalf("%d writers created the object (%v), want exactly 1", len(winners), winners)
	}
	if got := read(t, d, "once"); got != winners[0] {
		t.Fatalf("content = %q, want the winner's %q", got, winners[0])
	}
}

// increment adds one to the decimal counter at key by compare-and-swap,
// retrying when another writer got in first. It returns how many retries it took.
func increment(ctx context.Context, d storage.Driver, key string) (int, error) {
	for retries := 0; ; retries++ {
		b, info, err := storage.ReadAll(ctx, d, key)
		if err != nil {
			return retries, err
		}
		n, err := strconv.Atoi(string(b))
		if err != nil {
			return retries, fmt.Errorf("counter %q: %w", b, err)
		}
		runtime.Gosched() // widen the window in which another writer can get in
		_, err = d.Put(ctx, key, strings.NewReader(strconv.Itoa(n+1)), storage.Condition{IfMatch: info.Version})
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return retries, err
		}
	}
}

func testConcurrentCompareAndSwapLosesNoUpdate(t *testing.T, d storage.Driver) {
	const writers, perWriter = 16, 3
	if _, err := d.Put(t.Context(), "counter", strings.NewReader("0"), storage.Condition{IfNoneMatch: true}); err != nil {
		t.Fatalf("create counter: %v", err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		retries int
	)
	for range writers {
		wg.Go(func() {
			for range perWriter {
				r, err := increment(t.Context(), d, "counter")
				mu.Lock()
				retries += r
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("increment errors: %v", errs)
	}
	t.Logf("%d retries on ErrPreconditionFailed", retries)
	if got, want := read(t, d, "counter"), strconv.Itoa(writers*perWriter); got != want {
		t.Fatalf("counter = %s, want %s: updates were lost", got, want)
	}
}

func testAppend(t *testing.T, d storage.Driver) {
	large := bytes.Repeat([]byte("x"), 3<<20+5)
	tests := []struct {
		name    string
		initial *string // nil: the object does not exist
		offset  int64
		data    string
		wantN   int64
		wantErr error
		want    string
	}{
		{name: "OffsetZeroCreates", offset: 0, data: "abc", wantN: 3, want: "abc"},
		{name: "OffsetZeroEmptyCreatesEmpty", offset: 0, data: "", wantN: 0, want: ""},
		{name: "OffsetAtSizeAppends", initial: new("abc"), offset: 3, data: "def", wantN: 3, want: "abcdef"},
		{name: "EmptyAppendAtSizeKeepsContent", initial: new("abc"), offset: 3, data: "", wantN: 0, want: "abc"},
		{name: "OffsetPastSizeIsInvalid", initial: new("abc"), offset: 4, data: "x", wantErr: storage.ErrInvalidOffset, want: "abc"},
		// Documented in the filesystem backend: a retried chunk overwrites
		// whatever a failed append left past the caller's offset.
		{name: "OffsetBelowSizeDiscardsTail", initial: new("abcdef"), offset: 2, data: "XY", wantN: 2, want: "abXY"},
		{name: "OffsetZeroOnExistingReplaces", initial: new("abc"), offset: 0, data: "Z", wantN: 1, want: "Z"},
		{name: "Large", initial: new("head"), offset: 4, data: string(large), wantN: int64(len(large)), want: "head" + string(large)},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("uploads/%d/data", i)
			if tc.initial != nil {
				put(t, d, key, *tc.initial)
			}
			n, err := d.Append(t.Context(), key, tc.offset, strings.NewReader(tc.data))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Append = %v, want %v", err, tc.wantErr)
			}
			if err == nil && n != tc.wantN {
				t.Errorf("Append wrote %d bytes, want %d", n, tc.wantN)
			}
			got := read(t, d, key)
			if got != tc.want {
				t.Fatalf("content = %.40q (%d bytes), want %.40q (%d bytes)", got, len(got), tc.want, len(tc.want))
			}
			if size := stat(t, d, key).Size; size != int64(len(tc.want)) {
				t.Errorf("Stat Size = %d, want %d", size, len(tc.want))
			}
		})
	}
}

func testAppendPastEndOfMissingObjectCreatesNothing(t *testing.T, d storage.Driver) {
	_, err := d.Append(t.Context(), "uploads/u/data", 5, strings.NewReader("x"))
	if !errors.Is(err, storage.ErrInvalidOffset) {
		t.Fatalf("Append at 5 to a missing object = %v, want ErrInvalidOffset", err)
	}
	wantNotFound(t, d, "uploads/u/data")
}

func testFailedAppendKeepsPreviousSize(t *testing.T, d storage.Driver) {
	put(t, d, "data", "abc")
	// More than one copy buffer, so part of it reaches the store before the error.
	chunk := bytes.Repeat([]byte("d"), 3<<20)
	_, err := d.Append(t.Context(), "data", 3, failingReader(chunk))
	if !errors.Is(err, errReader) {
		t.Fatalf("Append with failing reader = %v, want the reader's error", err)
	}
	if size := stat(t, d, "data").Size; size != 3 {
		t.Fatalf("Size = %d after failed Append, want the previous 3", size)
	}
	if got := read(t, d, "data"); got != "abc" {
		t.Fatalf("content = %.20q after failed Append, want %q", got, "abc")
	}
	// The caller retries from its recorded offset.
	if _, err := d.Append(t.Context(), "data", 3, strings.NewReader("def")); err != nil {
		t.Fatalf("retried Append: %v", err)
	}
	if got := read(t, d, "data"); got != "abcdef" {
		t.Fatalf("content = %q after retry, want %q", got, "abcdef")
	}
}

func testMoveRenamesObject(t *testing.T, d storage.Driver) {
	put(t, d, "uploads/u/data", "blob")
	if err := d.Move(t.Context(), "uploads/u/data", "blobs/sha256/ab/abcd/data"); err != nil {
		t.Fatalf("Move: %v", err)
	}
	wantNotFound(t, d, "uploads/u/data")
	if got := read(t, d, "blobs/sha256/ab/abcd/data"); got != "blob" {
		t.Fatalf("destination = %q, want %q", got, "blob")
	}
	if info := stat(t, d, "blobs/sha256/ab/abcd/data"); info.Key != "blobs/sha256/ab/abcd/data" || info.Size != 4 {
		t.Fatalf("destination Info = %+v, want Key of the destination and Size 4", info)
	}
}

func testMoveReplacesDestination(t *testing.T, d storage.Driver) {
	put(t, d, "src", "new")
	old := put(t, d, "dst", "old and longer")
	if err := d.Move(t.Context(), "src", "dst"); err != nil {
		t.Fatalf("Move: %v", err)
	}
	wantNotFound(t, d, "src")
	if got := read(t, d, "dst"); got != "new" {
		t.Fatalf("dst = %q, want %q", got, "new")
	}
	_, err := d.Put(t.Context(), "dst", strings.NewReader("x"), storage.Condition{IfMatch: old.Version})
	if !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Put IfMatch the replaced object's version = %v, want ErrPreconditionFailed", err)
	}
}

func testMoveOfMissingSourceKeepsDestination(t *testing.T, d storage.Driver) {
	put(t, d, "dst", "keep")
	if err := d.Move(t.Context(), "missing", "dst"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Move from missing = %v, want ErrNotFound", err)
	}
	if got := read(t, d, "dst"); got != "keep" {
		t.Fatalf("dst = %q, want %q", got, "keep")
	}
	if err := d.Move(t.Context(), "missing", "new/dst"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Move from missing = %v, want ErrNotFound", err)
	}
	wantNotFound(t, d, "new/dst")
}

func testDeleteRemovesOnlyThatObject(t *testing.T, d storage.Driver) {
	put(t, d, "tags/v1", "a")
	put(t, d, "tags/v10", "b")
	if err := d.Delete(t.Context(), "tags/v1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, d, "tags/v1")
	if err := d.Delete(t.Context(), "tags/v1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if got := list(t, d, "tags"); !slices.Equal(got, []string{"v10"}) {
		t.Fatalf("List(tags) = %q, want [v10]", got)
	}
}

func testDeleteAllRemovesPrefixButNotSiblings(t *testing.T, d storage.Driver) {
	for _, k := range []string{"a/b/x", "a/b/c/y", "a/b/c/d/z", "a/bc/x", "a/b2", "ab", "b/a/b/x"} {
		put(t, d, k, k)
	}
	if err := d.DeleteAll(t.Context(), "a/b"); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	for _, k := range []string{"a/b/x", "a/b/c/y", "a/b/c/d/z"} {
		wantNotFound(t, d, k)
	}
	for _, k := range []string{"a/bc/x", "a/b2", "ab", "b/a/b/x"} {
		if got := read(t, d, k); got != k {
			t.Errorf("sibling %s = %q, want %q", k, got, k)
		}
	}
	if got := list(t, d, "a"); !slices.Equal(got, []string{"b2", "bc"}) {
		t.Errorf("List(a) = %q, want [b2 bc]", got)
	}
	if _, err := d.List(t.Context(), "a/b"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("List(a/b) = %v, want ErrNotFound", err)
	}
}

// testDeleteAllOfMissingPrefixSucceeds: cleanup of an upload that is already
// gone is not a failure.
func testDeleteAllOfMissingPrefixSucceeds(t *testing.T, d storage.Driver) {
	put(t, d, "keep", "x")
	if err := d.DeleteAll(t.Context(), "uploads/gone"); err != nil {
		t.Fatalf("DeleteAll of a missing prefix = %v, want nil", err)
	}
	if got := read(t, d, "keep"); got != "x" {
		t.Fatalf("keep = %q, want %q", got, "x")
	}
}

func testListReturnsSortedDirectChildren(t *testing.T, d storage.Driver) {
	for _, k := range []string{"z", "m/n", "repos/lib/b", "repos/lib/a/_manifests/x", "repos/app", "repos/App", "a"} {
		put(t, d, k, "x")
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "m", "repos", "z"}},
		{"repos", []string{"App", "app", "lib"}},
		{"repos/lib", []string{"a", "b"}},
		{"repos/lib/a", []string{"_manifests"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.prefix), func(t *testing.T) {
			if got := list(t, d, tc.prefix); !slices.Equal(got, tc.want) {
				t.Fatalf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		})
	}
}

// testListOfEmptiedPrefixIsNotFound: a "directory" exists only while it holds
// objects, as in an object store; otherwise deleted repositories and tags
// would still be listed.
func testListOfEmptiedPrefixIsNotFound(t *testing.T, d storage.Driver) {
	put(t, d, "repo/tags/v1", "x")
	put(t, d, "repo/uploads/u/data", "x")
	put(t, d, "other", "x")
	if err := d.Delete(t.Context(), "repo/tags/v1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := d.DeleteAll(t.Context(), "repo/uploads/u"); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	names, err := d.List(t.Context(), "repo/tags")
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("List(repo/tags) = %q, %v; want ErrNotFound", names, err)
	}
	for _, prefix := range []string{"repo/uploads", "repo"} {
		if names, err := d.List(t.Context(), prefix); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("List(%s) = %q, %v; want ErrNotFound", prefix, names, err)
		}
	}
	if got := list(t, d, ""); !slices.Equal(got, []string{"other"}) {
		t.Errorf("List(\"\") = %q, want [other]", got)
	}
}

// testListOfEmptyStoreRootIsEmpty: the root always exists; a fresh registry
// has an empty top level, not a missing one.
func testListOfEmptyStoreRootIsEmpty(t *testing.T, d storage.Driver) {
	names, err := d.List(t.Context(), "")
	if err != nil || len(names) != 0 {
		t.Fatalf("List(\"\") = %q, %v; want an empty list", names, err)
	}
}

// invalidKeys are keys every method must refuse with storage.ErrInvalidKey:
// they climb out of the store, are absolute, alias another key (empty or
// "." segments), name a backend's own dot-files, or carry NUL or a
// backslash (a separator on some systems). Climbs go one level up at most: a broken backend then damages nothing but
// the test's own temporary directory.
var invalidKeys = []string{
	"",
	".",
	"..",
	"...",
	"../x",
	"../etc/passwd",
	"a/..",
	"a/../b",
	"a/b/../../../x",
	"a/./b",
	"./a",
	"a/.",
	"/",
	"/abs",
	"//etc/passwd",
	"a/",
	"a//b",
	".hidden",
	"a/.hidden",
	".locks/00",
	".appends/a/0",
	"a/.tmp-123",
	"\x00",
	"a\x00b",
	"a/\x00",
	"a\x00/../b",
	"a\\b",
	"..\\x",
	"a\\..\\..\\b",
	"C:\\x",
}

// keyedCall is a Driver method called with one key in the position under test.
type keyedCall struct {
	name string
	call func(key string) error
}

// keyedCalls returns every Driver method (and Redirector's, when d has it,
// and storage.Walk and storage.DeleteMany) with the key under test in each key position; the other position of Move
// holds the valid key valid.
func keyedCalls(ctx context.Context, d storage.Driver, valid string) []keyedCall {
	calls := []keyedCall{
		{"Stat", func(k string) error { return errOf(d.Stat(ctx, k)) }},
		{"Open", func(k string) error { return errOf(d.Open(ctx, k)) }},
		{"Put", func(k string) error {
			return errOf(d.Put(ctx, k, strings.NewReader("x"), storage.Condition{}))
		}},
		{"PutIfNoneMatch", func(k string) error {
			return errOf(d.Put(ctx, k, strings.NewReader("x"), storage.Condition{IfNoneMatch: true}))
		}},
		{"PutIfMatch", func(k string) error {
			return errOf(d.Put(ctx, k, strings.NewReader("x"), storage.Condition{IfMatch: "any"}))
		}},
		{"Append", func(k string) error { return errOf(d.Append(ctx, k, 0, strings.NewReader("x"))) }},
		{"MoveSource", func(k string) error { return d.Move(ctx, k, "moved") }},
		{"MoveDestination", func(k string) error { return d.Move(ctx, valid, k) }},
		{"Delete", func(k string) error { return d.Delete(ctx, k) }},
		{"DeleteAll", func(k string) error { return d.DeleteAll(ctx, k) }},
		{"List", func(k string) error { return errOf(d.List(ctx, k)) }},
		{"Walk", func(k string) error {
			return storage.Walk(ctx, d, k, func(storage.Info) error { return nil })
		}},
		{"DeleteMany", func(k string) error { return storage.DeleteMany(ctx, d, []string{k}) }},
	}
	if rd, ok := d.(storage.Redirector); ok {
		calls = append(calls, keyedCall{"RedirectURL", func(k string) error {
			return errOf(rd.RedirectURL(ctx, k, time.Minute))
		}})
	}
	return calls
}

func testInvalidKeysAreRejected(t *testing.T, d storage.Driver) {
	put(t, d, "valid", "x")
	for _, m := range keyedCalls(t.Context(), d, "valid") {
		t.Run(m.name, func(t *testing.T) {
			for _, k := range invalidKeys {
				if k == "" && (m.name == "List" || m.name == "Walk") {
					continue // List("") and Walk("") take the top level
				}
				if err := m.call(k); !errors.Is(err, storage.ErrInvalidKey) {
					t.Errorf("%s(%q) = %v, want ErrInvalidKey", m.name, k, err)
				}
			}
		})
	}
	if got := list(t, d, ""); !slices.Equal(got, []string{"valid"}) {
		t.Errorf("List(\"\") = %q after the refused calls, want [valid]", got)
	}
	if got := read(t, d, "valid"); got != "x" {
		t.Errorf("valid = %q after the refused calls, want %q", got, "x")
	}
}

// rooted is a driver that keeps its objects in a local directory (the
// filesystem backend): the suite then also watches the directory around it.
type rooted interface{ Root() string }

// testHostileKeysCannotEscapeTheStore calls every method with keys aimed
// outside the store, at a sentinel file next to a rooted driver's directory
// among them: each call is refused with ErrInvalidKey, the store holds the
// same objects afterwards, and (for a rooted driver) nothing outside its
// directory was created, changed or removed. The driver's root should be a
// fresh directory (t.TempDir()), so that nothing else changes beside it.
func testHostileKeysCannotEscapeTheStore(t *testing.T, d storage.Driver) {
	put(t, d, "valid", "x")
	put(t, d, "dir/object", "y")
	before := tree(t, d, "")
	hostile := slices.Clone(invalidKeys)
	var out *outside
	if r, ok := d.(rooted); ok {
		out = watchOutside(t, r.Root())
		hostile = append(hostile, out.sentinelKeys()...)
		out.arm(hostile)
	}
	for _, m := range keyedCalls(t.Context(), d, "valid") {
		for _, k := range hostile {
			if k == "" && (m.name == "List" || m.name == "Walk") {
				continue
			}
			if err := m.call(k); !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", m.name, k, err)
			}
		}
	}
	if out != nil {
		out.check(t)
	}
	if after := tree(t, d, ""); !maps.Equal(after, before) {
		t.Errorf("store after the refused calls = %v, want %v", after, before)
	}
}

// testLookalikeKeysAreLiteral: keys that a decoder or a careless reader could
// take for a climb or a separator (percent-escapes, Unicode dots and
// slashes, Cyrillic letters) are either refused or stored under exactly
// that key. The store never decodes them: each shows up by its own name
// and nothing else appears, inside the store or beside it.
func testLookalikeKeysAreLiteral(t *testing.T, d storage.Driver) {
	put(t, d, "x", "original")
	put(t, d, "a/b", "original")
	before := tree(t, d, "")
	var out *outside
	if r, ok := d.(rooted); ok {
		out = watchOutside(t, r.Root())
	}
	lookalikes := []string{
		"%2e%2e/x",
		"%2e%2e%2fx",
		"a%2fb",
		"a%2F..%2F..%2Fx",
		"%00",
		"a%5cb",
		"\u2024\u2024/x", // one-dot leaders
		"\u2025/x",       // two-dot leader
		"a\uff0fb",       // fullwidth solidus
		"a\u2215b",       // division slash
		"a\u2044b",       // fraction slash
		"\uff0e\uff0e/x", // fullwidth full stops
		"\u0430/b",       // Cyrillic a
		"x\u200b",        // zero-width space
		"a\u2216b",       // set minus, a backslash look-alike
	}
	if out != nil {
		out.arm(lookalikes)
	}
	want := maps.Clone(before)
	for _, k := range lookalikes {
		content := "literal " + k
		_, err := d.Put(t.Context(), k, strings.NewReader(content), storage.Condition{})
		if errors.Is(err, storage.ErrInvalidKey) {
			continue
		}
		if err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
		want[k] = content
		if got := read(t, d, k); got != content {
			t.Errorf("read %q = %q, want %q", k, got, content)
		}
	}
	if got := tree(t, d, ""); !maps.Equal(got, want) {
		t.Errorf("store after the look-alike keys = %v, want %v", got, want)
	}
	for _, k := range lookalikes {
		if _, ok := want[k]; ok {
			if err := d.Delete(t.Context(), k); err != nil {
				t.Errorf("Delete(%q): %v", k, err)
			}
		}
	}
	if got := tree(t, d, ""); !maps.Equal(got, before) {
		t.Errorf("store after deleting the look-alike keys = %v, want %v", got, before)
	}
	if out != nil {
		out.check(t)
	}
}

// tree returns every object under prefix, recursively, with its content.
func tree(t *testing.T, d storage.Driver, prefix string) map[string]string {
	t.Helper()
	objects := map[string]string{}
	for _, name := range list(t, d, prefix) {
		key := name
		if prefix != "" {
			key = prefix + "/" + name
		}
		if _, err := d.Stat(t.Context(), key); err == nil {
			objects[key] = read(t, d, key)
		}
		if _, err := d.List(t.Context(), key); errors.Is(err, storage.ErrNotFound) {
			continue
		}
		maps.Copy(objects, tree(t, d, key))
	}
	return objects
}

// outside watches the directory that holds a rooted driver's root: a
// sentinel file there, and the directory's entries.
type outside struct {
	root, dir, sentinel string
	entries             []string
	keys                []string
	existed             map[string]bool // naive targets of the keys that existed before
}

const sentinelContent = "the store must never touch this file"

func watchOutside(t *testing.T, root string) *outside {
	t.Helper()
	dir := filepath.Dir(root)
	f, err := os.CreateTemp(dir, "storagetest-sentinel-*")
	if err != nil {
		t.Fatalf("create sentinel beside the store: %v", err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	_, err = f.WriteString(sentinelContent)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("write sentinel: %v", err)
	}
	o := &outside{root: root, dir: dir, sentinel: f.Name()}
	o.entries = o.list(t)
	return o
}

// arm records which of the keys' naive targets outside the root exist now.
func (o *outside) arm(keys []string) {
	o.keys, o.existed = keys, map[string]bool{}
	for _, k := range keys {
		for _, p := range o.targets(k) {
			if _, err := os.Lstat(p); err == nil {
				o.existed[p] = true
			}
		}
	}
}

// sentinelKeys returns keys aimed at the sentinel: relative climbs, its
// absolute path, and a climb with backslashes.
func (o *outside) sentinelKeys() []string {
	name := filepath.Base(o.sentinel)
	return []string{
		"../" + name,
		"a/../../" + name,
		"..\\" + name,
		filepath.ToSlash(o.sentinel),
		"a/" + filepath.ToSlash(o.sentinel)[1:] + "/..",
	}
}

func (o *outside) list(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		t.Fatalf("read %s: %v", o.dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// targets returns where a key would land if a backend joined it to its
// root without checking, with slashes or with backslashes as separators.
func (o *outside) targets(key string) []string {
	var out []string
	for _, k := range []string{key, strings.ReplaceAll(key, "\\", "/")} {
		candidates := []string{filepath.Join(o.root, k)}
		if filepath.IsAbs(k) {
			candidates = append(candidates, filepath.Clean(k))
		}
		for _, p := range candidates {
			if rel, err := filepath.Rel(o.root, p); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
				out = append(out, p)
			}
		}
	}
	return out
}

// check fails t when the sentinel changed, an entry appeared or vanished
// beside the root, or a naive target outside the root of an armed key was
// created.
func (o *outside) check(t *testing.T) {
	t.Helper()
	if b, err := os.ReadFile(o.sentinel); err != nil || string(b) != sentinelContent {
		t.Errorf("sentinel %s beside the store = %q, %v; want it untouched", o.sentinel, b, err)
	}
	if got := o.list(t); !slices.Equal(got, o.entries) {
		t.Errorf("entries beside the store = %q, want %q", got, o.entries)
	}
	for _, k := range o.keys {
		for _, p := range o.targets(k) {
			if _, err := os.Lstat(p); err == nil && !o.existed[p] {
				t.Errorf("key %q: %s exists outside the store", k, p)
			}
		}
	}
}

func testObjectIsSeekable(t *testing.T, d storage.Driver) {
	put(t, d, "k", "0123456789")
	tests := []struct {
		name    string
		offset  int64
		whence  int
		n       int
		wantPos int64
		want    string
	}{
		{"FromStart", 3, io.SeekStart, 4, 3, "3456"},
		{"FromEnd", -2, io.SeekEnd, 10, 8, "89"},
		{"FromCurrent", 2, io.SeekCurrent, 3, 3, "345"}, // after reading one byte
		{"ToEnd", 0, io.SeekEnd, 10, 10, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := d.Open(t.Context(), "k")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer obj.Close()
			if tc.whence == io.SeekCurrent {
				if _, err := io.ReadFull(obj, make([]byte, 1)); err != nil {
					t.Fatalf("read first byte: %v", err)
				}
			}
			pos, err := obj.Seek(tc.offset, tc.whence)
			if err != nil || pos != tc.wantPos {
				t.Fatalf("Seek = %d, %v; want %d", pos, err, tc.wantPos)
			}
			got, err := io.ReadAll(io.LimitReader(obj, int64(tc.n)))
			if err != nil || string(got) != tc.want {
				t.Fatalf("read after Seek = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func testReaderOpenedBeforeOverwriteSeesOldContent(t *testing.T, d storage.Driver) {
	old := bytes.Repeat([]byte("o"), 256<<10)
	tests := []struct {
		name string
		next []byte
	}{
		{"ShorterContent", []byte("new")},
		{"LongerContent", bytes.Repeat([]byte("n"), 512<<10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := put(t, d, "k", string(old))
			obj, err := d.Open(t.Context(), "k")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer obj.Close()
			first := make([]byte, 1)
			if _, err := io.ReadFull(obj, first); err != nil {
				t.Fatalf("read first byte: %v", err)
			}
			put(t, d, "k", string(tc.next))
			rest, err := io.ReadAll(obj)
			got := append(first, rest...)
			if err != nil {
				// Failing cleanly is allowed; serving a mix is not.
				if !bytes.HasPrefix(old, got) {
					t.Fatalf("failed read (%v) returned bytes that are not the old content", err)
				}
				return
			}
			if !bytes.Equal(got, old) {
				t.Fatalf("reader got %d bytes mixing old and new content, want the %d old bytes", len(got), len(old))
			}
			if info := obj.Info(); info.Version != before.Version || info.Size != before.Size {
				t.Errorf("Object.Info = %+v, want the opened version %+v", info, before)
			}
		})
	}
}

func testConcurrentReadersNeverSeePartialWrites(t *testing.T, d storage.Driver) {
	contents := [][]byte{bytes.Repeat([]byte("a"), 64<<10), bytes.Repeat([]byte("b"), 3<<10)}
	put(t, d, "k", string(contents[0]))
	ctx := t.Context()
	var (
		wg      sync.WaitGroup
		writing atomic.Bool
	)
	writing.Store(true)
	wg.Go(func() {
		defer writing.Store(false)
		for i := range 50 {
			if _, err := d.Put(ctx, "k", bytes.NewReader(contents[i%2]), storage.Condition{}); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
		}
	})
	for range 4 {
		wg.Go(func() {
			for writing.Load() {
				got, info, err := storage.ReadAll(ctx, d, "k")
				if err != nil {
					t.Errorf("read during writes: %v", err)
					return
				}
				if !bytes.Equal(got, contents[0]) && !bytes.Equal(got, contents[1]) {
					t.Errorf("read %d bytes that are neither complete content", len(got))
					return
				}
				if info.Size != int64(len(got)) {
					t.Errorf("Object.Info Size = %d for %d bytes read", info.Size, len(got))
					return
				}
			}
		})
	}
	wg.Wait()
}

func testPingSucceeds(t *testing.T, d storage.Driver) {
	if err := d.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if names, err := d.List(t.Context(), ""); err == nil && len(names) != 0 {
		t.Fatalf("List(\"\") = %q after Ping, want nothing visible", names)
	}
}
