package pullthrough

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"testing"
	"time"
)

// heldSpool makes fs's spool writes wait until the returned function is
// called: a disk slower than the upstream.
func heldSpool(fs *Fills) (release func()) {
	gate := make(chan struct{})
	fs.beforeSpoolWrite = func() { <-gate }
	return func() { close(gate) }
}

// waitFor polls cond until it holds, failing the test after a generous
// bound (the behaviour under test is that it comes to hold).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// receivedOf is how many bytes the download of key has taken from its
// upstream so far.
func (fs *Fills) receivedOf(key string) int64 {
	fs.mu.Lock()
	f := fs.active[key]
	fs.mu.Unlock()
	if f == nil {
		return -1
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.received
}

// settle waits until the downloads of keys together have taken want bytes
// from their upstreams, then a little longer, and returns what they took:
// more than want when a window lets them run further than it should.
func settle(t *testing.T, fs *Fills, want int64, keys ...string) int64 {
	t.Helper()
	sum := func() int64 {
		var n int64
		for _, k := range keys {
			n += fs.receivedOf(k)
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for sum() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	return sum()
}

// While the spool file lags, a download reads on from its upstream into
// its own window and then into what the shared window lends it, and its
// readers get all of that from memory; once the disk catches up the rest
// flows, the content is stored whole and the loan is returned.
func TestFillsServeFromMemoryWhileTheSpoolFileLags(t *testing.T) {
	const borrowable = 8
	fs := &Fills{Dir: t.TempDir(), MemoryWindow: borrowable * chunkSize}
	release := heldSpool(fs)
	content := randomBytes(t, (windowChunks+borrowable+5)*chunkSize+123)
	up := &upstream{size: int64(len(content))}
	var c committer
	r, _, err := fs.Join(context.Background(), "k", Download{Open: up.open, Hash: sha256.New, Sum: sum256(content), Commit: c.commitSpool})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sent := up.send(t, 0, content)

	inMemory := int64(windowChunks+borrowable) * chunkSize
	if got := settle(t, fs, inMemory, "k"); got != inMemory {
		t.Fatalf("with the spool file held, the download took %d bytes from the upstream; want its own window and the shared one, %d", got, inMemory)
	}
	// Everything received but the last byte (held until verified) is
	// readable while the spool file has nothing.
	head := make([]byte, inMemory-1)
	if err := within(t, "reading what is in memory", func() error { _, err := io.ReadFull(r, head); return err }); err != nil {
		t.Fatalf("reading the first %d bytes from memory: %v", len(head), err)
	}
	if !bytes.Equal(head, content[:len(head)]) {
		t.Fatal("the bytes read from memory are not the upstream's")
	}

	release()
	if err := within(t, "the upstream's send", func() error { return <-sent }); err != nil {
		t.Fatal(err)
	}
	up.body(t, 0).Close()
	var rest []byte
	if err := within(t, "reading the rest", func() (err error) { rest, err = io.ReadAll(r); return err }); err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes, not the upstream's %d", len(got), len(content))
	}
	waitFor(t, "the commit", func() bool { return c.returned.Load() })
	if !bytes.Equal(c.stored, content) {
		t.Fatalf("stored %d bytes, not the content", len(c.stored))
	}
	waitFor(t, "the loan's return", func() bool { return len(fs.window()) == borrowable })
}

// A download borrows nothing when the shared window is off: its own
// window is all it may hold ahead of the spool file.
func TestFillsWithoutASharedWindowHoldOnlyTheirOwn(t *testing.T) {
	fs := &Fills{Dir: t.TempDir(), MemoryWindow: -1}
	release := heldSpool(fs)
	defer release()
	content := randomBytes(t, (windowChunks+3)*chunkSize)
	up := &upstream{size: int64(len(content))}
	var c committer
	r, _, err := fs.Join(context.Background(), "k", Download{Open: up.open, Hash: sha256.New, Sum: sum256(content), Commit: c.commitSpool})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	up.send(t, 0, content)
	own := int64(windowChunks) * chunkSize
	if got := settle(t, fs, own, "k"); got != own {
		t.Fatalf("with the spool file held and no shared window, the download took %d bytes; want its own window, %d", got, own)
	}
}

// Downloads share one window: together they hold their own windows and
// the shared one, never more, however many run.
func TestFillsShareOneMemoryWindow(t *testing.T) {
	const borrowable = 4
	fs := &Fills{Dir: t.TempDir(), MemoryWindow: borrowable * chunkSize}
	release := heldSpool(fs)
	defer release()
	keys := []string{"a", "b", "c"}
	for _, k := range keys {
		content := randomBytes(t, (windowChunks+borrowable+2)*chunkSize)
		up := &upstream{size: int64(len(content))}
		var c committer
		r, _, err := fs.Join(context.Background(), k, Download{Open: up.open, Hash: sha256.New, Sum: sum256(content), Commit: c.commitSpool})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		up.send(t, 0, content)
	}
	want := int64(len(keys)*windowChunks+borrowable) * chunkSize
	if got := settle(t, fs, want, keys...); got != want {
		t.Fatalf("%d downloads with their spool files held took %d bytes together; want their own windows and one shared window, %d", len(keys), got, want)
	}
}

// Written chunks stay in memory for the readers behind them, but a reader
// that stops reading does not hold the download back: once the windows are
// spent, the oldest written chunk leaves memory (that reader reads it from
// the spool file later), so the download ends and is stored, and the slow
// reader still gets every byte.
func TestFillsAStalledReaderDoesNotHoldTheDownloadBack(t *testing.T) {
	const borrowable = 2
	fs := &Fills{Dir: t.TempDir(), MemoryWindow: borrowable * chunkSize}
	content := randomBytes(t, (windowChunks+borrowable+6)*chunkSize+77)
	up := &upstream{size: int64(len(content))}
	var c committer
	r, _, err := fs.Join(context.Background(), "k", Download{Open: up.open, Hash: sha256.New, Sum: sum256(content), Commit: c.commitSpool})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sent := up.send(t, 0, content)
	if err := within(t, "the upstream's send", func() error { return <-sent }); err != nil {
		t.Fatalf("the download stopped taking the upstream's bytes while a reader read nothing: %v", err)
	}
	up.body(t, 0).Close()
	waitFor(t, "the commit", func() bool { return c.returned.Load() })
	var got []byte
	if err := within(t, "the stalled reader's read", func() (err error) { got, err = io.ReadAll(r); return err }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("the stalled reader read %d bytes, not the content", len(got))
	}
	waitFor(t, "the loan's return", func() bool { return len(fs.window()) == borrowable })
}
