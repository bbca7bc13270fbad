package pullthrough

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Answer maps an upstream's response to a request for what: a 200 is
// returned as it is; a 404 is ErrNotFound; anything else is a failure that
// names the status (and, for 401 and 403, the credentials), never what the
// upstream wrote. The body of any answer but a 200 is closed.
func (u *Upstream) Answer(resp *http.Response, what string) (*http.Response, error) {
	switch resp.StatusCode {
	case http.StatusOK:
		return resp, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, ErrNotFound
	}
	resp.Body.Close()
	reason := "answered " + strconv.Itoa(resp.StatusCode)
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		reason += " (check its credentials)"
	}
	return nil, Failed(u.Name, reason, fmt.Errorf("%s: %s", what, resp.Status))
}

// Counted returns body, counting what it reads as the upstream's bytes.
func (u *Upstream) Counted(body io.ReadCloser) io.ReadCloser {
	return countedBody{body, u}
}

type countedBody struct {
	io.ReadCloser
	u *Upstream
}

func (b countedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.u.CountBytes(n)
	return n, err
}

// Serve answers a client with a download: 200, header (and the size as
// Content-Length when known), and the content as it arrives. The first part
// is read before the status, so a download that fails before its first
// byte returns its error, with nothing written, for the protocol's own
// error document; started is called once the status is about to go out.
// After that a failure cuts the connection (http.ErrAbortHandler), so the
// client sees a broken body rather than a short one it might take whole;
// the download's failure is counted once, by the download.
func Serve(w http.ResponseWriter, r *Reader, size int64, header map[string]string, upstream string, started func()) error {
	first := make([]byte, 32<<10)
	n, err := r.Read(first)
	if err != nil && err != io.EOF {
		var ue *UpstreamError
		if errors.As(err, &ue) || errors.Is(err, ErrSpoolFull) {
			return err
		}
		return Failed(upstream, "the download failed", err)
	}
	started()
	hd := w.Header()
	for k, v := range header {
		hd.Set(k, v)
	}
	if size >= 0 {
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	w.Write(first[:n])
	if err == nil {
		if _, err := r.WriteTo(w); err != nil {
			panic(http.ErrAbortHandler)
		}
	} else if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}
