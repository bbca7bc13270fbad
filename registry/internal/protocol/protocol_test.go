package protocol

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/requestlog"
	"github.com/unireg/unireg/registry/storage"
)

func TestETagMatchesComparesWeakly(t *testing.T) {
	const etag = `"sha256:abc"`
	cases := []struct {
		header string
		want   bool
	}{
		{`"sha256:abc"`, true},
		{`W/"sha256:abc"`, true},
		{`"x", "sha256:abc"`, true},
		{`*`, true},
		{`"sha256:abd"`, false},
		{``, false},
	}
	for _, c := range cases {
		if got := ETagMatches(c.header, etag); got != c.want {
			t.Errorf("ETagMatches(%q) = %v, want %v", c.header, got, c.want)
		}
	}
}

func TestClassifyHidesInternalCausesAndLetsClientsRetry(t *testing.T) {
	unavailable := fmt.Errorf("put: %w", storage.ErrUnavailable)
	cases := []struct {
		err        error
		status     int
		retryAfter bool
		logged     bool
	}{
		{fmt.Errorf("%w: bob", limit.ErrTooManyUploads), http.StatusTooManyRequests, true, false},
		{fmt.Errorf("%w: 10 B/s", limit.ErrBodyTooSlow), http.StatusRequestTimeout, false, true},
		{unavailable, http.StatusServiceUnavailable, true, true},
		{errors.New("disk on fire"), http.StatusInternalServerError, false, true},
		// A file's errno is not the store being away: no retry for a
		// full disk or a permission (syscall.Errno has net.Error's methods).
		{&fs.PathError{Op: "write", Path: "/data/blobs/x", Err: syscall.ENOSPC}, http.StatusInsufficientStorage, false, true},
		{fmt.Errorf("put: %w", storage.ErrFull), http.StatusInsufficientStorage, false, true},
		{&fs.PathError{Op: "open", Path: "/data/blobs/x", Err: syscall.EACCES}, http.StatusInternalServerError, false, true},
		{&fs.PathError{Op: "read", Path: "/data/blobs/x", Err: syscall.EIO}, http.StatusInternalServerError, false, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, http.StatusServiceUnavailable, true, true},
		{&fs.PathError{Op: "read", Path: "/nfs/x", Err: syscall.ETIMEDOUT}, http.StatusServiceUnavailable, true, true},
	}
	for _, c := range cases {
		var entry requestlog.Entry
		r := requestlog.WithEntry(httptest.NewRequest("GET", "/", nil), &entry)
		w := httptest.NewRecorder()
		status, msg := Classify(w, r, c.err)
		if status != c.status || (w.Header().Get("Retry-After") != "") != c.retryAfter || (entry.Err != nil) != c.logged {
			t.Errorf("%v: status %d, Retry-After %q, logged %v", c.err, status, w.Header().Get("Retry-After"), entry.Err)
		}
		if status == http.StatusInternalServerError && msg != "internal error" {
			t.Errorf("an internal cause reached the client: %q", msg)
		}
		if strings.Contains(msg, "/data") {
			t.Errorf("a path reached the client: %q", msg)
		}
	}
}

func TestAcquireRefusesBeyondTheBoundAndReleasesOnce(t *testing.T) {
	u := NewUploads(limit.NewUploads(1))
	g := &Guard{}
	c := g.Call(nil, httptest.NewRequest("PUT", "/", nil))
	c.Caller = &auth.Identity{Subject: "bob"}
	release, err := u.Acquire(&c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Acquire(&c); !errors.Is(err, limit.ErrTooManyUploads) {
		t.Fatalf("second upload: %v, want ErrTooManyUploads", err)
	}
	release()
	release()
	if n := u.InProgress(); n != 0 {
		t.Fatalf("InProgress = %d after release", n)
	}
	if _, err := u.Acquire(&c); err != nil {
		t.Fatalf("after release: %v", err)
	}
}
