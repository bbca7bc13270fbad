package pullthrough

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sum256(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// upstream is an upstream body the test controls: bytes reach the fill only
// when the test writes them.
type upstream struct {
	opens  atomic.Int32
	mu     sync.Mutex
	pipes  []*io.PipeWriter
	size   int64
	openFn func(ctx context.Context) (Source, error) // replaces the pipe when set
}

func (u *upstream) open(ctx context.Context) (Source, error) {
	u.opens.Add(1)
	if u.openFn != nil {
		return u.openFn(ctx)
	}
	pr, pw := io.Pipe()
	u.mu.Lock()
	u.pipes = append(u.pipes, pw)
	u.mu.Unlock()
	return Source{Body: pr, Size: u.size}, nil
}

// body is the writer of the nth download's body.
func (u *upstream) body(t *testing.T, n int) *io.PipeWriter {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pipes) <= n {
		t.Fatalf("download %d was never opened (%d opened)", n, len(u.pipes))
	}
	return u.pipes[n]
}

// send writes b to the nth body in the background (a pipe write blocks
// until the fill has read it) and reports when the fill has taken it all.
func (u *upstream) send(t *testing.T, n int, b []byte) <-chan error {
	w := u.body(t, n)
	done := make(chan error, 1)
	go func() { _, err := w.Write(b); done <- err }()
	return done
}

// committer records Commit calls and the content they stored.
type committer struct {
	mu      sync.Mutex
	calls   int
	stored  []byte
	size    int64
	err     error         // returned by Commit when set
	gate    chan struct{} // Commit waits for it when set
	entered chan struct{} // closed when Commit is first called, if set
	// returned is set just before Commit returns.
	returned atomic.Bool
	// ctxErr is Commit's context's error when it was called.
	ctxErr error
}

func (c *committer) commit(ctx context.Context, spool io.Reader, size int64) error {
	c.mu.Lock()
	c.calls++
	first := c.calls == 1
	c.ctxErr = ctx.Err()
	c.mu.Unlock()
	if first && c.entered != nil {
		close(c.entered)
	}
	data, err := io.ReadAll(spool)
	if err != nil {
		return err
	}
	if c.gate != nil {
		<-c.gate
	}
	c.mu.Lock()
	c.stored, c.size = data, size
	c.mu.Unlock()
	c.returned.Store(true)
	return c.err
}

func (c *committer) commitSpool(ctx context.Context, s Spool) error {
	return c.commit(ctx, s.Reader, s.Size)
}

func (c *committer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func download(u *upstream, content []byte, c *committer) Download {
	return Download{Open: u.open, Hash: sha256.New, Sum: sum256(content), Commit: c.commitSpool}
}

type readResult struct {
	data []byte
	err  error
	// committed is whether Commit had returned when the reader saw the end.
	committed bool
}

// readAll reads r to its end in the background.
func readAll(r io.Reader, c *committer) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		data, err := io.ReadAll(r)
		ch <- readResult{data: data, err: err, committed: c != nil && c.returned.Load()}
	}()
	return ch
}

func await[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10s", what)
		panic("unreachable")
	}
}

