package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/storagetest"
)

const mib = 1 << 20

var listAll = minio.ListObjectsOptions{Recursive: true}

func TestDriverMeetsStorageContract(t *testing.T) {
	requireMinio(t)
	storagetest.Run(t, func(t *testing.T) storage.Driver { return newTestDriver(t) })
}

// TestDriverWithPrefixMeetsStorageContract runs the suite with every driver
// under its own prefix of one shared bucket, as stores sharing a bucket are.
func TestDriverWithPrefixMeetsStorageContract(t *testing.T) {
	shared := newTestDriver(t)
	n := 0
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		n++
		return newTestDriver(t, func(o *Options) {
			o.Bucket, o.CreateBucket, o.Prefix = shared.bucket, false, fmt.Sprintf("/tenants/%d/", n)
		})
	})
	for _, name := range bucketObjects(t, shared) {
		if !strings.HasPrefix(name, "tenants/") {
			t.Errorf("object %s outside the drivers' prefixes", name)
		}
	}
}

// pattern returns n bytes that differ between seeds and offsets, so a part
// read twice or out of order shows.
func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// appendAll appends chunks to key from its current size and returns them.
func appendAll(t *testing.T, d *Driver, key string, chunks ...[]byte) (appended []byte) {
	t.Helper()
	var offset int64
	if info, err := d.Stat(t.Context(), key); err == nil {
		offset = info.Size
	}
	for _, c := range chunks {
		n, err := d.Append(t.Context(), key, offset, bytes.NewReader(c))
		if err != nil {
			t.Fatalf("Append(%s, %d, %d bytes): %v", key, offset, len(c), err)
		}
		if n != int64(len(c)) {
			t.Fatalf("Append(%s, %d) wrote %d bytes, want %d", key, offset, n, len(c))
		}
		offset += n
		appended = append(appended, c...)
	}
	return appended
}

