package pullthrough

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unireg/unireg/registry/internal/directio"
	"github.com/unireg/unireg/registry/storage"
)

// DefaultSpoolBytes is the default budget of the spool: the bytes of all
// downloads in progress together.
const DefaultSpoolBytes = 8 << 30

// DefaultFillIdleTimeout is how long a download may send nothing before it
// is abandoned.
const DefaultFillIdleTimeout = 30 * time.Second

// DefaultMemoryWindow is the default of Fills.MemoryWindow.
const DefaultMemoryWindow = 256 << 20

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
	// MemoryWindow bounds the memory all downloads together may hold
	// beyond their own windows (windowChunks chunks each): content received
	// and not yet in its spool file. A download borrows from it when its
	// own window is full, so a cold pull is served from memory at the
	// upstream's pace while the spool file catches up, until this is spent
	// (default DefaultMemoryWindow; negative: none).
	MemoryWindow int64
	// OnBytes, if set, is told of every chunk the upstream sends.
	OnBytes func(n int)

	// beforeSpoolWrite, if set, is called before each write of a spool
	// file (tests hold it back to play a slow disk).
	beforeSpoolWrite func()

	windowOnce sync.Once
	// borrowable holds one token per chunk of MemoryWindow; a borrowed
	// chunk's buffer comes from and goes back to borrowedBuffers.
	borrowable      chan struct{}
	borrowedBuffers sync.Pool

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
	refs atomic.Int32 // the spool (its write and the readers after it) and the hasher
	// written: the spool writer is done with it (under fill.mu).
	written bool
	// borrowed: the buffer is one of Fills.MemoryWindow's, not one of the
	// download's own.
	borrowed bool
}

// release returns the chunk's buffer once both have finished with it: to
// the download's own window, or to the shared one it was borrowed from.
func (c *chunk) release(fs *Fills, own chan<- []byte) {
	if c.refs.Add(-1) != 0 {
		return
	}
	if c.borrowed {
		fs.borrowedBuffers.Put(c.b[:0])
		fs.borrowable <- struct{}{}
		return
	}
	own <- c.b[:0]
}

// window returns the tokens of the shared memory window.
func (fs *Fills) window() chan struct{} {
	fs.windowOnce.Do(func() {
		w := fs.MemoryWindow
		if w == 0 {
			w = DefaultMemoryWindow
		}
		n := max(w/chunkSize, 0)
		fs.borrowable = make(chan struct{}, n)
		for range n {
			fs.borrowable <- struct{}{}
		}
		fs.borrowedBuffers.New = func() any { return directio.AlignedBuffer(chunkSize)[:0] }
	})
	return fs.borrowable
}

// nextBuffer returns a buffer for the next chunk of f's download: one of
// its own when one is free, else one borrowed from the shared window, else
// (both spent) the first one freed. When none is free, the oldest written
// chunk is dropped though a reader still needs it (that reader reads it
// from the spool file): a slow reader never holds the download back.
func (fs *Fills) nextBuffer(f *fill) (b []byte, borrowed bool) {
	for {
		select {
		case b = <-f.own:
			return b, false
		default:
		}
		select {
		case <-fs.window():
			return fs.borrowedBuffers.Get().([]byte), true
		default:
		}
		f.mu.Lock()
		fs.retire(f, true)
		f.mu.Unlock()
		select {
		case b = <-f.own:
			return b, false
		case <-fs.window():
			return fs.borrowedBuffers.Get().([]byte), true
		case <-f.wrote:
		}
	}
}

