package pullthrough

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

// DefaultSpoolBytes is the default budget of the spool: the bytes of all
// downloads in progress together.
const DefaultSpoolBytes = 8 << 30

// DefaultFillIdleTimeout is how long a download may send nothing before it
// is abandoned.
const DefaultFillIdleTimeout = 30 * time.Second

// ErrSpoolFull refuses a download the spool has no room for: the client
// may retry once other downloads have finished.
var ErrSpoolFull = errors.New("the cache's download spool is full")

// Fills downloads immutable objects (blobs, tarballs) once however many
// callers ask for them at the same time. The first caller of a key starts
// the download into a file of the spool directory; every caller, the first
// included, gets a Reader that follows the file as it grows, so the first
// bytes reach every client while the rest is still arriving. The content is
// hashed as it arrives; only when the whole of it matches the expected sum
// do readers see its end and is it handed to Commit, which stores it while
// the readers go on. A download that fails or does not verify ends every
// reader with an error, and nothing of it is stored.
type Fills struct {
	// Dir holds the spool files (default os.TempDir()).
	Dir string
	// Budget bounds the bytes spooled at once (default DefaultSpoolBytes):
	// a download whose declared size does not fit is refused with
	// ErrSpoolFull, one of unknown size is ended when it would overflow.
	Budget int64
	// IdleTimeout abandons a download that sends nothing for this long,
	// its headers included (default DefaultFillIdleTimeout).
	IdleTimeout time.Duration
	// OnBytes, if set, is told of every chunk the upstream sends.
	OnBytes func(n int)

	mu        sync.Mutex
	used      int64
	active    map[string]*fill
	purgeOnce sync.Once
}

// spoolPattern names the spool files (os.CreateTemp).
const spoolPattern = "fill-*"

// purgeStale removes the spool files a crashed process left: the spool
// directory is this process's alone.
func (fs *Fills) purgeStale() {
	dir := fs.Dir
	if dir == "" {
		return // os.TempDir() is shared with others
	}
	old, _ := filepath.Glob(filepath.Join(dir, spoolPattern))
	for _, p := range old {
		os.Remove(p)
	}
}

// A Source is an upstream body to download.
type Source struct {
	Body io.ReadCloser
	// Size is the length the upstream declared, -1 if it did not.
	Size int64
}

// A Download says how to get and keep one object.
type Download struct {
	// Open starts the upstream request (called once, by the first caller,
	// with a context detached from every caller).
	Open func(ctx context.Context) (Source, error)
	// Hash and Sum are what the content must hash to.
	Hash func() hash.Hash
	Sum  []byte
	// Commit stores the verified content after the readers have seen its
	// end: it reads the spool, or takes its file (Spool.Path) into storage
	// by renaming it; a failure is logged (Upstream's logger) and the next
	// caller downloads again.
	Commit func(ctx context.Context, spool Spool) error
	// Upstream, if set, is told of an upstream that does not answer Open
	// in time, and named in the error.
	Upstream *Upstream
	// Admit, if set, is asked before a download starts (never when the
	// caller joins one under way): its error refuses the Join, and its
	// release is called when the download ends. It bounds the downloads
	// one identity starts (Shared.Acquire).
	Admit func() (release func(), err error)
}

// The memory window of a download: chunks of chunkSize, at most
// windowChunks of them not yet in the spool file.
const (
	chunkSize    = 1 << 20
	windowChunks = 16
)

// A chunk is a part of a download in memory until the spool file has it.
type chunk struct {
	off  int64
	b    []byte
	refs atomic.Int32 // the spool writer and the hasher
}

// release returns the chunk's buffer once both have finished with it.
func (c *chunk) release(free chan<- []byte) {
	if c.refs.Add(-1) == 0 {
		free <- c.b[:0]
	}
}

// A Spool is a verified download handed to Commit.
type Spool struct {
	// Reader reads the content from its start.
	io.Reader
	// Path is the spool file, which Commit may rename away (readers keep
	// their open descriptor); whatever is left there is removed after.
	Path string
	Size int64
}

// Commit stores a verified download at key: by taking its spool file when
// the store can (storage.FileTaker, the same filesystem), else by copying it.
func (s Spool) Commit(ctx context.Context, store storage.Driver, key string) error {
	if ft, ok := store.(storage.FileTaker); ok {
		taken, err := ft.TakeFile(ctx, key, s.Path)
		if err != nil || taken {
			return err
		}
	}
	_, err := store.Put(ctx, key, s.Reader, storage.Condition{})
	return err
}