func spoolEmpty(t *testing.T, dir string) {
	t.Helper()
	// The last reference (a reader, or the download once stored) removes
	// the spool file: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("spool directory holds %v, want nothing left", names)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// budgetReturned waits until every fill has released its spool bytes: the
// last reference may be the downloader's, dropped just after readers see
// the end.
func budgetReturned(t *testing.T, fs *Fills) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fs.mu.Lock()
		used := fs.used
		fs.mu.Unlock()
		if used == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spool budget still holds %d bytes after every fill ended and every reader closed", used)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFillsCoalescesConcurrentJoins(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 3<<20+12345) // several of the downloader's chunks
	u := &upstream{size: int64(len(content))}
	c := &committer{}
	var upstreamBytes atomic.Int64
	fs.OnBytes = func(n int) { upstreamBytes.Add(int64(n)) }

	const readers = 50
	type joined struct {
		r    *Reader
		size int64
		err  error
	}
	joins := make(chan joined, readers)
	for range readers {
		go func() {
			r, size, err := fs.Join(context.Background(), "sha256:abc", download(u, content, c))
			joins <- joined{r, size, err}
		}()
	}
	// The body has sent nothing yet, so the fill is still under way when
	// every caller joins.
	var results []<-chan readResult
	for range readers {
		j := await(t, "Join", joins)
		if j.err != nil {
			t.Fatalf("Join: %v", j.err)
		}
		if j.size != int64(len(content)) {
			t.Fatalf("Join size = %d, want %d", j.size, len(content))
		}
		defer j.r.Close()
		results = append(results, readAll(j.r, c))
	}
	if n := u.opens.Load(); n != 1 {
		t.Fatalf("Open called %d times for %d concurrent joins, want 1", n, readers)
	}
	sent := u.send(t, 0, content)
	if err := await(t, "upstream write", sent); err != nil {
		t.Fatal(err)
	}
	u.body(t, 0).Close()
	for i, ch := range results {
		res := await(t, "reader", ch)
		if res.err != nil {
			t.Fatalf("reader %d: %v", i, res.err)
		}
		if !bytes.Equal(res.data, content) {
			t.Fatalf("reader %d got %d bytes that differ from the %d of the content", i, len(res.data), len(content))
		}
	}
	waitIdle(t, fs)
	if c.count() != 1 || !bytes.Equal(c.stored, content) || c.size != int64(len(content)) {
		t.Fatalf("Commit called %d times with %d bytes (size %d), want once with the content", c.count(), len(c.stored), c.size)
	}
	if got := upstreamBytes.Load(); got != int64(len(content)) {
		t.Errorf("OnBytes told of %d bytes, want %d", got, len(content))
	}
}

func TestFillsStreamsBeforeTheUpstreamHasSentHalf(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 4<<20)
	u := &upstream{size: int64(len(content))}
	c := &committer{}
	r, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	quarter := len(content) / 4
	if err := await(t, "first quarter", u.send(t, 0, content[:quarter])); err != nil {
		t.Fatal(err)
	}
	// The upstream has delivered a quarter and is held there: a reader must
	// already get bytes (and the right ones).
	buf := make([]byte, quarter)
	n := within(t, "Read while the upstream has sent a quarter", func() readResult {
		n, err := io.ReadAtLeast(r, buf, 1)
		return readResult{data: buf[:n], err: err}
	})
	if n.err != nil {
		t.Fatalf("first Read: %v", n.err)
	}
	if len(n.data) == 0 || !bytes.Equal(n.data, content[:len(n.data)]) {
		t.Fatalf("first Read got %d bytes that are not the content's start", len(n.data))
	}
	if c.count() != 0 {
		t.Fatal("Commit called before the upstream finished")
	}
	rest := readAll(r, c)
	if err := await(t, "rest", u.send(t, 0, content[quarter:])); err != nil {
		t.Fatal(err)
	}
	u.body(t, 0).Close()
	res := await(t, "reader", rest)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if got := append(append([]byte{}, n.data...), res.data...); !bytes.Equal(got, content) {
		t.Fatalf("reader got %d bytes in all that differ from the content", len(got))
	}
}

// failingFill joins readers to a download whose body is sent whole and
// closed, and returns what each reader saw.
func failingFill(t *testing.T, fs *Fills, u *upstream, d Download, body []byte, readers int) []readResult {
	t.Helper()
	var rs []*Reader
	for range readers {
		r, _, err := fs.Join(context.Background(), "k", d)
		if err != nil {
			t.Fatalf("Join: %v", err)
		}
		defer r.Close()
		rs = append(rs, r)
	}
	var chans []<-chan readResult
	for _, r := range rs {
		chans = append(chans, readAll(r, nil))
	}
	w := u.body(t, 0)
	go func() { w.Write(body); w.Close() }()
	var out []readResult
	for _, ch := range chans {
		out = append(out, await(t, "reader", ch))
	}
	return out
}