// retire drops from f's memory (f.mu held) the written chunks at the front
// of pending that no reader needs from it any more: every reader is past
// them, or the download has ended (a reader behind reads the spool file).
// force drops the first written chunk whatever the readers need.
func (fs *Fills) retire(f *fill, force bool) {
	low := int64(math.MaxInt64)
	if !f.done {
		for r := range f.readers {
			low = min(low, r.off)
		}
	}
	for len(f.pending) > 0 && f.pending[0].written {
		c := f.pending[0]
		if !force && c.off+int64(len(c.b)) > low {
			return
		}
		force = false
		f.pending[0] = nil
		f.pending = f.pending[1:]
		c.release(fs, f.own)
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
	direct  *os.File      // file opened for direct writes; nil: buffered only
	size    int64         // declared, -1 unknown
	ready   chan struct{} // closed once Open has answered
	openErr error

	mu   sync.Mutex
	grew *sync.Cond
	// received bytes are readable: from pending, the chunks in memory (in
	// order; the last one may still be filling), else, below onDisk, from
	// the spool file. A chunk stays in pending once written while a reader
	// still needs it and the download goes on (retire).
	received int64
	onDisk   int64
	pending  []*chunk
	readers  map[*Reader]struct{}
	// own is the download's window of buffers; wrote is told of every
	// chunk the spool writer finishes.
	own      chan []byte
	wrote    chan struct{}
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
		f = &fill{ready: make(chan struct{}), refs: 1, readers: map[*Reader]struct{}{}, wrote: make(chan struct{}, 1)}
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
	f.mu.Lock()
	f.readers[r] = struct{}{}
	f.mu.Unlock()
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
	fs.retire(f, false)
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
	f.direct = directio.Open(file)
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
	// either would pace the client. At most the download's own window and
	// what it borrows of the shared one wait in memory; beyond that the
	// upstream read waits for the spool.
	h := d.Hash()
	f.own = make(chan []byte, windowChunks)
	for range windowChunks {
		f.own <- directio.AlignedBuffer(chunkSize)[:0]
	}
	// The queues hold every chunk that can be in memory at once, so the
	// reader never waits on them, only for a buffer.
	inMemory := windowChunks + cap(fs.window())
	toDisk := make(chan *chunk, inMemory)
	toHash := make(chan *chunk, inMemory)
	var diskErr error
	var workers sync.WaitGroup
	workers.Add(2)
	go func() {
		defer workers.Done()
		for c := range toDisk {
			if diskErr == nil {
				if err := fs.writeSpool(f, c); err != nil {
					diskErr = err
				}
			}
			f.mu.Lock()
			c.written = true
			if diskErr == nil {
				f.onDisk = c.off + int64(len(c.b))
			}
			fs.retire(f, false)
			f.mu.Unlock()
			select {
			case f.wrote <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		defer workers.Done()
		for c := range toHash {
			h.Write(c.b)
			c.release(fs, f.own)
		}
	}()
	var cur *chunk
	next := func() {
		c := &chunk{off: f.received}
		c.b, c.borrowed = fs.nextBuffer(f)
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

// writeSpool writes chunk c to f's spool file: around the page cache when
// it is whole (every chunk but the last is; its offset and buffer are
// aligned), so the spool costs no page cache copy (the most expensive part
// of a cold pull on this project's machines, docs/performance.md); the last
// one, or all when the filesystem refuses direct writes, buffered.
func (fs *Fills) writeSpool(f *fill, c *chunk) error {
	if fs.beforeSpoolWrite != nil {
		fs.beforeSpoolWrite()
	}
	if f.direct != nil && len(c.b) == chunkSize && directio.Aligned(c.b, c.off) {
		_, err := f.direct.WriteAt(c.b, c.off)
		if err == nil || !directio.Refused(err) {
			return err
		}
		f.direct.Close()
		f.direct = nil
	}
	_, err := f.file.WriteAt(c.b, c.off)
	return err
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
	if f.direct != nil {
		f.direct.Close()
	}
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
	// From memory when a chunk there holds it (under the lock: chunks are
	// retired only under it).
	for _, c := range f.pending {
		if end := c.off + int64(len(c.b)); r.off >= c.off && r.off < end {
			n := copy(p, c.b[r.off-c.off:])
			r.off += int64(n)
			r.fills.retire(f, false)
			f.mu.Unlock()
			return n, nil
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
	f.mu.Lock()
	r.off += int64(n)
	f.mu.Unlock()
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
		r.f.mu.Lock()
		delete(r.f.readers, r)
		r.fills.retire(r.f, false)
		r.f.mu.Unlock()
		r.fills.release(r.f)
	}
	return nil
}
