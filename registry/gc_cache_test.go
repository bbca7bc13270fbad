package registry

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// gcCacheWorld is an upstream registry and a gcWorld caching it as up.test.
func gcCacheWorld(t *testing.T, cache CacheConfig) (up *httptest.Server, w *gcWorld) {
	t.Helper()
	ur, err := New(context.Background(), Config{Storage: inmemory.New(), DisableAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ur.Close() })
	up = httptest.NewServer(ur)
	t.Cleanup(up.Close)
	w = newGCWorld(t, nil, Config{
		OCI:   OCIConfig{Settings: oci.Settings{Upstreams: []oci.Upstream{{Name: "up.test", URL: up.URL}}}},
		Cache: cache,
	})
	return up, w
}

func pushUpstream(t *testing.T, up *httptest.Server, repoTag string, img v1.Image) {
	t.Helper()
	ref, _ := name.ParseReference(strings.TrimPrefix(up.URL, "http://") + "/" + repoTag)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

func imageBytes(t *testing.T, img v1.Image) int64 {
	t.Helper()
	size, _ := img.Size()
	cfg, _ := img.RawConfigFile()
	total := size + int64(len(cfg))
	layers, _ := img.Layers()
	for _, l := range layers {
		n, _ := l.Size()
		total += n
	}
	return total
}

// Cached content nobody pulled for --cache-max-idle goes, blobs and all,
// and comes back from the upstream on the next pull.
func TestGCEvictsCachedImagesNotPulledForMaxIdle(t *testing.T) {
	up, w := gcCacheWorld(t, CacheConfig{MaxIdle: testGrace})
	img, _ := random.Image(4096, 2)
	pushUpstream(t, up, "team/app:1", img)
	w.mustPull("up.test/team/app:1")
	waitCached(t, w, "up.test/team/app", img)
	w.age()
	rep := w.collect(false)
	if n := rep.ByKind["manifest"].Objects; n != 1 {
		t.Fatalf("evicted %d cached manifests, want 1: %+v", n, rep.Deleted)
	}
	for _, d := range blobsOf(t, img) {
		if w.blobStored(d) {
			t.Fatalf("blob %s of the evicted image stayed", d)
		}
	}
	w.mustPull("up.test/team/app:1") // fetched again
	waitCached(t, w, "up.test/team/app", img)
}

// waitCached waits until the cache has stored and linked every blob of
// img: a fill stores after its client has the bytes.
func waitCached(t *testing.T, w *gcWorld, repo string, img v1.Image) {
	t.Helper()
	linked := func(d v1.Hash) bool {
		_, err := w.store.Stat(context.Background(), "repositories/"+repo+"/_layers/"+d.Algorithm+"/"+d.Hex)
		return err == nil
	}
	for _, d := range blobsOf(t, img) {
		for deadline := time.Now().Add(5 * time.Second); !w.blobStored(d) || !linked(d); {
			if time.Now().After(deadline) {
				t.Fatalf("blob %s was not cached", d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Beyond --cache-max-bytes the least recently pulled image goes first; a
// recently pulled one stays.
func TestGCEvictsTheLeastRecentlyPulledBeyondMaxBytes(t *testing.T) {
	older, _ := random.Image(8192, 2)
	newer, _ := random.Image(8192, 2)
	up, w := gcCacheWorld(t, CacheConfig{MaxBytes: imageBytes(t, newer) + 1024})
	pushUpstream(t, up, "team/old:1", older)
	pushUpstream(t, up, "team/new:1", newer)
	w.mustPull("up.test/team/old:1")
	waitCached(t, w, "up.test/team/old", older)
	time.Sleep(20 * time.Millisecond)
	w.mustPull("up.test/team/new:1")
	waitCached(t, w, "up.test/team/new", newer)
	w.age()
	rep := w.collect(false)
	var reasons []string
	for _, d := range rep.Deleted {
		if d.Kind == "manifest" {
			reasons = append(reasons, d.Repository+" "+d.Reason)
		}
	}
	if len(reasons) != 1 || reasons[0] != "up.test/team/old cache-bytes" {
		t.Fatalf("evicted %v, want only up.test/team/old for the byte budget", reasons)
	}
	for _, d := range blobsOf(t, newer) {
		if !w.blobStored(d) {
			t.Fatalf("blob %s of the recently pulled image was evicted", d)
		}
	}
	for _, d := range blobsOf(t, older) {
		if w.blobStored(d) {
			t.Fatalf("blob %s of the least recently pulled image stayed", d)
		}
	}
}
