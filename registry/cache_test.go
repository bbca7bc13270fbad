package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// cachePair is an upstream unireg with token auth (user "up") and a
// registry that caches it as "up.test", pullable anonymously.
func cachePair(t *testing.T) (upstream, cache *httptest.Server) {
	t.Helper()
	up, err := New(context.Background(), Config{Storage: inmemory.New(), Authenticator: userDB{"up": "pw"}, Authorizer: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	upstream = httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	c, err := New(context.Background(), Config{
		Storage:         inmemory.New(),
		AnonymousScopes: []string{"oci:repository:up.test/*:pull"},
		OCI: OCIConfig{Settings: oci.Settings{Upstreams: []oci.Upstream{{
			Name: "up.test", URL: upstream.URL,
			Credentials: func() (string, string, error) { return "up", "pw", nil },
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cache = httptest.NewServer(c)
	t.Cleanup(cache.Close)
	return upstream, cache
}

func TestCachePullsThroughTheUpstreamsTokenFlow(t *testing.T) {
	upstream, cache := cachePair(t)
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	upRef, _ := name.ParseReference(strings.TrimPrefix(upstream.URL, "http://") + "/team/app:v1")
	if err := remote.Write(upRef, img, remote.WithAuth(&authn.Basic{Username: "up", Password: "pw"})); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()

	ref, _ := name.ParseReference(strings.TrimPrefix(cache.URL, "http://") + "/up.test/team/app:v1")
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != want {
		t.Fatalf("digest through the cache %s, upstream %s", d, want)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest as it reads
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(rc); err != nil {
			t.Fatalf("layer through the cache: %v", err)
		}
		rc.Close()
	}

	// Writes into the cached namespace are refused.
	req, _ := http.NewRequest("POST", cache.URL+"/v2/up.test/team/app/blobs/uploads/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("push into the cache: %d", resp.StatusCode)
	}
}
