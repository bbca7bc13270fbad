package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// rawGetter sends one fixed GET over a kept-alive HTTP/1.1 connection and
// reads the response with as little work as possible, the way wrk does: on
// a 2-core machine the load generator shares the CPU with the server, and
// net/http's client would spend as much per request as the server does.
// Used for the small-GET scenarios (manifests, tags, packuments, tarballs);
// blobs go through net/http.
type rawGetter struct {
	addr string
	req  []byte
	conn net.Conn
	br   *bufio.Reader
}

// newRawGetter prepares GET rawURL with the given headers.
func newRawGetter(rawURL string, header map[string]string) (*rawGetter, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("the fast GET client speaks plain HTTP only, not %s", u.Scheme)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: unireg-loadgen\r\n", u.RequestURI(), u.Host)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	addr := u.Host
	if u.Port() == "" {
		addr += ":80"
	}
	return &rawGetter{addr: addr, req: b.Bytes()}, nil
}

// get sends the request and reads the whole response; the body is returned
// only when keep is set. A broken kept-alive connection is redialled once.
func (g *rawGetter) get(ctx context.Context, keep bool) (status int, n int64, body []byte, encoding string, err error) {
	for attempt := 0; ; attempt++ {
		status, n, body, encoding, err = g.roundTrip(keep)
		if err == nil || attempt == 1 {
			return
		}
		g.close()
	}
}

func (g *rawGetter) roundTrip(keep bool) (int, int64, []byte, string, error) {
	if g.conn == nil {
		c, err := net.DialTimeout("tcp", g.addr, 10*time.Second)
		if err != nil {
			return 0, 0, nil, "", err
		}
		g.conn, g.br = c, bufio.NewReaderSize(c, 64<<10)
	}
	g.conn.SetDeadline(time.Now().Add(30 * time.Second)) // a stalled server fails the request
	if _, err := g.conn.Write(g.req); err != nil {
		return 0, 0, nil, "", err
	}
	line, err := g.br.ReadSlice('\n')
	if err != nil {
		return 0, 0, nil, "", err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, 0, nil, "", fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, nil, "", fmt.Errorf("bad status line %q", line)
	}
	length, chunked, closing, encoding := int64(-1), false, false, ""
	for {
		h, err := g.br.ReadSlice('\n')
		if err != nil {
			return 0, 0, nil, "", err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, _ := strings.Cut(string(h), ":")
		v = strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "content-length":
			length, _ = strconv.ParseInt(v, 10, 64)
		case "transfer-encoding":
			chunked = strings.EqualFold(v, "chunked")
		case "connection":
			closing = strings.EqualFold(v, "close")
		case "content-encoding":
			encoding = v
		}
	}
	var sink io.Writer = io.Discard
	var buf *bytes.Buffer
	if keep {
		buf = &bytes.Buffer{}
		sink = buf
	}
	var n int64
	switch {
	case chunked:
		for {
			sizeLine, err := g.br.ReadSlice('\n')
			if err != nil {
				return 0, 0, nil, "", err
			}
			size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(string(sizeLine), ";", 2)[0]), 16, 64)
			if err != nil {
				return 0, 0, nil, "", fmt.Errorf("bad chunk size %q", sizeLine)
			}
			if size == 0 {
				if _, err := g.br.ReadSlice('\n'); err != nil { // the final CRLF (no trailers)
					return 0, 0, nil, "", err
				}
				break
			}
			m, err := io.CopyN(sink, g.br, size)
			n += m
			if err != nil {
				return 0, 0, nil, "", err
			}
			if _, err := g.br.Discard(2); err != nil {
				return 0, 0, nil, "", err
			}
		}
	case length >= 0:
		var err error
		if keep {
			n, err = io.CopyN(sink, g.br, length)
		} else {
			var d int
			d, err = g.br.Discard(int(length))
			n = int64(d)
		}
		if err != nil {
			return 0, 0, nil, "", err
		}
	default:
		return 0, 0, nil, "", fmt.Errorf("response without length")
	}
	if closing {
		g.close()
	}
	var body []byte
	if buf != nil {
		body = buf.Bytes()
	}
	return status, n, body, encoding, nil
}

func (g *rawGetter) close() {
	if g.conn != nil {
		g.conn.Close()
		g.conn, g.br = nil, nil
	}
}

// rawGetOp is a scenario operation: each worker GETs rawURL over its own
// connection with the headers, and checks its first body with check.
func rawGetOp(workers int, rawURL string, header map[string]string, check func(body []byte, encoding string) error) (opFunc, error) {
	getters := make([]*rawGetter, workers)
	for i := range getters {
		g, err := newRawGetter(rawURL, header)
		if err != nil {
			return nil, err
		}
		getters[i] = g
	}
	checked := make([]bool, workers)
	return func(ctx context.Context, worker int) (int64, time.Duration, error) {
		g := getters[worker]
		keep := check != nil && !checked[worker]
		start := time.Now()
		status, n, body, encoding, err := g.get(ctx, keep)
		elapsed := time.Since(start)
		if err != nil {
			return 0, 0, err
		}
		if status != 200 {
			return 0, 0, fmt.Errorf("GET %s: status %d", rawURL, status)
		}
		if keep {
			checked[worker] = true
			if err := check(body, encoding); err != nil {
				return 0, 0, err
			}
		}
		return n, elapsed, nil
	}, nil
}
