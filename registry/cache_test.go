package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/unireg/unireg/registry/auth"
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

// cacheOf builds a registry caching upstreamURL as name, with cfg's other
// settings.
func cacheOf(t *testing.T, upstreamURL, upstreamName string, cfg Config) *httptest.Server {
	t.Helper()
	if cfg.Storage == nil {
		cfg.Storage = inmemory.New()
	}
	cfg.OCI.Upstreams = []oci.Upstream{{Name: upstreamName, URL: upstreamURL,
		Credentials: func() (string, string, error) { return "up", "pw", nil }}}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv
}

func pushRandom(t *testing.T, upstream *httptest.Server, repoTag string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(upstream.URL, "http://") + "/" + repoTag)
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "up", Password: "pw"})); err != nil {
		t.Fatal(err)
	}
	return img
}

func getStatus(t *testing.T, url, bearer string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// Docker Hub's names: docker.io/nginx is docker.io/library/nginx, and the
// containerd mirror form (?ns=docker.io) is the same repository, stored
// once under its canonical name.
func TestCacheNamesDockerHubAndMirrorFormsAlike(t *testing.T) {
	up, _ := cachePair(t)
	img := pushRandom(t, up, "library/nginx:1")
	want, _ := img.Digest()
	cache := cacheOf(t, up.URL, "docker.io", Config{AnonymousScopes: []string{"oci:repository:docker.io/library/*:pull"}})
	for _, path := range []string{
		"/v2/docker.io/nginx/manifests/1",
		"/v2/docker.io/library/nginx/manifests/1",
		"/v2/library/nginx/manifests/1?ns=docker.io",
		"/v2/nginx/manifests/1?ns=docker.io",
	} {
		resp, _ := getStatus(t, cache.URL+path, "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want.String() {
			t.Fatalf("%s: %d %s, want %s", path, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), want)
		}
	}
	resp, body := getStatus(t, cache.URL+"/v2/_catalog", "")
	if resp.StatusCode != http.StatusOK || string(bytes.TrimSpace(body)) != `{"repositories":["docker.io/library/nginx"]}` {
		t.Fatalf("catalog %d %s", resp.StatusCode, body)
	}
	// A name outside the anonymous scope is not fetched for an anonymous caller.
	resp, _ = getStatus(t, cache.URL+"/v2/docker.io/someone/app/manifests/1", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("pull outside the anonymous scope: %d", resp.StatusCode)
	}
}

// containerd, pulling docker.io/library/app through a mirror, asks the
// realm for repository:library/app:pull; the realm it was given carries
// ns, so the token grants the canonical docker.io/library/app.
func TestCacheMirrorTokenFlowAsContainerdDoes(t *testing.T) {
	up, _ := cachePair(t)
	img := pushRandom(t, up, "library/app:v1")
	want, _ := img.Digest()
	cache := cacheOf(t, up.URL, "docker.io", Config{
		Authenticator: userDB{"node": "pw"},
		Authorizer:    prefixAuthorizer("docker.io/library/"),
	})
	resp, _ := getStatus(t, cache.URL+"/v2/library/app/manifests/v1?ns=docker.io", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous mirror pull: %d", resp.StatusCode)
	}
	ch := resp.Header.Get("WWW-Authenticate")
	realm := between(ch, `realm="`, `"`)
	if !strings.HasSuffix(realm, "/token?ns=docker.io") || !strings.Contains(ch, `scope="repository:library/app:pull"`) {
		t.Fatalf("challenge %s", ch)
	}
	// What containerd sends: the realm, with service and its own scope.
	req, _ := http.NewRequest("GET", realm+"&service="+between(ch, `service="`, `"`)+"&scope=repository:library/app:pull", nil)
	req.SetBasicAuth("node", "pw")
	tr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	json.NewDecoder(tr.Body).Decode(&tok)
	tr.Body.Close()
	resp, _ = getStatus(t, cache.URL+"/v2/library/app/manifests/v1?ns=docker.io", tok.Token)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want.String() {
		t.Fatalf("mirror pull with the token: %d %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
	// The same token does not open another repository of the namespace
	// nor a local repository of the same path.
	resp, _ = getStatus(t, cache.URL+"/v2/library/other/manifests/v1?ns=docker.io", tok.Token)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("another repository with the token: %d", resp.StatusCode)
	}
	resp, _ = getStatus(t, cache.URL+"/v2/library/app/manifests/v1", tok.Token)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the local library/app with the mirror's token: %d", resp.StatusCode)
	}
}

// prefixAuthorizer allows pulls of repositories under prefix.
type prefixAuthorizer string

func (p prefixAuthorizer) Authorize(_ context.Context, _ *auth.Identity, a auth.Access) bool {
	return a.Action == auth.ActionPull && strings.HasPrefix(a.Name, string(p))
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}

// Each cached object's last pull is recorded for the collector's
// eviction: a blob's and a manifest's.
func TestCacheRecordsWhenCachedContentWasLastPulled(t *testing.T) {
	up, _ := cachePair(t)
	img := pushRandom(t, up, "team/app:v1")
	store := inmemory.New()
	cache := cacheOf(t, up.URL, "up.test", Config{Storage: store, AnonymousScopes: []string{"oci:repository:up.test/*:pull"}})
	ref, _ := name.ParseReference(strings.TrimPrefix(cache.URL, "http://") + "/up.test/team/app:v1")
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := got.Layers()
	rc, _ := layers[0].Compressed()
	io.ReadAll(rc)
	rc.Close()
	md, _ := img.Digest()
	ld, _ := layers[0].Digest()
	for _, key := range []string{
		"cache/oci/pulled/manifests/up.test/team/app/sha256/" + md.Hex,
		"cache/oci/pulled/blobs/sha256/" + ld.Hex,
	} {
		if _, err := store.Stat(context.Background(), key); err != nil {
			t.Errorf("no last-pulled record %s: %v", key, err)
		}
	}
}