func TestFillsWrongContentIsAnErrorAndNeverCommitted(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 2<<20)
	tampered := bytes.Clone(content)
	tampered[len(tampered)-1] ^= 0xff // the last byte: readers have everything else already
	u := &upstream{size: int64(len(content))}
	c := &committer{}
	for i, res := range failingFill(t, fs, u, download(u, content, c), tampered, 5) {
		if res.err == nil {
			t.Fatalf("reader %d read %d bytes to io.EOF of content that does not match its digest", i, len(res.data))
		}
	}
	if c.count() != 0 {
		t.Fatal("content that does not match its digest was committed")
	}
}

func TestFillsShortBodyIsAnError(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 100_000)
	short := content[:50_000]
	u := &upstream{size: int64(len(content))} // declares 100 000, sends 50 000
	c := &committer{}
	// Sum of what is sent, so only the declared size can catch it.
	d := Download{Open: u.open, Hash: sha256.New, Sum: sum256(short), Commit: c.commitSpool}
	for i, res := range failingFill(t, fs, u, d, short, 3) {
		if res.err == nil {
			t.Fatalf("reader %d read a truncated body to io.EOF", i)
		}
	}
	if c.count() != 0 {
		t.Fatal("a body shorter than its declared size was committed")
	}
}

func TestFillsLongBodyIsAnError(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 100_000)
	u := &upstream{size: 50_000} // declares 50 000, sends 100 000
	c := &committer{}
	d := Download{Open: u.open, Hash: sha256.New, Sum: sum256(content), Commit: c.commitSpool}
	r, _, err := fs.Join(context.Background(), "k", d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	other, _, err := fs.Join(context.Background(), "k", d)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherRes := readAll(other, nil)
	await(t, "declared part", u.send(t, 0, content[:50_000]))
	// All but the last declared byte: it waits for the verdict.
	buf := make([]byte, 50_000)
	if _, err := io.ReadFull(r, buf[:50_000-1]); err != nil {
		t.Fatalf("reading the declared bytes: %v", err)
	}
	// The upstream goes on past what it declared (and stays open).
	await(t, "excess", u.send(t, 0, content[50_000:]))
	n := within(t, "Read past the declared size", func() readResult {
		n, err := r.Read(buf)
		return readResult{data: buf[:n], err: err}
	})
	if len(n.data) > 0 {
		t.Fatalf("a reader got %d more bytes of a body longer than declared", len(n.data))
	}
	if n.err == nil || n.err == io.EOF {
		t.Fatalf("Read past the declared size = %v, want an error", n.err)
	}
	u.body(t, 0).Close()
	if got := await(t, "other reader", otherRes); got.err == nil || len(got.data) >= 50_000 {
		t.Fatalf("other reader: %d bytes, %v; want fewer than 50 000 and an error", len(got.data), got.err)
	}
	if c.count() != 0 {
		t.Fatal("a body longer than its declared size was committed")
	}
}

// Readers are not held up by the store: they see the end once the content
// is verified, while Commit (held here) is still storing it; Commit is
// still called, and the fill stays joinable until it returns.
func TestFillsReadersSeeTheEndBeforeCommitReturns(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 1<<20)
	u := &upstream{size: int64(len(content))}
	c := &committer{gate: make(chan struct{}), entered: make(chan struct{})}
	var results []<-chan readResult
	for range 5 {
		r, _, err := fs.Join(context.Background(), "k", download(u, content, c))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		results = append(results, readAll(r, c))
	}
	if err := await(t, "body", u.send(t, 0, content)); err != nil {
		t.Fatal(err)
	}
	u.body(t, 0).Close()
	await(t, "Commit called", c.entered)
	for i, ch := range results {
		res := await(t, "reader", ch)
		if res.err != nil || !bytes.Equal(res.data, content) {
			t.Fatalf("reader %d while Commit is held: %d bytes, %v", i, len(res.data), res.err)
		}
		if res.committed {
			t.Fatalf("reader %d: Commit had returned although it is held", i)
		}
	}
	// A caller arriving while the content is being stored joins the spool.
	late, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	if res := await(t, "late reader", readAll(late, nil)); res.err != nil || !bytes.Equal(res.data, content) {
		t.Fatalf("late reader: %d bytes, %v", len(res.data), res.err)
	}
	late.Close()
	if n := u.opens.Load(); n != 1 {
		t.Fatalf("%d downloads, want 1", n)
	}
	close(c.gate)
	waitIdle(t, fs)
	if c.count() != 1 {
		t.Fatalf("Commit called %d times", c.count())
	}
}

