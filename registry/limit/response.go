package limit

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"
)

// ResponseRate bounds how slowly a client may take a response, so that a
// client that stops reading cannot hold a connection, its goroutine and an
// open blob for ever.
//
// A response goes out in parts of Part bytes; the client must take each part
// within Idle, or within the time the part takes at MinBytesPerSecond when
// that is longer. A client that does not is disconnected.
type ResponseRate struct {
	// Idle is the least time a client has to take each part (default 1
	// minute).
	Idle time.Duration
	// MinBytesPerSecond is the slowest rate a client may take a response at
	// (default 1024); negative: none, leaving Idle per part.
	MinBytesPerSecond int64
}

// Bounds of a response part: small parts make more system calls, large
// ones would let a reader below the minimum rate take a part within Idle.
const (
	minResponsePart = 64 << 10
	maxResponsePart = 4 << 20
)

func (r ResponseRate) withDefaults() ResponseRate {
	if r.Idle <= 0 {
		r.Idle = DefaultIdle
	}
	if r.MinBytesPerSecond == 0 {
		r.MinBytesPerSecond = DefaultMinBytesPerSecond
	}
	return r
}

// Part is the size of the parts a response is written in: what a client at
// the minimum rate takes in Idle, within 64 KiB and 4 MiB.
func (r ResponseRate) Part() int64 {
	r = r.withDefaults()
	if r.MinBytesPerSecond < 0 {
		return minResponsePart
	}
	return min(max(int64(r.Idle.Seconds()*float64(r.MinBytesPerSecond)), minResponsePart), maxResponsePart)
}

// partTime is the time a client has to take n bytes.
func (r ResponseRate) partTime(n int64) time.Duration {
	if r.MinBytesPerSecond < 0 {
		return r.Idle
	}
	return max(r.Idle, time.Duration(float64(n)/float64(r.MinBytesPerSecond)*float64(time.Second)))
}

// SlowResponses wraps next so that every response is written under rate:
// each part gets a write deadline on the connection, so a client that stops
// reading makes the write fail and the server closes the connection.
//
// Copies through io.Copy keep the connection's own ReadFrom (sendfile of a
// file, splice of a socket): the wrapper hands each part to it as an
// *io.LimitedReader over the same source, which is what net/http and the
// kernel fast paths unwrap.
//
// Until its first write a response has no deadline (the handler may work a
// long time first, on a large upload). A server with a WriteTimeout already
// bounds every response, more strictly: its deadline is left alone. Servers
// that cannot set deadlines (httptest.ResponseRecorder) write without them.
func SlowResponses(next http.Handler, rate ResponseRate) http.Handler {
	rate = rate.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.WriteTimeout > 0 {
			next.ServeHTTP(w, r)
			return
		}
		rw := &rateWriter{ResponseWriter: w, rc: http.NewResponseController(w), rate: rate, part: rate.Part()}
		defer rw.finish()
		next.ServeHTTP(rw, r)
	})
}

// rateWriter is the ResponseWriter of SlowResponses.
type rateWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	rate     ResponseRate
	part     int64
	failed   bool // a write missed its deadline
	hijacked bool // the connection is the handler's now
}

// before sets the deadline of a write of n bytes.
func (w *rateWriter) before(n int64) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.rate.partTime(n)))
}

func (w *rateWriter) after(err error) {
	if err != nil && isTimeout(err) {
		w.failed = true
	}
}

// finish bounds what the server still writes after the handler returned
// (the buffered tail, the end of a chunked body): at once when the client
// has already missed a deadline, so the connection closes now.
func (w *rateWriter) finish() {
	if w.hijacked {
		return
	}
	deadline := time.Now().Add(w.rate.Idle)
	if w.failed {
		deadline = time.Now()
	}
	_ = w.rc.SetWriteDeadline(deadline)
}

// Write writes p in parts, each under its deadline.
func (w *rateWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(int64(len(p)), w.part)
		w.before(n)
		m, err := w.ResponseWriter.Write(p[:n])
		written += m
		w.after(err)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// ReadFrom copies src in parts, each under its deadline, through the
// underlying writer's ReadFrom when it has one (net/http's, which uses
// sendfile for files).
func (w *rateWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{w}, src)
	}
	// A source already limited (http.ServeContent's io.CopyN) is unwrapped:
	// the kernel fast paths look through one *io.LimitedReader only.
	remaining := int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		src, remaining = lr.R, lr.N
		defer func() { lr.N = remaining }()
	}
	var total int64
	for remaining != 0 {
		n := w.part
		if remaining > 0 {
			n = min(n, remaining)
		}
		w.before(n)
		m, err := rf.ReadFrom(&io.LimitedReader{R: src, N: n})
		total += m
		if remaining > 0 {
			remaining -= m
		}
		w.after(err)
		if err != nil || m < n {
			return total, err // m < n without an error: src ended
		}
	}
	return total, nil
}

// Flush sends what is buffered, under a deadline.
func (w *rateWriter) Flush() {
	_ = w.FlushError()
}

// FlushError is Flush for http.ResponseController.
func (w *rateWriter) FlushError() error {
	w.before(0)
	err := w.rc.Flush()
	w.after(err)
	return err
}

// Hijack hands the connection over, and with it its deadlines.
func (w *rateWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.rc.Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the server's writer, for what the
// wrapper does not do itself (read deadlines, full duplex).
func (w *rateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides ReadFrom, so that io.Copy uses Write.
type writerOnly struct{ io.Writer }
