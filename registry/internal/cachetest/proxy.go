package cachetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Proxy is a reverse proxy a test puts in front of an upstream so that it
// sees what the cache under test asks the upstream for, how many body bytes
// the upstream's answers have delivered, and so that it can make the
// upstream misbehave at any moment:
//
//   - Pass (the default): every request is forwarded, every answer copied.
//   - Hang: new requests are accepted and never answered, until the mode
//     changes (they then go on under the new mode) or the test ends (their
//     connection is closed).
//   - RefuseStatus(code): new requests are answered code (503, 429, ...)
//     with an OCI error body, without reaching the upstream.
//   - Drop: new requests have their connection closed without an answer,
//     and answers being copied are cut off after their current chunk (a
//     truncated body).
//
// Independently of the mode, Pace holds back the bodies of some answers
// until the test allows them bytes (Allow), so a test can prove what a
// client received while the upstream had sent only part of a blob, with no
// timer deciding the outcome.
//
// The proxy keeps the client's Host header, so an upstream that builds URLs
// from it (unireg's token realm and tarball URLs, Distribution's upload
// Locations) names the proxy; absolute URLs naming the upstream in Location
// and WWW-Authenticate are rewritten to the proxy too. Bodies are never
// rewritten. Every method is safe for concurrent use.
type Proxy struct {
	target    *url.URL
	srv       *httptest.Server
	transport *http.Transport
	done      chan struct{} // closed when the test ends

	mu           sync.Mutex
	mode         proxyMode
	refuseStatus int
	pace         *regexp.Regexp // nil: bodies flow freely
	allowance    int64
	requests     []Request
	hanging      int
	sent         int64
	changed      chan struct{} // closed, and replaced, on every change of the above
}

type proxyMode int

const (
	modePass proxyMode = iota
	modeHang
	modeRefuse
	modeDrop
)

// Request is one request the proxy received, in whatever mode.
type Request struct {
	Method   string
	Path     string // the URL path, unescaped
	RawQuery string
	Header   http.Header
}

// copyChunk is the most the proxy copies from an upstream body before it
// writes and flushes to the client.
const copyChunk = 32 << 10

// NewProxy starts a proxy in front of target, an upstream's base URL
// (scheme://host:port, no path: the proxy forwards the paths it is asked
// for unchanged), and closes it when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		t.Fatalf("NewProxy: target %q is not a scheme://host:port base URL", target)
	}
	p := &Proxy{
		target: u,
		// Compression off: the bytes counted are the bytes the upstream sent.
		transport: &http.Transport{DisableCompression: true, Proxy: nil},
		done:      make(chan struct{}),
		changed:   make(chan struct{}),
	}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(func() {
		close(p.done)
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.transport.CloseIdleConnections()
	})
	return p
}

// URL is the proxy's base URL, http://127.0.0.1:PORT: configure it as the
// upstream of the cache under test.
func (p *Proxy) URL() string { return p.srv.URL }

// Pass forwards every new request and stops pacing: held-back bodies flow
// freely again, and hung requests are forwarded.
func (p *Proxy) Pass() {
	p.update(func() { p.mode, p.pace, p.allowance = modePass, nil, 0 })
}

// Hang makes new requests wait without an answer (see Proxy).
func (p *Proxy) Hang() { p.update(func() { p.mode = modeHang }) }

// RefuseStatus answers new requests with code, without asking the upstream.
func (p *Proxy) RefuseStatus(code int) {
	p.update(func() { p.mode, p.refuseStatus = modeRefuse, code })
}

// Drop closes the connection of new requests without an answer and cuts
// off the answers being copied (see Proxy). Note that Go's HTTP client
// retries an idempotent request once when a reused connection closes before
// any answer, so a dropped GET can be counted twice.
func (p *Proxy) Drop() { p.update(func() { p.mode = modeDrop }) }

// Pace holds back the response bodies of requests whose path matches the
// regular expression pathPattern ("" matches every path): from now on their
// bytes go out only as far as Allow has allowed them, shared by all of them
// (headers are not held back). Pass ends pacing.
func (p *Proxy) Pace(pathPattern string) {
	re := regexp.MustCompile(pathPattern)
	p.update(func() { p.pace = re })
}

// Allow lets n more body bytes out to paced answers.
func (p *Proxy) Allow(n int64) { p.update(func() { p.allowance += n }) }

// BytesSent is the number of response body bytes the proxy has written
// (and flushed) to its clients so far, paced or not; answers the proxy made
// up itself (RefuseStatus) are not counted.
func (p *Proxy) BytesSent() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

// Requests returns the requests received so far, in the order they came.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

// Count is the number of requests received so far with method ("" for any)
// whose path matches the regular expression pathPattern, for instance
// Count("GET", "/blobs/sha256:") for the blob GETs.
func (p *Proxy) Count(method, pathPattern string) int {
	re := regexp.MustCompile(pathPattern)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.countLocked(method, re)
}

func (p *Proxy) countLocked(method string, re *regexp.Regexp) int {
	n := 0
	for _, r := range p.requests {
		if (method == "" || r.Method == method) && re.MatchString(r.Path) {
			n++
		}
	}
	return n
}

// Hanging is the number of requests Hang is holding right now: they have
// arrived and nothing of an answer has been sent.
func (p *Proxy) Hanging() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hanging
}