// A Commit error does not fail readers that got verified bytes; it is
// logged, and the next caller downloads again.
func TestFillsCommitErrorMeansDownloadingAgain(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 300_000)
	u := &upstream{size: int64(len(content))}
	c := &committer{err: errors.New("store unavailable")}
	r, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	res := readAll(r, c)
	await(t, "body", u.send(t, 0, content))
	u.body(t, 0).Close()
	if got := await(t, "reader", res); got.err != nil || !bytes.Equal(got.data, content) {
		t.Fatalf("reader: %d bytes, %v", len(got.data), got.err)
	}
	r.Close()
	waitIdle(t, fs)
	r2, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if n := u.opens.Load(); n != 2 {
		t.Fatalf("after a failed Commit the next Join made %d downloads in all, want 2", n)
	}
}

// waitIdle waits until no download is under way (every Commit returned).
func waitIdle(t *testing.T, fs *Fills) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fs.mu.Lock()
		n := len(fs.active)
		fs.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a download is still under way")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestFillsDeclaredSizeOverBudgetIsRefused(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), Budget: 1000}
	u := &upstream{size: 1001}
	c := &committer{}
	_, _, err := fs.Join(context.Background(), "k", download(u, nil, c))
	if !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("Join of 1001 bytes with a 1000-byte budget = %v, want ErrSpoolFull", err)
	}
	// The refused upstream body is closed, not left hanging.
	if _, werr := u.body(t, 0).Write([]byte("x")); !errors.Is(werr, io.ErrClosedPipe) {
		t.Fatalf("writing to the refused body: %v, want it closed", werr)
	}
	spoolEmpty(t, fs.Dir)
	budgetReturned(t, fs)
}

func TestFillsBudgetIsSharedAndReturned(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), Budget: 1000}
	a := randomBytes(t, 600)
	ua := &upstream{size: 600}
	ca := &committer{}
	ra, _, err := fs.Join(context.Background(), "a", download(ua, a, ca))
	if err != nil {
		t.Fatalf("first fill of 600 of 1000: %v", err)
	}
	// While a holds 600, another 600 does not fit.
	ub := &upstream{size: 600}
	if _, _, err := fs.Join(context.Background(), "b", download(ub, a, &committer{})); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("second fill of 600 while 600 of 1000 are spooled = %v, want ErrSpoolFull", err)
	}
	// ... but 400 does.
	small := randomBytes(t, 400)
	us := &upstream{size: 400}
	rs, _, err := fs.Join(context.Background(), "s", download(us, small, &committer{}))
	if err != nil {
		t.Fatalf("fill of 400 beside 600 in a 1000 budget: %v", err)
	}
	for _, x := range []struct {
		u *upstream
		r *Reader
		b []byte
	}{{ua, ra, a}, {us, rs, small}} {
		res := readAll(x.r, nil)
		await(t, "body", x.u.send(t, 0, x.b))
		x.u.body(t, 0).Close()
		if got := await(t, "reader", res); got.err != nil || !bytes.Equal(got.data, x.b) {
			t.Fatalf("reader: %d bytes, %v", len(got.data), got.err)
		}
		x.r.Close()
	}
	budgetReturned(t, fs)
	// The budget came back: a later fill of the same size succeeds.
	uc := &upstream{size: 600}
	rc, _, err := fs.Join(context.Background(), "c", download(uc, a, &committer{}))
	if err != nil {
		t.Fatalf("fill of 600 after the others ended: %v, want the budget returned", err)
	}
	res := readAll(rc, nil)
	await(t, "body", uc.send(t, 0, a))
	uc.body(t, 0).Close()
	if got := await(t, "reader", res); got.err != nil {
		t.Fatal(got.err)
	}
	rc.Close()
	budgetReturned(t, fs)
	spoolEmpty(t, fs.Dir)
}