type fill struct {
	file    *os.File
	size    int64         // declared, -1 unknown
	ready   chan struct{} // closed once Open has answered
	openErr error

	mu   sync.Mutex
	grew *sync.Cond
	// received bytes are readable: those below onDisk from the spool
	// file, the others from pending, the chunks not yet written to it (in
	// order; the last one may still be filling).
	received int64
	onDisk   int64
	pending  []*chunk
	done     bool
	err      error
	refs     int // readers plus the downloader
	reserved int64
}

// Join returns a reader of the object key, downloading it with d unless a
// download of key is already under way, and the object's size (-1 when the
// upstream did not declare it). The caller must Close the reader.
func (fs *Fills) Join(ctx context.Context, key string, d Download) (*Reader, int64, error) {
	fs.mu.Lock()
	if fs.active == nil {
		fs.active = map[string]*fill{}
	}
	f, joining := fs.active[key]
	admitted := func() {}
	if !joining {
		if d.Admit != nil {
			release, err := d.Admit()
			if err != nil {
				fs.mu.Unlock()
				return nil, 0, err
			}
			admitted = release
		}
		f = &fill{ready: make(chan struct{}), refs: 1}
		f.grew = sync.NewCond(&f.mu)
		fs.active[key] = f
	}
	f.mu.Lock()
	f.refs++
	f.mu.Unlock()
	fs.mu.Unlock()

	if !joining {
		go func() {
			defer admitted()
			fs.download(context.WithoutCancel(ctx), key, f, d)
		}()
	}
	select {
	case <-f.ready:
	case <-ctx.Done():
		fs.release(f)
		return nil, 0, ctx.Err()
	}
	if f.openErr != nil {
		fs.release(f)
		return nil, 0, f.openErr
	}
	r := &Reader{fills: fs, f: f, ctx: ctx}
	// A client that goes away while its Read waits for more is woken.
	r.stopWake = context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.grew.Broadcast()
		f.mu.Unlock()
	})
	return r, f.size, nil
}

func (fs *Fills) budget() int64 {
	if fs.Budget > 0 {
		return fs.Budget
	}
	return DefaultSpoolBytes
}

// reserve books n more bytes of the spool for f.
func (fs *Fills) reserve(f *fill, n int64) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.used+n > fs.budget() {
		return false
	}
	fs.used += n
	f.reserved += n
	return true
}

// download runs the one upstream request of a fill and writes the spool.
func (fs *Fills) download(ctx context.Context, key string, f *fill, d Download) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := fs.start(ctx, f, d)
	f.openErr = err
	close(f.ready)
	if err == nil {
		err = fs.copyAndVerify(ctx, cancel, f, body, d)
		if err != nil && d.Upstream != nil && !errors.Is(err, ErrSpoolFull) {
			// Counted once for the download, however many read it.
			d.Upstream.Failure("download", err)
		}
	}
	// Readers see the end as soon as the content is verified: the copy
	// into storage need not hold them up. The fill stays joinable (its
	// spool readable) until the content is stored.
	f.mu.Lock()
	f.done, f.err = true, err
	f.grew.Broadcast()
	f.mu.Unlock()
	if err == nil {
		spool := Spool{Reader: io.NewSectionReader(f.file, 0, f.received), Path: f.file.Name(), Size: f.received}
		if cerr := d.Commit(ctx, spool); cerr != nil && d.Upstream != nil {
			// The clients have their verified bytes; the next pull downloads again.
			d.Upstream.Log.Error("cache: storing a download failed", "protocol", d.Upstream.Protocol, "upstream", d.Upstream.Name, "key", key, "error", cerr)
		}
	}
	// No new reader may join a finished download: the next caller finds
	// the object stored (or starts again after a failure).
	fs.mu.Lock()
	delete(fs.active, key)
	fs.mu.Unlock()
	fs.release(f)
}

func (fs *Fills) idle() time.Duration {
	if fs.IdleTimeout > 0 {
		return fs.IdleTimeout
	}
	return DefaultFillIdleTimeout
}

