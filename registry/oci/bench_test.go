package oci

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/storage/filesystem"
)

// BenchmarkMonolithicUpload streams a 64 MiB body through the handler into
// the filesystem backend, hashing it on the way (POST ?digest=, no auth):
// the digest streaming of every push.
func BenchmarkMonolithicUpload(b *testing.B) {
	store, err := filesystem.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	h, _ := New(Options{Storage: store})
	body := make([]byte, 64<<20)
	rand.Read(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		body[0], body[1] = byte(i), byte(i>>8) // a new blob each time
		d := digest.FromBytes(body)
		req := httptest.NewRequest(http.MethodPost, "/v2/bench/blobs/uploads/?digest="+d.String(), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/octet-stream")
		w := httptest.NewRecorder()
		b.StartTimer()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("upload: %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkManifestGetByTag is a GET of a manifest by tag in the handler
// (filesystem backend, no auth): what the read cache saves.
func BenchmarkManifestGetByTag(b *testing.B) {
	store, err := filesystem.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	h, _ := New(Options{Storage: store})
	config := []byte("{}")
	req := httptest.NewRequest(http.MethodPost, "/v2/bench/blobs/uploads/?digest="+digest.FromBytes(config).String(), bytes.NewReader(config))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusCreated {
		b.Fatalf("put config: %d %s", w.Code, w.Body)
	}
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
	req = httptest.NewRequest(http.MethodPut, "/v2/bench/manifests/v1", bytes.NewReader(manifest))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusCreated {
		b.Fatalf("put manifest: %d %s", w.Code, w.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/v2/bench/manifests/v1", nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("get: %d", w.Code)
		}
	}
}