func TestFillsFailedFillReturnsItsBudget(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), Budget: 1000}
	content := randomBytes(t, 800)
	u := &upstream{size: 800}
	res := failingFill(t, fs, u, download(u, content, &committer{}), content[:10], 2)
	if res[0].err == nil {
		t.Fatal("short body read to EOF")
	}
	budgetReturned(t, fs)
}

func TestFillsUnknownSizeOverflowingTheBudgetIsAnError(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), Budget: 1000}
	content := randomBytes(t, 2500)
	u := &upstream{size: -1}
	c := &committer{}
	r, size, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatalf("Join of an undeclared size: %v", err)
	}
	defer r.Close()
	if size != -1 {
		t.Fatalf("Join size = %d, want -1 for an undeclared size", size)
	}
	res := readAll(r, nil)
	w := u.body(t, 0)
	go func() {
		for i := 0; i < len(content); i += 500 {
			if _, err := w.Write(content[i : i+500]); err != nil {
				return
			}
		}
		w.Close()
	}()
	got := await(t, "reader", res)
	if !errors.Is(got.err, ErrSpoolFull) {
		t.Fatalf("reader of 2500 undeclared bytes with a 1000-byte budget got %v, want ErrSpoolFull", got.err)
	}
	if len(got.data) > 1000 {
		t.Fatalf("reader got %d bytes, more than the budget", len(got.data))
	}
	if c.count() != 0 {
		t.Fatal("an overflowing download was committed")
	}
	r.Close()
	budgetReturned(t, fs)
}

func TestFillsUnknownSizeWithinTheBudget(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), Budget: 1 << 20}
	content := randomBytes(t, 100_000)
	u := &upstream{size: -1}
	c := &committer{}
	r, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	res := readAll(r, c)
	await(t, "body", u.send(t, 0, content))
	u.body(t, 0).Close()
	got := await(t, "reader", res)
	if got.err != nil || !bytes.Equal(got.data, content) {
		t.Fatalf("reader: %d bytes, %v", len(got.data), got.err)
	}
	waitIdle(t, fs)
	if c.size != int64(len(content)) {
		t.Fatalf("Commit size = %d, want %d", c.size, len(content))
	}
}

func TestFillsIdleUpstreamIsAbandoned(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), IdleTimeout: 50 * time.Millisecond}
	content := randomBytes(t, 10_000)
	u := &upstream{size: int64(len(content))}
	c := &committer{}
	var results []<-chan readResult
	for range 3 {
		r, _, err := fs.Join(context.Background(), "k", download(u, content, c))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		results = append(results, readAll(r, nil))
	}
	// Some bytes, then the upstream stops sending (and never closes).
	await(t, "first bytes", u.send(t, 0, content[:1000]))
	for i, ch := range results {
		got := await(t, "reader of a stalled upstream", ch)
		if got.err == nil {
			t.Fatalf("reader %d of a stalled upstream ended with io.EOF", i)
		}
	}
	if c.count() != 0 {
		t.Fatal("an abandoned download was committed")
	}
	// The body was closed: the upstream connection is not kept.
	if _, err := u.body(t, 0).Write([]byte("late")); err == nil {
		t.Fatal("the stalled upstream body is still open")
	}
	// And the key is free again: a new Join starts a new download.
	r, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if u.opens.Load() != 2 {
		t.Fatalf("Open called %d times after an abandoned download and a new Join, want 2", u.opens.Load())
	}
	res := readAll(r, c)
	await(t, "body", u.send(t, 1, content))
	u.body(t, 1).Close()
	if got := await(t, "reader", res); got.err != nil || !bytes.Equal(got.data, content) {
		t.Fatalf("second download: %d bytes, %v", len(got.data), got.err)
	}
}