// WaitHanging waits until Hanging is at least n, ctx ends, or the test ends.
// A test calls it to know that its request is being held (rather than not
// sent yet) before it asserts what the cache under test does meanwhile.
func (p *Proxy) WaitHanging(ctx context.Context, n int) error {
	return p.wait(ctx, func() bool { return p.hanging >= n }, func() string {
		return fmt.Sprintf("%d of %d requests hanging", p.hanging, n)
	})
}

// Reset forgets the requests received and the bytes sent (a test calls it
// after warming the cache, to count what a second pull costs). It does not
// change the mode, the pacing or the allowance.
func (p *Proxy) Reset() {
	p.update(func() { p.requests, p.sent = nil, 0 })
}

// WaitBytesSent waits until BytesSent is at least n, ctx ends, or the test
// ends.
func (p *Proxy) WaitBytesSent(ctx context.Context, n int64) error {
	return p.wait(ctx, func() bool { return p.sent >= n }, func() string {
		return fmt.Sprintf("%d of %d bytes sent", p.sent, n)
	})
}

// WaitCount waits until Count(method, pathPattern) is at least n (the
// requests have arrived, not necessarily been answered), ctx ends, or the
// test ends.
func (p *Proxy) WaitCount(ctx context.Context, method, pathPattern string, n int) error {
	re := regexp.MustCompile(pathPattern)
	return p.wait(ctx, func() bool { return p.countLocked(method, re) >= n }, func() string {
		return fmt.Sprintf("%d of %d %s %s requests", p.countLocked(method, re), n, method, pathPattern)
	})
}

func (p *Proxy) wait(ctx context.Context, ready func() bool, progress func() string) error {
	for {
		p.mu.Lock()
		ok, changed := ready(), p.changed
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			p.mu.Lock()
			defer p.mu.Unlock()
			return fmt.Errorf("%w: %s", ctx.Err(), progress())
		case <-p.done:
			return errors.New("the test ended")
		}
	}
}

// update changes the proxy's state under its lock and wakes everything
// waiting for a change.
func (p *Proxy) update(change func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	change()
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	p.update(func() {
		p.requests = append(p.requests, Request{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(),
		})
	})
	for {
		p.mu.Lock()
		mode, status := p.mode, p.refuseStatus
		p.mu.Unlock()
		switch mode {
		case modePass:
			p.forward(w, r)
			return
		case modeRefuse:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"refused by the test's proxy (%d)"}]}`+"\n", status)
			return
		case modeDrop:
			panic(http.ErrAbortHandler) // closes the connection, unanswered
		case modeHang:
			p.hang(r.Context())
		}
	}
}

// hang holds a request until the mode is no longer Hang (the caller then
// looks at the new mode), the client gives up, or the test ends.
func (p *Proxy) hang(ctx context.Context) {
	p.update(func() { p.hanging++ })
	defer p.update(func() { p.hanging-- })
	for {
		p.mu.Lock()
		mode, changed := p.mode, p.changed
		p.mu.Unlock()
		if mode != modeHang {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			panic(http.ErrAbortHandler)
		case <-p.done:
			panic(http.ErrAbortHandler)
		}
	}
}

// hopHeaders are the hop-by-hop headers a proxy does not forward.
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.Host = r.Host // the upstream builds its URLs for the proxy
	if r.ContentLength == 0 {
		out.Body = nil
	}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, "cachetest proxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for _, h := range []string{"Location", "Www-Authenticate"} {
		for i, v := range resp.Header[h] {
			resp.Header[h][i] = strings.ReplaceAll(v, p.target.Scheme+"://"+p.target.Host, p.srv.URL)
		}
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	// The headers go out now, even when the body is held back.
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	p.copyBody(ctx, w, r.URL.Path, resp.Body)
}

// copyBody copies an upstream body to the client chunk by chunk, each
// chunk flushed and counted once written, and each held back while the
// answer is paced and no allowance is left.
func (p *Proxy) copyBody(ctx context.Context, w http.ResponseWriter, path string, body io.Reader) {
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, copyChunk)
	for {
		n, rerr := body.Read(buf)
		for chunk := buf[:n]; len(chunk) > 0; {
			grant, err := p.grant(ctx, path, len(chunk))
			if err != nil {
				return
			}
			written, werr := w.Write(chunk[:grant])
			if flusher != nil {
				flusher.Flush()
			}
			p.update(func() { p.sent += int64(written) })
			if werr != nil {
				return
			}
			chunk = chunk[grant:]
		}
		if rerr != nil {
			// An upstream that breaks off mid-body must look broken to the
			// client too, not like a complete short body.
			if rerr != io.EOF {
				panic(http.ErrAbortHandler)
			}
			return
		}
	}
}

// grant waits until up to want bytes of the answer for path may go out and
// returns how many; under Drop it cuts the answer off.
func (p *Proxy) grant(ctx context.Context, path string, want int) (int, error) {
	for {
		p.mu.Lock()
		mode, pace, allowance, changed := p.mode, p.pace, p.allowance, p.changed
		if mode != modeDrop && (pace == nil || !pace.MatchString(path)) {
			p.mu.Unlock()
			return want, nil
		}
		if mode != modeDrop && allowance > 0 {
			grant := int(min(allowance, int64(want)))
			p.allowance -= int64(grant)
			p.mu.Unlock()
			return grant, nil
		}
		p.mu.Unlock()
		if mode == modeDrop {
			panic(http.ErrAbortHandler)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-p.done:
			panic(http.ErrAbortHandler)
		}
	}
}
