package oci

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/storage/filesystem"
)

// pushBlobForBench uploads content monolithically into repo.
func pushBlobForBench(b *testing.B, h *Handler, repo string, content []byte) digest.Digest {
	d := digest.FromBytes(content)
	req := httptest.NewRequest(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(content))
	req.Header.Set("Content-Type", "application/octet-stream")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusCreated {
		b.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	return d
}

// BenchmarkManifestPush is a PUT of an image manifest by tag with five
// layers already uploaded (filesystem backend, no auth): the manifest push
// path, including what it does so the garbage collector cannot take its
// blobs (the collector's marker, the blob confirmation after linking).
func BenchmarkManifestPush(b *testing.B) {
	store, err := filesystem.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	h, _ := New(Options{Storage: store})
	config := []byte("{}")
	cd := pushBlobForBench(b, h, "bench", config)
	var layers []string
	for range 5 {
		l := make([]byte, 4096)
		rand.Read(l)
		d := pushBlobForBench(b, h, "bench", l)
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":4096}`, d))
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[%s],"annotations":{"n":"%d"}}`,
			cd, strings.Join(layers, ","), i)
		req := httptest.NewRequest(http.MethodPut, "/v2/bench/manifests/main", strings.NewReader(manifest))
		req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusCreated {
			b.Fatalf("put manifest: %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkSmallBlobUpload is a monolithic upload of a new 4 KiB blob
// (filesystem backend, no auth): the fixed cost of a blob push, which the
// garbage collector's ref adds one small write to.
func BenchmarkSmallBlobUpload(b *testing.B) {
	store, err := filesystem.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	h, _ := New(Options{Storage: store})
	body := make([]byte, 4096)
	rand.Read(body)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		body[0], body[1], body[2] = byte(i), byte(i>>8), byte(i>>16)
		pushBlobForBench(b, h, "bench", body)
	}
}