func TestFillsSilentUpstreamIsAbandoned(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), IdleTimeout: 50 * time.Millisecond}
	u := &upstream{size: 1000}
	c := &committer{}
	r, _, err := fs.Join(context.Background(), "k", download(u, nil, c))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Headers, then not one byte of the body.
	if got := await(t, "reader of a silent upstream", readAll(r, nil)); got.err == nil {
		t.Fatal("reader of an upstream that sent nothing ended with io.EOF")
	}
	if c.count() != 0 {
		t.Fatal("an abandoned download was committed")
	}
}

// An upstream that accepts the request and never answers it (Open blocks
// until its context ends) must not wedge the key: IdleTimeout ("a download
// that sends nothing for this long") applies before the first byte too.
func TestFillsHangingOpenIsAbandoned(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), IdleTimeout: 50 * time.Millisecond}
	u := &upstream{openFn: func(ctx context.Context) (Source, error) {
		<-ctx.Done()
		return Source{}, ctx.Err()
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, err := fs.Join(ctx, "k", download(u, nil, &committer{}))
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		t.Fatal("fills.go download/start: Open runs with a context detached from every caller and bounded by nothing, " +
			"so an upstream that never answers the request keeps the fill in fs.active for ever and every later Join of the key " +
			"waits on it (only the callers' own deadlines end their wait); bound Open, e.g. context.WithTimeout(ctx, idle) around d.Open in start")
	}
	if err == nil {
		t.Fatal("Join of an upstream that never answers succeeded")
	}
}

func TestFillsReaderClosingEarlyDoesNotStopTheOthers(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 2<<20)
	u := &upstream{size: int64(len(content))}
	c := &committer{}
	quitter, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	stayer, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	defer stayer.Close()
	res := readAll(stayer, c)
	await(t, "first half", u.send(t, 0, content[:len(content)/2]))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(quitter, buf); err != nil {
		t.Fatal(err)
	}
	quitter.Close()
	quitter.Close() // twice is harmless
	await(t, "second half", u.send(t, 0, content[len(content)/2:]))
	u.body(t, 0).Close()
	got := await(t, "remaining reader", res)
	if got.err != nil || !bytes.Equal(got.data, content) {
		t.Fatalf("remaining reader after another closed: %d bytes, %v", len(got.data), got.err)
	}
	waitIdle(t, fs)
	if c.count() != 1 || !bytes.Equal(c.stored, content) {
		t.Fatal("the content was not committed after a reader closed early")
	}
}

