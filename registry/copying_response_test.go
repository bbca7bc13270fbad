package registry

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/labstack/echo/v4"
)

// readFromRecorder is a server's ResponseWriter with net/http's ReadFrom
// (which sends a file with sendfile); it records that a copy reached it.
type readFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom bool
}

func (w *readFromRecorder) ReadFrom(r io.Reader) (int64, error) {
	w.readFrom = true
	return io.Copy(struct{ io.Writer }{w.ResponseRecorder}, r)
}

// A protocol handler mounted under echo that copies a file into its
// ResponseWriter (http.ServeContent of a blob or a tarball) reaches the
// server's own ReadFrom, rather than a 32 KiB buffer in between, and echo
// still counts the bytes (bytes_out of the request log, the metrics).
func TestMountedHandlersCopyThroughTheServersReadFrom(t *testing.T) {
	content := bytes.Repeat([]byte("unireg "), 300_000)
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	var counted int64
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			err := next(c)
			counted = c.Response().Size
			return err
		}
	})
	mount(e, "/v2", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(p)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		http.ServeContent(w, r, "", fi.ModTime(), f)
	}))
	w := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v2/blob", nil))
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), content) {
		t.Fatalf("GET = %d with %d bytes; want 200 with the %d of the file", w.Code, w.Body.Len(), len(content))
	}
	if !w.readFrom {
		t.Fatal("the copy never reached the server's ReadFrom")
	}
	if counted != int64(len(content)) {
		t.Fatalf("echo counted %d bytes out; want %d", counted, len(content))
	}
}
