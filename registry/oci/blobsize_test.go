package oci

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// countingBody is a request body that counts what the handler read of it.
type countingBody struct {
	r    io.Reader
	read int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += int64(n)
	return n, err
}

// send serves one request whose body is content, declared with its length
// (Content-Length) or streamed without one; it returns the answer and how
// much of the body the handler read.
func (hs *harness) send(method, path string, content []byte, declared bool, header map[string]string) (*httptest.ResponseRecorder, int64) {
	hs.t.Helper()
	body := &countingBody{r: bytes.NewReader(content)}
	req := httptest.NewRequest(method, path, body)
	req.ContentLength = -1
	if declared {
		req.ContentLength = int64(len(content))
		req.Header.Set("Content-Length", fmt.Sprint(len(content)))
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.SetBasicAuth("admin", hs.tokens["admin"])
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, req)
	return w, body.read
}

// expectNothingLeft checks that no blob of content is stored, in any
// algorithm's directory, and that no upload session remains.
func expectNothingLeft(t *testing.T, store storage.Driver, content []byte) {
	t.Helper()
	for _, d := range []digest.Digest{digest.SHA256.FromBytes(content), digest.SHA512.FromBytes(content)} {
		if _, err := store.Stat(t.Context(), blobKey(d)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("blob %s: %v, want not stored", d, err)
		}
	}
	sessions, err := store.List(t.Context(), uploadsKey)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if len(sessions) > 0 {
		t.Errorf("upload sessions left behind: %v", sessions)
	}
}

func TestBlobsAboveMaxBlobSizeAre413AndLeaveNothing(t *testing.T) {
	const max = 64 << 10
	stores := map[string]func(t *testing.T) storage.Driver{
		"inmemory": func(*testing.T) storage.Driver { return inmemory.New() },
		"filesystem": func(t *testing.T) storage.Driver {
			d, err := filesystem.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
	big := bytes.Repeat([]byte("x"), max+1)
	for name, newStore := range stores {
		t.Run(name, func(t *testing.T) {
			hs := newHarnessOn(t, newStore(t), map[string][]string{"admin": {"*"}}, func(o *Options) { o.MaxBlobSize = max })
			tooLarge := func(t *testing.T, w *httptest.ResponseRecorder, read int64, declared bool) {
				t.Helper()
				expectError(t, w, http.StatusRequestEntityTooLarge, CodeSizeInvalid)
				if declared && read > 0 {
					t.Errorf("the handler read %d bytes of a body whose declared length was already too large", read)
				}
				if read > max+32<<10 {
					t.Errorf("the handler read %d bytes of a body it had to cut after %d", read, max)
				}
			}
			for _, declared := range []bool{true, false} {
				t.Run(fmt.Sprintf("declared=%v", declared), func(t *testing.T) {
					d := digest.FromBytes(big)
					// Monolithic: POST ?digest= with the whole blob.
					w, read := hs.send("POST", "/v2/a/blobs/uploads/?digest="+d.String(), big, declared, nil)
					tooLarge(t, w, read, declared)
					expectNothingLeft(t, hs.store, big)

					// One PATCH of the whole blob, then the session is gone.
					loc := startSession(t, hs, "a")
					w, read = hs.send("PATCH", loc, big, declared, nil)
					tooLarge(t, w, read, declared)
					expectError(t, hs.do(call{method: "GET", path: loc, user: "admin"}), http.StatusNotFound, CodeBlobUploadUnknown)
					expectNothingLeft(t, hs.store, big)

					// Chunks that fit until the last one crosses the limit,
					// sent with the final PUT.
					loc = startSession(t, hs, "a")
					w = hs.do(call{method: "PATCH", path: loc, body: big[:max/2], user: "admin"})
					expectStatus(t, w, http.StatusAccepted)
					w, read = hs.send("PUT", loc+"?digest="+d.String(), big[max/2:], declared, nil)
					tooLarge(t, w, read, declared)
					expectNothingLeft(t, hs.store, big)
				})
			}
			// A chunk whose Content-Range ends past the limit is refused
			// before it is read, whatever its Content-Length.
			loc := startSession(t, hs, "a")
			w, read := hs.send("PATCH", loc, big[:1024], false, map[string]string{"Content-Range": fmt.Sprintf("0-%d", max)})
			tooLarge(t, w, read, true)
			expectNothingLeft(t, hs.store, big)

			// Exactly the limit is accepted, monolithic and in chunks.
			exact := big[:max]
			hs.pushBlob("admin", "a", exact)
			loc = startSession(t, hs, "b")
			w = hs.do(call{method: "PATCH", path: loc, body: exact[:max-1], user: "admin"})
			expectStatus(t, w, http.StatusAccepted)
			w = hs.do(call{method: "PUT", path: loc + "?digest=" + digest.FromBytes(exact).String(), body: exact[max-1:], user: "admin"})
			expectStatus(t, w, http.StatusCreated)
		})
	}
}

func TestNoMaxBlobSizeMeansNoBound(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	hs.pushBlob("admin", "a", bytes.Repeat([]byte("y"), 1<<20))
}
