package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/unireg/unireg/registry/storage/filesystem"
)

// A push into a full disk is answered 507 in the protocol's own error
// format, names no path, is not one a client should retry at once (no
// Retry-After: it is not the store being away), and leaves nothing of the
// blob behind. The disk is a real filesystem that fills: a 1 MiB tmpfs
// (needs root, as CI runs; skipped elsewhere).
func TestPushIntoAFullDiskIsRefusedWith507(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	store, err := filesystem.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(context.Background(), Config{Storage: store, DisableAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	body := make([]byte, 2<<20)
	rand.Read(body)
	sum := sha256.Sum256(body)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	w := httptest.NewRecorder()
	reg.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v2/team/app/blobs/uploads/?digest="+digest, bytes.NewReader(body)))
	if w.Code != http.StatusInsufficientStorage {
		t.Fatalf("push of 2 MiB into a 1 MiB disk = %d %s; want 507", w.Code, w.Body)
	}
	if w.Header().Get("Retry-After") != "" {
		t.Errorf("a full disk came with Retry-After %q", w.Header().Get("Retry-After"))
	}
	var doc struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || len(doc.Errors) != 1 {
		t.Fatalf("answer %q is not an OCI error document", w.Body)
	}
	if m := doc.Errors[0].Message; !strings.Contains(m, "full") || strings.Contains(m, dir) {
		t.Errorf("message %q: want it to say the storage is full, without a path", m)
	}
	w = httptest.NewRecorder()
	reg.ServeHTTP(w, httptest.NewRequest(http.MethodHead, "/v2/team/app/blobs/"+digest, nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("HEAD of the refused blob = %d; want 404", w.Code)
	}
	var left int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := os.Stat(p); err == nil {
				left += fi.Size()
			}
		}
		return nil
	})
	if left > 64<<10 {
		t.Errorf("%d bytes are left on the disk after the refused push; want the partial blob removed", left)
	}
}
