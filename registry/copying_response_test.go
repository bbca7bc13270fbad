package registry

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/labstack/echo/v4"
)

// writeSizes records the size of every write a response gets.
type writeSizes struct {
	*httptest.ResponseRecorder
	sizes []int
}

func (w *writeSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.ResponseRecorder.Write(p)
}

// A protocol handler mounted under echo that copies a file into its
// ResponseWriter (http.ServeContent of a blob or a tarball) writes it in
// parts of copyPart, not io.Copy's 32 KiB, and echo still counts the bytes
// (bytes_out of the request log, the metrics).
func TestMountedHandlersCopyFilesInLargeParts(t *testing.T) {
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
	w := &writeSizes{ResponseRecorder: httptest.NewRecorder()}
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v2/blob", nil))
	if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), content) {
		t.Fatalf("GET = %d with %d bytes; want 200 with the %d of the file", w.Code, w.Body.Len(), len(content))
	}
	if len(w.sizes) == 0 || w.sizes[0] != copyPart || len(w.sizes) > len(content)/copyPart+1 {
		t.Fatalf("the file went out in writes of %v bytes; want parts of %d", w.sizes[:min(len(w.sizes), 5)], copyPart)
	}
	if counted != int64(len(content)) {
		t.Fatalf("echo counted %d bytes out; want %d", counted, len(content))
	}
}
