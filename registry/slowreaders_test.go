package registry

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/storage/filesystem"
)

// smallBuffers is the socket buffer size on both ends of the slow-reader
// tests: with the kernel's default (several MiB on loopback) a client that
// never reads would have most of a blob taken by the kernel, and the tests
// would measure buffer sizes instead of the server's rate limit.
const smallBuffers = 32 << 10

// smallBufferListener shrinks the send buffer of every accepted connection.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(smallBuffers)
	}
	return c, err
}

// readersWorld is a registry over filesystem storage (blobs go out as
// files, as in production) on a real TCP server, which reports the moment
// it closes each connection.
type readersWorld struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	closed map[string]chan struct{} // client address -> closed by the server
}

func newReadersWorld(t *testing.T, rate limit.ResponseRate) *readersWorld {
	t.Helper()
	store, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(context.Background(), Config{
		Storage:       store,
		Authenticator: userDB{"alice": "a-secret"},
		Authorizer:    allowAll{},
		Limits:        Limits{ResponseRate: rate},
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &readersWorld{t: t, closed: map[string]chan struct{}{}}
	w.srv = httptest.NewUnstartedServer(reg)
	w.srv.Listener = smallBufferListener{w.srv.Listener}
	w.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			close(w.closedChan(c.RemoteAddr().String()))
		}
	}
	w.srv.Start()
	t.Cleanup(func() { w.srv.Close(); reg.Close() })
	return w
}

func (w *readersWorld) closedChan(addr string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.closed[addr]
	if !ok {
		c = make(chan struct{})
		w.closed[addr] = c
	}
	return c
}

// pushBlob stores size random bytes in repo and returns their digest.
func (w *readersWorld) pushBlob(repo string, size int) (digest.Digest, []byte) {
	w.t.Helper()
	blob := make([]byte, size)
	rand.Read(blob)
	d := digest.FromBytes(blob)
	req, _ := http.NewRequest("POST", w.srv.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(blob))
	req.SetBasicAuth("alice", "a-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		w.t.Fatalf("push blob: %s", resp.Status)
	}
	return d, blob
}

// requestBlob opens a connection with a small receive buffer and sends a GET
// of the blob on it, reading nothing yet.
func (w *readersWorld) requestBlob(repo string, d digest.Digest) *net.TCPConn {
	w.t.Helper()
	c, err := net.Dial("tcp", w.srv.Listener.Addr().String())
	if err != nil {
		w.t.Fatal(err)
	}
	conn := c.(*net.TCPConn)
	w.t.Cleanup(func() { conn.Close() })
	if err := conn.SetReadBuffer(smallBuffers); err != nil {
		w.t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", w.srv.URL+"/v2/"+repo+"/blobs/"+d.String(), nil)
	req.SetBasicAuth("alice", "a-secret")
	if err := req.Write(conn); err != nil {
		w.t.Fatal(err)
	}
	return conn
}

func TestAReaderThatStopsReadingIsDisconnected(t *testing.T) {
	w := newReadersWorld(t, limit.ResponseRate{Idle: time.Second, MinBytesPerSecond: 128 << 10})
	const size = 16 << 20
	d, _ := w.pushBlob("team/app", size)

	// Four clients ask for the blob and never read a byte of it.
	conns := make([]*net.TCPConn, 4)
	for i := range conns {
		conns[i] = w.requestBlob("team/app", d)
	}
	// The server must let go of each of them on its own, within a bound
	// set by the limit (a second without progress, plus the time the
	// kernel buffers take to fill); 30 s only keeps a broken server from
	// hanging the test.
	for i, conn := range conns {
		select {
		case <-w.closedChan(conn.LocalAddr().String()):
		case <-time.After(30 * time.Second):
			t.Fatalf("client %d: the server still holds a connection that has read nothing for 30 s", i)
		}
	}
	// What the client finds when it finally reads: a cut response, not
	// the whole blob.
	for i, conn := range conns {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("client %d: the connection is still open after the server closed it", i)
		}
		if n >= size {
			t.Errorf("client %d received %d bytes: the whole blob went out, the limit did not cut it", i, n)
		}
	}
}

func TestAReaderAboveTheMinimumRateGetsTheWholeBlob(t *testing.T) {
	const minRate = 128 << 10
	w := newReadersWorld(t, limit.ResponseRate{Idle: time.Second, MinBytesPerSecond: minRate})
	const size = 2 << 20
	d, blob := w.pushBlob("team/app", size)
	conn := w.requestBlob("team/app", d)

	// About four times the minimum: 16 KiB every 30 ms, with pauses
	// shorter than Idle.
	r := bufio.NewReader(slowReader{conn, 16 << 10, 30 * time.Millisecond})
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob: %s", resp.Status)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("a client reading at about %d KiB/s (the minimum is %d KiB/s) was cut after %d bytes: %v",
			4*minRate>>10, minRate>>10, len(got), err)
	}
	if !bytes.Equal(got, blob) {
		t.Fatalf("got %d bytes, not the blob of %d", len(got), len(blob))
	}
}

// slowReader reads at most chunk bytes, then waits pause, each time.
type slowReader struct {
	r     io.Reader
	chunk int
	pause time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause)
	if len(p) > s.chunk {
		p = p[:s.chunk]
	}
	n, err := io.ReadFull(s.r, p)
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	if err != nil {
		return n, fmt.Errorf("read after %v pause: %w", s.pause, err)
	}
	return n, nil
}