// start opens the upstream body and the spool file of f. An upstream that
// does not answer within the idle timeout is given up (ctx ends with the
// download, so the body stays readable after Open returns).
func (fs *Fills) start(ctx context.Context, f *fill, d Download) (io.ReadCloser, error) {
	octx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(fs.idle(), cancel)
	src, err := d.Open(octx)
	if !timer.Stop() {
		if err == nil {
			src.Body.Close()
		}
		e := &UpstreamError{Reason: "no answer within " + fs.idle().String(), Err: context.DeadlineExceeded}
		if d.Upstream != nil {
			e.Upstream = d.Upstream.Name
			d.Upstream.Failure("download", e)
		}
		return nil, e
	}
	if err != nil {
		return nil, err
	}
	if src.Size >= 0 && !fs.reserve(f, src.Size) {
		src.Body.Close()
		return nil, fmt.Errorf("%w: %d bytes do not fit its budget of %d", ErrSpoolFull, src.Size, fs.budget())
	}
	fs.purgeOnce.Do(fs.purgeStale)
	file, err := os.CreateTemp(fs.Dir, spoolPattern)
	if err != nil {
		src.Body.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	f.file, f.size = file, src.Size
	return src.Body, nil
}

func (fs *Fills) copyAndVerify(ctx context.Context, cancel context.CancelFunc, f *fill, body io.ReadCloser, d Download) error {
	defer body.Close()
	idle := fs.idle()
	// A body that stops sending is closed, which ends the blocked Read.
	watchdog := time.AfterFunc(idle, func() { cancel(); body.Close() })
	defer watchdog.Stop()

	// Three goroutines: this one reads the upstream into memory chunks,
	// which readers take at once; one writes the chunks to the spool file
	// and one hashes them, both in order. A core hashes about 1.5 GB/s and
	// this machine's page cache takes writes at about 500 MB/s: inline,
	// either would pace the client. At most window bytes wait in memory;
	// beyond that the upstream read waits for the spool.
	h := d.Hash()
	free := make(chan []byte, windowChunks)
	for range windowChunks {
		free <- make([]byte, 0, chunkSize)
	}
	toDisk := make(chan *chunk, windowChunks)
	toHash := make(chan *chunk, windowChunks)
	var diskErr error
	var workers sync.WaitGroup
	workers.Add(2)
	go func() {
		defer workers.Done()
		for c := range toDisk {
			if diskErr == nil {
				if _, err := f.file.WriteAt(c.b, c.off); err != nil {
					diskErr = err
				}
			}
			f.mu.Lock()
			f.pending = f.pending[1:]
			if diskErr == nil {
				f.onDisk = c.off + int64(len(c.b))
			}
			f.mu.Unlock()
			c.release(free)
		}
	}()
	go func() {
		defer workers.Done()
		for c := range toHash {
			h.Write(c.b)
			c.release(free)
		}
	}()
	var cur *chunk
	next := func() {
		c := &chunk{off: f.received, b: <-free}
		c.refs.Store(2)
		f.mu.Lock()
		f.pending = append(f.pending, c)
		f.mu.Unlock()
		cur = c
	}
	dispatch := func() { toDisk <- cur; toHash <- cur; cur = nil }
	stop := sync.OnceFunc(func() {
		if cur != nil && len(cur.b) > 0 {
			dispatch()
		}
		close(toDisk)
		close(toHash)
		workers.Wait()
	})
	defer stop()
	for {
		if cur == nil || len(cur.b) == cap(cur.b) {
			if cur != nil {
				dispatch()
			}
			next()
		}
		n, rerr := body.Read(cur.b[len(cur.b):cap(cur.b)])
		if n > 0 {
			watchdog.Reset(idle)
			if fs.OnBytes != nil {
				fs.OnBytes(n)
			}
			if f.size < 0 && !fs.reserve(f, int64(n)) {
				return fmt.Errorf("%w while downloading an object of undeclared size", ErrSpoolFull)
			}
			if f.size >= 0 && f.received+int64(n) > f.size {
				return fmt.Errorf("upstream sent more than the %d bytes it declared", f.size)
			}
			f.mu.Lock()
			cur.b = cur.b[:len(cur.b)+n]
			f.received += int64(n)
			f.grew.Broadcast()
			f.mu.Unlock()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("upstream sent nothing for %s", idle)
			}
			return fmt.Errorf("reading the upstream body: %w", rerr)
		}
	}
	stop()
	if diskErr != nil {
		return fmt.Errorf("spool: %w", diskErr)
	}
	if f.size >= 0 && f.received != f.size {
		return fmt.Errorf("upstream sent %d of the %d bytes it declared", f.received, f.size)
	}
	if !bytes.Equal(h.Sum(nil), d.Sum) {
		return errors.New("upstream content does not match its digest")
	}
	watchdog.Stop()
	return nil
}