func TestFillsCommitsWhenEveryReaderLeft(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 1<<20)
	u := &upstream{size: int64(len(content))}
	c := &committer{entered: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r, _, err := fs.Join(ctx, "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cancel() // the client that started the download went away entirely
	await(t, "body", u.send(t, 0, content))
	u.body(t, 0).Close()
	await(t, "Commit after every reader left", c.entered)
	budgetReturned(t, fs)
	c.mu.Lock()
	defer c.mu.Unlock()
	waitIdle(t, fs)
	if !bytes.Equal(c.stored, content) {
		t.Fatalf("Commit stored %d bytes, want the content", len(c.stored))
	}
	if c.ctxErr != nil {
		t.Fatalf("Commit ran with an ended context (%v) because its first caller left", c.ctxErr)
	}
}

func TestFillsNewJoinAfterTheEndStartsANewDownload(t *testing.T) {
	dir := t.TempDir()
	fs := &Fills{Dir: dir}
	content := randomBytes(t, 500_000)
	u := &upstream{size: int64(len(content))}
	for i := range 3 {
		c := &committer{}
		r, _, err := fs.Join(context.Background(), "k", download(u, content, c))
		if err != nil {
			t.Fatal(err)
		}
		res := readAll(r, c)
		await(t, "body", u.send(t, i, content))
		u.body(t, i).Close()
		if got := await(t, "reader", res); got.err != nil || !bytes.Equal(got.data, content) {
			t.Fatalf("fill %d: %d bytes, %v", i, len(got.data), got.err)
		}
		r.Close()
		waitIdle(t, fs)
		if n := u.opens.Load(); n != int32(i+1) {
			t.Fatalf("after %d sequential fills Open was called %d times", i+1, n)
		}
		spoolEmpty(t, dir)
	}
	budgetReturned(t, fs)
	fs.mu.Lock()
	active := len(fs.active)
	fs.mu.Unlock()
	if active != 0 {
		t.Fatalf("%d fills still active after they all ended", active)
	}
}

// A download has one spool file while it runs and none after; a file a
// crashed process left in the spool directory is removed.
func TestFillsSpoolFilesAreRemovedAndStaleOnesPurged(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "fill-12345")
	os.WriteFile(stale, []byte("left by a crash"), 0o600)
	fs := &Fills{Dir: dir}
	content := randomBytes(t, 100_000)
	u := &upstream{size: int64(len(content))}
	c := &committer{}
	r, _, err := fs.Join(context.Background(), "k", download(u, content, c))
	if err != nil {
		t.Fatal(err)
	}
	await(t, "half", u.send(t, 0, content[:50_000]))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("a stale spool file survived the first download: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d spool files during one download, want 1", len(entries))
	}
	res := readAll(r, c)
	await(t, "rest", u.send(t, 0, content[50_000:]))
	u.body(t, 0).Close()
	if got := await(t, "reader", res); got.err != nil {
		t.Fatal(got.err)
	}
	r.Close()
	spoolEmpty(t, dir)
}