// wantContent checks key's size and bytes.
func wantContent(t *testing.T, d *Driver, key string, want []byte) {
	t.Helper()
	if info, err := d.Stat(t.Context(), key); err != nil || info.Size != int64(len(want)) {
		t.Fatalf("Stat(%s) = %+v, %v; want Size %d", key, info, err, len(want))
	}
	got, info, err := storage.ReadAll(t.Context(), d, key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if info.Size != int64(len(want)) {
		t.Fatalf("Object.Info Size = %d, want %d", info.Size, len(want))
	}
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("%s: read %d bytes that differ from the %d written (first difference at %d)", key, len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// wantComposableParts checks the invariant Move relies on: the parts of
// key start where they are named and, but for the last, hold 5 MiB or more.
func wantComposableParts(t *testing.T, d *Driver, key string, wantStarts ...int64) {
	t.Helper()
	parts, err := d.listParts(t.Context(), key)
	if err != nil {
		t.Fatalf("list parts of %s: %v", key, err)
	}
	var starts []int64
	for i, p := range parts {
		starts = append(starts, p.start)
		if i < len(parts)-1 && p.size < minPartSize {
			t.Errorf("part %d of %s holds %d bytes, under the 5 MiB S3 can compose", i, key, p.size)
		}
	}
	if wantStarts != nil && !slices.Equal(starts, wantStarts) {
		t.Errorf("parts of %s start at %v, want %v", key, starts, wantStarts)
	}
}

func TestAppendInMiBChunksThenMoveComposes(t *testing.T) {
	d := newTestDriver(t)
	ctx := t.Context()
	const src, dst = "uploads/u/data", "blobs/sha256/ab/abcd/data"
	// As the OCI upload handler does: an empty object, then the chunks.
	if _, err := d.Put(ctx, src, bytes.NewReader(nil), storage.Condition{IfNoneMatch: true}); err != nil {
		t.Fatalf("create upload: %v", err)
	}
	want := appendAll(t, d, src, pattern(1, 6*mib), pattern(2, mib), pattern(3, 7*mib))
	wantComposableParts(t, d, src, 0, 6*mib) // the 1 MiB part took the 7 MiB with it
	var small [][]byte
	for i := range 60 {
		small = append(small, pattern(uint64(10+i), 100))
	}
	want = append(want, appendAll(t, d, src, small...)...)
	wantComposableParts(t, d, src, 0, 6*mib, 14*mib)
	wantContent(t, d, src, want)

	t.Run("SeekAcrossParts", func(t *testing.T) {
		obj, err := d.Open(ctx, src)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer obj.Close()
		for _, at := range []int64{6*mib - 10, 14*mib - 3, 0, int64(len(want)) - 5} {
			if pos, err := obj.Seek(at, io.SeekStart); err != nil || pos != at {
				t.Fatalf("Seek(%d) = %d, %v", at, pos, err)
			}
			got := make([]byte, min(20, len(want)-int(at)))
			if _, err := io.ReadFull(obj, got); err != nil || !bytes.Equal(got, want[at:at+int64(len(got))]) {
				t.Fatalf("read at %d = %v, %v; want the bytes appended there", at, got, err)
			}
		}
		if pos, err := obj.Seek(-1, io.SeekEnd); err != nil || pos != int64(len(want))-1 {
			t.Fatalf("Seek(-1, SeekEnd) = %d, %v", pos, err)
		}
		if rest, err := io.ReadAll(obj); err != nil || !bytes.Equal(rest, want[len(want)-1:]) {
			t.Fatalf("read the last byte = %v, %v", rest, err)
		}
	})

	if err := d.Move(ctx, src, dst); err != nil {
		t.Fatalf("Move: %v", err)
	}
	wantContent(t, d, dst, want)
	oi, err := d.client.StatObject(ctx, d.bucket, d.object(dst), minio.StatObjectOptions{})
	if err != nil || !strings.HasSuffix(oi.ETag, "-3") {
		t.Errorf("destination ETag %q, %v: want a composition of the 3 parts (suffix -3)", oi.ETag, err)
	}
	if _, err := d.Stat(ctx, src); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(source) after Move = %v, want ErrNotFound", err)
	}
	if names := bucketObjects(t, d); !slices.Equal(names, []string{dst}) {
		t.Errorf("bucket holds %q after Move, want only %s", names, dst)
	}
}

// TestAppendRewindDiscardsTail: an upload whose state was not recorded after
// an Append continues from the recorded offset, wherever in the parts it is.
func TestAppendRewindDiscardsTail(t *testing.T) {
	d := newTestDriver(t)
	ctx := t.Context()
	first, second := pattern(1, 6*mib), pattern(2, 2*mib)
	all := append(slices.Clone(first), second...)
	tests := []struct {
		name       string
		whole      bool // the key starts as one object (Put), not as parts
		offset     int64
		wantStarts []int64
	}{
		{"ToZero", false, 0, []int64{0}},
		{"IntoFirstPartBelow5MiB", false, 1 * mib, []int64{0}},
		{"IntoFirstPartAbove5MiB", false, 5*mib + 7, []int64{0, 5*mib + 7}},
		{"ToPartBoundary", false, 6 * mib, []int64{0, 6 * mib}},
		{"IntoLastPart", false, 7 * mib, []int64{0, 6 * mib}},
		{"ToEnd", false, 8 * mib, []int64{0, 6 * mib}},
		{"WholeObjectBelow5MiB", true, 3 * mib, []int64{0}},
		{"WholeObjectAbove5MiB", true, 5*mib + 7, []int64{0, 5*mib + 7}},
		{"WholeObjectToEnd", true, 8 * mib, []int64{0, 8 * mib}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("uploads/%d/data", i)
			if tc.whole {
				if _, err := d.Put(ctx, key, bytes.NewReader(all), storage.Condition{}); err != nil {
					t.Fatalf("Put: %v", err)
				}
			} else {
				appendAll(t, d, key, first, second)
			}
			tail := pattern(3, 1000)
			n, err := d.Append(ctx, key, tc.offset, bytes.NewReader(tail))
			if err != nil || n != int64(len(tail)) {
				t.Fatalf("Append at %d = %d, %v; want %d", tc.offset, n, err, len(tail))
			}
			want := append(slices.Clone(all[:tc.offset]), tail...)
			wantContent(t, d, key, want)
			wantComposableParts(t, d, key, tc.wantStarts...)
			if err := d.Move(ctx, key, key+"-moved"); err != nil {
				t.Fatalf("Move: %v", err)
			}
			wantContent(t, d, key+"-moved", want)
		})
	}
}

func TestAppendPastEndOfPartsIsInvalidOffset(t *testing.T) {
	d := newTestDriver(t)
	want := appendAll(t, d, "data", pattern(1, 6*mib), []byte("tail"))
	_, err := d.Append(t.Context(), "data", int64(len(want))+1, strings.NewReader("x"))
	if !errors.Is(err, storage.ErrInvalidOffset) {
		t.Fatalf("Append past the end = %v, want ErrInvalidOffset", err)
	}
	wantContent(t, d, "data", want)
}

// TestTwoReplicasCompareAndSwapLosesNoUpdate: two registry replicas on one
// bucket increment a counter by compare-and-swap, 16 goroutines each.
func TestTwoReplicasCompareAndSwapLosesNoUpdate(t *testing.T) {
	a := newTestDriver(t)
	b := newTestDriver(t, func(o *Options) { o.Bucket, o.CreateBucket = a.bucket, false })
	ctx := t.Context()
	if _, err := a.Put(ctx, "counter", strings.NewReader("0"), storage.Condition{IfNoneMatch: true}); err != nil {
		t.Fatalf("create counter: %v", err)
	}
	const perReplica, perWriter = 16, 3
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		retries int
	)
	for _, d := range []*Driver{a, b} {
		for range perReplica {
			wg.Go(func() {
				for range perWriter {
					r, err := increment(ctx, d, "counter")
					mu.Lock()
					retries += r
					if err != nil {
						errs = append(errs, err)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("increment errors: %v", errs)
	}
	t.Logf("%d retries on ErrPreconditionFailed", retries)
	got, _, err := storage.ReadAll(ctx, b, "counter")
	if want := strconv.Itoa(2 * perReplica * perWriter); err != nil || string(got) != want {
		t.Fatalf("counter = %s, %v; want %s: updates were lost", got, err, want)
	}
}

func increment(ctx context.Context, d storage.Driver, key string) (retries int, err error) {
	for ; ; retries++ {
		b, info, err := storage.ReadAll(ctx, d, key)
		if err != nil {
			return retries, err
		}
		n, err := strconv.Atoi(string(b))
		if err != nil {
			return retries, err
		}
		_, err = d.Put(ctx, key, strings.NewReader(strconv.Itoa(n+1)), storage.Condition{IfMatch: info.Version})
		if !errors.Is(err, storage.ErrPreconditionFailed) {
			return retries, err
		}
	}
}

// TestPutIfMatchSeesRewriteWithSameContent: the ETag alone (an MD5 of the
// content) cannot tell two writes of the same bytes apart; the nonce can.
func TestPutIfMatchSeesRewriteWithSameContent(t *testing.T) {
	d := newTestDriver(t)
	ctx := t.Context()
	stale, err := d.Put(ctx, "k", strings.NewReader("same"), storage.Condition{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	current, err := d.Put(ctx, "k", strings.NewReader("same"), storage.Condition{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := d.Put(ctx, "k", strings.NewReader("lost"), storage.Condition{IfMatch: stale.Version}); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Put IfMatch the version of an identical earlier write = %v, want ErrPreconditionFailed", err)
	}
	if _, err := d.Put(ctx, "k", strings.NewReader("new"), storage.Condition{IfMatch: current.Version}); err != nil {
		t.Fatalf("Put IfMatch the current version: %v", err)
	}
	wantContent(t, d, "k", []byte("new"))
}

// TestConditionalPutLargerThanAPartIsOnePut: a multipart upload would
// check no condition, so a conditional body goes up in one PUT whatever the
// part size.
func TestConditionalPutLargerThanAPartIsOnePut(t *testing.T) {
	d := newTestDriver(t, func(o *Options) { o.PartSize = 5 * mib })
	ctx := t.Context()
	stale, err := d.Put(ctx, "k", strings.NewReader("first"), storage.Condition{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	current, err := d.Put(ctx, "k", strings.NewReader("second"), storage.Condition{})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	body := pattern(1, 6*mib)
	if _, err := d.Put(ctx, "k", bytes.NewReader(body), storage.Condition{IfMatch: stale.Version}); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Put IfMatch a stale version = %v, want ErrPreconditionFailed", err)
	}
	if _, err := d.Put(ctx, "k", bytes.NewReader(body), storage.Condition{IfMatch: current.Version}); err != nil {
		t.Fatalf("Put IfMatch the current version: %v", err)
	}
	wantContent(t, d, "k", body)
	if oi, err := d.client.StatObject(ctx, d.bucket, "k", minio.StatObjectOptions{}); err != nil || strings.Contains(oi.ETag, "-") {
		t.Errorf("ETag %q, %v: want a single PUT", oi.ETag, err)
	}
}

func TestConditionalPutOnAppendedKey(t *testing.T) {
	d := newTestDriver(t)
	ctx := t.Context()
	appendAll(t, d, "k", []byte("appended"))
	if _, err := d.Put(ctx, "k", strings.NewReader("x"), storage.Condition{IfNoneMatch: true}); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Put IfNoneMatch on an appended key = %v, want ErrPreconditionFailed", err)
	}
	info, err := d.Stat(ctx, "k")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if _, err := d.Put(ctx, "k", strings.NewReader("x"), storage.Condition{IfMatch: "other:version"}); !errors.Is(err, storage.ErrPreconditionFailed) {
		t.Fatalf("Put IfMatch another version = %v, want ErrPreconditionFailed", err)
	}
	if _, err := d.Put(ctx, "k", strings.NewReader("replaced"), storage.Condition{IfMatch: info.Version}); err != nil {
		t.Fatalf("Put IfMatch the appended key's version: %v", err)
	}
	wantContent(t, d, "k", []byte("replaced"))
	if names := bucketObjects(t, d); !slices.Equal(names, []string{"k"}) {
		t.Errorf("bucket holds %q, want only k: the parts are stale", names)
	}
}

// TestUnconditionalPutStreamsInParts: a body of unknown size larger than a
// part goes up as a multipart upload, and a failure aborts it.
func TestUnconditionalPutStreamsInParts(t *testing.T) {
	d := newTestDriver(t, func(o *Options) { o.PartSize = 5 * mib })
	ctx := t.Context()
	want := pattern(1, 12*mib+3)
	// A reader without Len or Seek: its size is unknown.
	if _, err := d.Put(ctx, "big", iotest.HalfReader(bytes.NewReader(want)), storage.Condition{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	wantContent(t, d, "big", want)
	if oi, err := d.client.StatObject(ctx, d.bucket, "big", minio.StatObjectOptions{}); err != nil || !strings.HasSuffix(oi.ETag, "-3") {
		t.Errorf("ETag %q, %v: want a multipart upload of 3 parts", oi.ETag, err)
	}

	tests := []struct {
		name string
		body io.Reader
		want error
	}{
		{"ReaderFailsAfterTwoParts", io.MultiReader(bytes.NewReader(want[:11*mib]), iotest.ErrReader(errBoom)), errBoom},
		// net/http's error for a body shorter than its Content-Length: not an end.
		{"BodyCutShort", io.MultiReader(bytes.NewReader(want[:11*mib]), iotest.ErrReader(io.ErrUnexpectedEOF)), io.ErrUnexpectedEOF},
		{"SmallBodyCutShort", io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(io.ErrUnexpectedEOF)), io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := d.Put(ctx, "big", tc.body, storage.Condition{}); !errors.Is(err, tc.want) {
				t.Fatalf("Put = %v, want %v", err, tc.want)
			}
			wantContent(t, d, "big", want)
			for up := range d.client.ListIncompleteUploads(ctx, d.bucket, "", true) {
				t.Errorf("multipart upload of %s left behind (%v)", up.Key, up.Err)
			}
		})
	}
}

var errBoom = errors.New("boom")

func TestConditionalPutOver16MiBIsRefused(t *testing.T) {
	d := newTestDriver(t)
	_, err := d.Put(t.Context(), "k", bytes.NewReader(make([]byte, maxConditionalPut+1)), storage.Condition{IfNoneMatch: true})
	if err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("Put IfNoneMatch of 16 MiB + 1 = %v, want a refusal", err)
	}
	if _, err := d.Stat(t.Context(), "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat = %v, want ErrNotFound", err)
	}
}

// TestAppendedKeysAreListedAndDeleted: keys that exist only as parts are
// objects like the others, and the parts never show.
func TestAppendedKeysAreListedAndDeleted(t *testing.T) {
	d := newTestDriver(t, func(o *Options) { o.Prefix = "store" })
	ctx := t.Context()
	appendAll(t, d, "uploads/a/data", []byte("a"))
	appendAll(t, d, "uploads/c/deep/data", []byte("c"))
	if _, err := d.Put(ctx, "uploads/b/state", strings.NewReader("b"), storage.Condition{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	for prefix, want := range map[string][]string{
		"":               {"uploads"},
		"uploads":        {"a", "b", "c"},
		"uploads/a":      {"data"},
		"uploads/c":      {"deep"},
		"uploads/c/deep": {"data"},
	} {
		if got, err := d.List(ctx, prefix); err != nil || !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, %v; want %q", prefix, got, err, want)
		}
	}
	if _, err := d.List(ctx, "uploads/a/data"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("List of an appended key = %v, want ErrNotFound (its parts are no children)", err)
	}
	if err := d.Delete(ctx, "uploads/a/data"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := d.Delete(ctx, "uploads/a/data"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if got, err := d.List(ctx, "uploads"); err != nil || !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("List(uploads) after Delete = %q, %v; want [b c]", got, err)
	}
	if err := d.DeleteAll(ctx, "uploads"); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	if names := bucketObjects(t, d); len(names) != 0 {
		t.Errorf("bucket holds %q after DeleteAll, want nothing", names)
	}
}

// TestWholeObjectWinsOverStaleParts: a Put onto an appended key leaves its
// parts behind (no LIST on the hot path); they must never show, and the
// next Delete takes them.
func TestWholeObjectWinsOverStaleParts(t *testing.T) {
	d := newTestDriver(t)
	ctx := t.Context()
	appendAll(t, d, "k", []byte("appended"))
	if _, err := d.Put(ctx, "k", strings.NewReader("put"), storage.Condition{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	wantContent(t, d, "k", []byte("put"))
	if err := d.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := d.Stat(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v, want ErrNotFound: stale parts came back", err)
	}
	if names := bucketObjects(t, d); len(names) != 0 {
		t.Errorf("bucket holds %q after Delete, want nothing", names)
	}
}

func TestNewWithoutCreateBucketRefusesMissingBucket(t *testing.T) {
	opts := requireMinio(t).options()
	opts.CreateBucket = false
	_, err := New(t.Context(), opts)
	if !errors.Is(err, ErrBucketMissing) {
		t.Fatalf("New on a missing bucket = %v, want ErrBucketMissing", err)
	}
	for _, want := range []string{opts.Bucket, "CreateBucket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestNewCreatesBucket(t *testing.T) {
	opts := requireMinio(t).options()
	d, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if ok, err := d.client.BucketExists(t.Context(), opts.Bucket); !ok || err != nil {
		t.Fatalf("BucketExists = %v, %v after New with CreateBucket", ok, err)
	}
	if _, err := New(t.Context(), opts); err != nil {
		t.Fatalf("New again on the existing bucket: %v", err)
	}
}

func TestPingReportsMissingBucket(t *testing.T) {
	d := newTestDriver(t)
	if err := d.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := d.client.RemoveBucket(t.Context(), d.bucket); err != nil {
		t.Fatalf("remove bucket: %v", err)
	}
	d.create = false
	err := d.Ping(t.Context())
	if !errors.Is(err, ErrBucketMissing) || !strings.Contains(err.Error(), d.bucket) {
		t.Fatalf("Ping = %v, want ErrBucketMissing naming bucket %s", err, d.bucket)
	}
	if _, err := d.Put(t.Context(), "k", strings.NewReader("x"), storage.Condition{}); !errors.Is(err, ErrBucketMissing) {
		t.Errorf("Put = %v, want ErrBucketMissing", err)
	}
	// With CreateBucket, Ping brings the bucket back.
	d.create = true
	if err := d.Ping(t.Context()); err != nil {
		t.Fatalf("Ping with CreateBucket after the bucket went: %v", err)
	}
	if _, err := d.Put(t.Context(), "k", strings.NewReader("x"), storage.Condition{}); err != nil {
		t.Errorf("Put after Ping recreated the bucket: %v", err)
	}
}

func TestLazyNewStartsWhileTheEndpointIsDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	d, err := New(t.Context(), Options{Endpoint: "http://" + addr, Bucket: "lazy-bucket", Lazy: true, CreateBucket: true})
	if err != nil {
		t.Fatalf("lazy New with the endpoint down: %v", err)
	}
	if err := d.Ping(t.Context()); err == nil || !IsUnavailable(err) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Ping with the endpoint down = %v; want an unavailable error naming %s", err, addr)
	}
}

func TestErrorsHoldNoCredentials(t *testing.T) {
	srv := requireMinio(t)
	const secret = "s3cr3t-must-not-show"
	tests := []struct {
		name   string
		change func(*Options)
	}{
		{"WrongSecret", func(o *Options) { o.SecretKey = secret }},
		{"CredentialsInURL", func(o *Options) { o.Endpoint = strings.Replace(o.Endpoint, "://", "://admin:"+secret+"@", 1) }},
		{"UnparsableURL", func(o *Options) { o.Endpoint = "http://admin:" + secret + "@[::1" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := srv.options()
			tc.change(&opts)
			_, err := New(t.Context(), opts)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q shows the secret", err)
			}
		})
	}
}

func TestIsUnavailable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"SlowDown", minio.ErrorResponse{Code: "SlowDown", StatusCode: 503}, true},
		{"WrappedThrottling", fmt.Errorf("put k: %w", minio.ErrorResponse{Code: "Throttling", StatusCode: 400}), true},
		{"GatewayTimeout", minio.ErrorResponse{Code: "504 Gateway Timeout", StatusCode: 504}, true},
		{"Deadline", fmt.Errorf("stat k: %w", context.DeadlineExceeded), true},
		{"Refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"NoSuchKey", minio.ErrorResponse{Code: "NoSuchKey", StatusCode: 404}, false},
		{"AccessDenied", minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}, false},
		{"NotFound", storage.ErrNotFound, false},
		{"Canceled", context.Canceled, false},
		{"Nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsUnavailable(tc.err); got != tc.want {
				t.Fatalf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestPingOfUnreachableEndpointIsUnavailable(t *testing.T) {
	addrs, err := freeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDriver(Options{Endpoint: "http://" + addrs[0], Bucket: "unreachable", AccessKey: "a", SecretKey: "s"})
	if err != nil {
		t.Fatalf("newDriver: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err = d.Ping(ctx)
	if err == nil || !IsUnavailable(err) {
		t.Fatalf("Ping of a closed port = %v, want an error IsUnavailable recognises", err)
	}
}

// TestMultipartReadAheadAndWithout: a multipart write reads its next part
// while the last one uploads when the driver's budget has a second buffer,
// and sends them one after the other when it has none; either way the
// object is the body, also when it ends exactly at a part's end.
func TestMultipartReadAheadAndWithout(t *testing.T) {
	d := newTestDriver(t, func(o *Options) { o.PartSize = 5 * mib })
	ctx := t.Context()
	// Every part buffer of the budget free (partsInFlight parts at once),
	// one left (two at once), none (one after the other).
	for _, left := range []int{cap(d.readAhead), 1, 0} {
		if n := len(d.readAhead); n != 0 {
			t.Fatalf("%d read-ahead tokens still taken after the writes: leaked", n)
		}
		for range cap(d.readAhead) - left {
			d.readAhead <- struct{}{} // the budget is spent by other writes
		}
		for _, size := range []int{10 * mib, 15*mib + 1, 26 * mib} {
			want := pattern(uint64(size), size)
			key := fmt.Sprintf("big-%d-%d", left, size)
			if _, err := d.Put(ctx, key, iotest.HalfReader(bytes.NewReader(want)), storage.Condition{}); err != nil {
				t.Fatalf("Put %s: %v", key, err)
			}
			wantContent(t, d, key, want)
			parts := (size + 5*mib - 1) / (5 * mib)
			if oi, err := d.client.StatObject(ctx, d.bucket, key, minio.StatObjectOptions{}); err != nil || !strings.HasSuffix(oi.ETag, fmt.Sprintf("-%d", parts)) {
				t.Errorf("%s: ETag %q, %v: want a multipart upload of %d parts", key, oi.ETag, err, parts)
			}
		}
		for range cap(d.readAhead) - left {
			<-d.readAhead
		}
	}
}