// release drops one reference to f; the last one closes the spool file
// and returns its bytes to the budget.
func (fs *Fills) release(f *fill) {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0
	f.mu.Unlock()
	if last {
		fs.cleanup(f)
	}
}

// cleanup closes f's spool file and returns its bytes to the budget.
func (fs *Fills) cleanup(f *fill) {
	if f.file != nil {
		f.file.Close()
		os.Remove(f.file.Name()) // unless Commit took it
	}
	fs.mu.Lock()
	fs.used -= f.reserved
	fs.mu.Unlock()
}

// A Reader follows one download as it grows. Read blocks until more
// content arrives, and holds back the last byte received until the whole
// content is verified; it returns io.EOF only then, and the download's
// error if it failed.
type Reader struct {
	fills    *Fills
	f        *fill
	ctx      context.Context
	stopWake func() bool
	off      int64
	closed   bool
}

func (r *Reader) Read(p []byte) (int, error) {
	f := r.f
	f.mu.Lock()
	for r.off >= f.received && !f.done {
		if err := r.ctx.Err(); err != nil {
			f.mu.Unlock()
			return 0, err
		}
		f.grew.Wait()
	}
	avail, done, err := f.received-r.off, f.done, f.err
	if !done && avail > 0 && r.off+avail == f.received {
		// The last byte so far waits for the verdict: until the whole
		// content is verified a client never holds what looks like all of
		// it (a client that checks no digest would take it for whole).
		avail--
		for avail == 0 && !f.done && f.received == r.off+1 {
			if err := r.ctx.Err(); err != nil {
				f.mu.Unlock()
				return 0, err
			}
			f.grew.Wait()
		}
		avail, done, err = f.received-r.off, f.done, f.err
		if !done {
			avail--
		}
	}
	f.mu.Unlock()
	if avail <= 0 {
		if err != nil {
			return 0, err
		}
		if done {
			return 0, io.EOF
		}
	}
	if err != nil {
		// Never hand out the rest of a download that failed.
		return 0, err
	}
	if int64(len(p)) > avail {
		p = p[:avail]
	}
	f.mu.Lock()
	if r.off >= f.onDisk {
		// Not in the file yet: from the chunk that holds it (under the
		// lock: the spool writer retires a chunk only under it).
		for _, c := range f.pending {
			if end := c.off + int64(len(c.b)); r.off >= c.off && r.off < end {
				n := copy(p, c.b[r.off-c.off:])
				f.mu.Unlock()
				r.off += int64(n)
				return n, nil
			}
		}
	}
	if r.off >= f.onDisk {
		// Only when the spool writer failed (the download fails with it).
		f.mu.Unlock()
		return 0, errors.New("spool: the download's content is lost")
	}
	if r.off+int64(len(p)) > f.onDisk {
		p = p[:f.onDisk-r.off]
	}
	f.mu.Unlock()
	n, rerr := f.file.ReadAt(p, r.off)
	r.off += int64(n)
	if rerr == io.EOF && n > 0 {
		rerr = nil
	}
	return n, rerr
}

// WriteTo copies the download to w in large parts as it arrives, and
// flushes w (an http.Flusher) only when it has caught up with the download,
// so a client gets each part at once without a flush per small write.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, 1<<20)
	flusher, _ := w.(interface{ Flush() })
	var total int64
	for {
		if flusher != nil && !r.more() {
			flusher.Flush()
		}
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			if flusher != nil {
				flusher.Flush()
			}
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// more reports whether a Read would return at once with content.
func (r *Reader) more() bool {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received-r.off > 1 || (f.done && f.received > r.off)
}

// Close releases the reader; the download goes on for the others (and to
// the store) whether or not anyone still reads it.
func (r *Reader) Close() error {
	if !r.closed {
		r.closed = true
		r.stopWake()
		r.fills.release(r.f)
	}
	return nil
}