// On a filesystem store the spool file itself becomes the object (one
// write, not two), and readers still holding it read on.
func TestSpoolCommitTakesTheFileIntoAFilesystemStore(t *testing.T) {
	root := t.TempDir()
	store, err := filesystem.New(filepath.Join(root, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	spoolDir := filepath.Join(root, "spool")
	os.Mkdir(spoolDir, 0o700)
	fs := &Fills{Dir: spoolDir}
	content := randomBytes(t, 300_000)
	u := &upstream{size: int64(len(content))}
	var took atomic.Bool
	d := Download{Open: u.open, Hash: sha256.New, Sum: sum256(content), Commit: func(ctx context.Context, s Spool) error {
		err := s.Commit(ctx, store, "blobs/x")
		_, statErr := os.Stat(s.Path)
		took.Store(err == nil && os.IsNotExist(statErr))
		return err
	}}
	first, _, _ := fs.Join(context.Background(), "k", d)
	slow, _, _ := fs.Join(context.Background(), "k", d)
	res := readAll(first, nil)
	await(t, "body", u.send(t, 0, content))
	u.body(t, 0).Close()
	if got := await(t, "reader", res); got.err != nil || !bytes.Equal(got.data, content) {
		t.Fatalf("reader: %d bytes, %v", len(got.data), got.err)
	}
	first.Close()
	waitIdle(t, fs)
	if !took.Load() {
		t.Fatal("the spool file was copied, not taken")
	}
	if got := await(t, "a reader after the file was taken", readAll(slow, nil)); got.err != nil || !bytes.Equal(got.data, content) {
		t.Fatalf("slow reader: %d bytes, %v", len(got.data), got.err)
	}
	slow.Close()
	b, _, err := storage.ReadAll(context.Background(), store, "blobs/x")
	if err != nil || !bytes.Equal(b, content) {
		t.Fatalf("stored object: %d bytes, %v", len(b), err)
	}
	spoolEmpty(t, spoolDir)
}

func TestFillsOpenErrorReachesEveryJoiner(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	const joiners = 20
	refused := errors.New("upstream 503")
	gate := make(chan struct{})
	u := &upstream{openFn: func(context.Context) (Source, error) {
		<-gate
		return Source{}, refused
	}}
	joined := newJoinCounter(joiners)
	errs := make(chan error, joiners)
	for range joiners {
		go func() {
			r, _, err := fs.Join(joined.ctx(context.Background()), "k", download(u, nil, &committer{}))
			if r != nil {
				r.Close()
				err = fmt.Errorf("got a reader (and %v)", err)
			}
			errs <- err
		}()
	}
	joined.wait(t)
	close(gate)
	for range joiners {
		if err := await(t, "Join", errs); !errors.Is(err, refused) {
			t.Fatalf("a joiner got %v, want the Open error", err)
		}
	}
	if n := u.opens.Load(); n != 1 {
		t.Fatalf("Open called %d times for %d joiners, want 1", n, joiners)
	}
	budgetReturned(t, fs)
	// A later Join asks again (an Open error is not remembered here).
	u.openFn = func(context.Context) (Source, error) { return Source{}, refused }
	if _, _, err := fs.Join(context.Background(), "k", download(u, nil, &committer{})); !errors.Is(err, refused) {
		t.Fatalf("later Join = %v", err)
	}
	if n := u.opens.Load(); n != 2 {
		t.Fatalf("Open called %d times after a later Join, want 2", n)
	}
}

func TestFillsJoinerGivingUpWhileOpening(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 1000)
	gate := make(chan struct{})
	var pipe *io.PipeWriter
	u := &upstream{size: 1000}
	u.openFn = func(ctx context.Context) (Source, error) {
		<-gate
		if ctx.Err() != nil {
			return Source{}, fmt.Errorf("Open's context ended with its first caller: %w", ctx.Err())
		}
		pr, pw := io.Pipe()
		pipe = pw
		return Source{Body: pr, Size: 1000}, nil
	}
	c := &committer{}
	ctx, cancel := context.WithCancel(context.Background())
	firstJoined := newJoinCounter(1)
	firstErr := make(chan error, 1)
	go func() {
		_, _, err := fs.Join(firstJoined.ctx(ctx), "k", download(u, content, c))
		firstErr <- err
	}()
	firstJoined.wait(t)
	otherJoined := newJoinCounter(1)
	other := make(chan *Reader, 1)
	go func() {
		r, _, err := fs.Join(otherJoined.ctx(context.Background()), "k", download(u, content, c))
		if err != nil {
			t.Error(err)
		}
		other <- r
	}()
	otherJoined.wait(t)
	cancel()
	if err := await(t, "cancelled joiner", firstErr); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled joiner got %v", err)
	}
	close(gate) // the upstream answers only after the first caller left
	r := await(t, "other joiner", other)
	if r == nil {
		t.FailNow()
	}
	defer r.Close()
	res := readAll(r, c)
	go func() { pipe.Write(content); pipe.Close() }()
	if got := await(t, "reader", res); got.err != nil || !bytes.Equal(got.data, content) {
		t.Fatalf("reader: %d bytes, %v", len(got.data), got.err)
	}
	if u.opens.Load() != 1 {
		t.Fatalf("Open called %d times", u.opens.Load())
	}
}

// Until the content is verified a reader never holds all of it: a client
// that checks no digest must not get what looks like a whole body.
func TestFillsHoldBackTheLastByteUntilVerified(t *testing.T) {
	fs := &Fills{Dir: t.TempDir()}
	content := randomBytes(t, 64<<10)
	wrong := append([]byte(nil), content...)
	wrong[len(wrong)-1] ^= 0xff
	u := &upstream{size: int64(len(content))}
	r, _, err := fs.Join(context.Background(), "k", download(u, content, &committer{}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	await(t, "body", u.send(t, 0, wrong))
	buf := make([]byte, len(content))
	if _, err := io.ReadFull(r, buf[:len(content)-1]); err != nil {
		t.Fatal(err)
	}
	u.body(t, 0).Close()
	got := within(t, "last Read", func() readResult {
		n, err := r.Read(buf[len(content)-1:])
		return readResult{data: buf[len(content)-1 : len(content)-1+n], err: err}
	})
	if len(got.data) != 0 || got.err == nil || got.err == io.EOF {
		t.Fatalf("after a wrong body the last Read gave %d bytes, %v; want none and an error", len(got.data), got.err)
	}
}
