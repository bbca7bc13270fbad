package registry

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/internal/cachetest"
	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The pull-through cache's integration tests (issue 17, OCI): a real CNCF
// Distribution upstream behind cachetest's counting, pacing proxy, a second
// unireg with token auth for the token flow, and a small hand-written
// upstream that lies. What the cache asks of its upstream is asserted at
// the proxy, by requests and bytes, never by timers; the time bounds below
// are the generous ones on behaviour.

// ociDistName is the upstream name the Distribution-backed caches use.
const ociDistName = "dist.test"

// ociManifestAccepts is what the tests' clients accept: every manifest and
// index type, as containerd does.
const ociManifestAccepts = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// ociUpstreamWorld is a Distribution upstream, the proxy in front of it and a
// cache of the proxy named ociDistName.
type ociUpstreamWorld struct {
	t     *testing.T
	dist  *cachetest.Distribution
	proxy *cachetest.Proxy
	*ociCacheServer
}

// ociCacheServer is one registry caching an upstream.
type ociCacheServer struct {
	reg   *Registry
	store storage.Driver
	srv   *httptest.Server
	// url is srv.URL.
	url string
}

func newOCIUpstreamWorld(t *testing.T, cfg Config) *ociUpstreamWorld {
	t.Helper()
	w := &ociUpstreamWorld{t: t, dist: cachetest.StartDistribution(t)}
	w.proxy = cachetest.NewProxy(t, w.dist.URL)
	w.ociCacheServer = startOCICache(t, ociDistName, w.proxy.URL(), cfg)
	return w
}

// startOCICache starts a registry caching upstreamURL under name, with cfg's
// other settings: anonymous pulls of the cached namespace unless cfg says
// otherwise, and a spool of the test's own.
func startOCICache(t *testing.T, name, upstreamURL string, cfg Config) *ociCacheServer {
	t.Helper()
	if cfg.Storage == nil {
		cfg.Storage = inmemory.New()
	}
	if cfg.AnonymousScopes == nil {
		cfg.AnonymousScopes = []string{"oci:repository:" + name + "/*:pull"}
	}
	if cfg.Cache.SpoolDir == "" {
		cfg.Cache.SpoolDir = t.TempDir()
	}
	if cfg.OCI.Upstreams == nil {
		cfg.OCI.Upstreams = []oci.Upstream{{Name: name, URL: upstreamURL}}
	}
	reg, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return &ociCacheServer{reg: reg, store: cfg.Storage, srv: srv, url: srv.URL}
}

func ociFSStore(t *testing.T) storage.Driver {
	t.Helper()
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// ociAnswer is one response, read whole (or as far as it came).
type ociAnswer struct {
	status  int
	header  http.Header
	body    []byte
	readErr error // the body broke off
}

func (a ociAnswer) String() string {
	return fmt.Sprintf("%d %s", a.status, bytes.TrimSpace(a.body[:min(len(a.body), 300)]))
}

// ociSend makes one request (with Basic credentials user:pass when user is
// set) and reads its answer.
func ociSend(t *testing.T, method, url string, body []byte, header http.Header) ociAnswer {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" && strings.Contains(url, "/manifests/") {
		req.Header.Set("Accept", ociManifestAccepts)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return ociAnswer{status: resp.StatusCode, header: resp.Header, body: b, readErr: rerr}
}

func ociGet(t *testing.T, url string) ociAnswer {
	t.Helper()
	return ociSend(t, http.MethodGet, url, nil, nil)
}

// ociBasic is the Authorization header of user:pass.
func ociBasic(user, pass string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
}

// ociErr decodes an OCI error body's first error.
func ociErr(t *testing.T, a ociAnswer) (code, message string) {
	t.Helper()
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not an OCI error body: %s", a)
	}
	return e.Errors[0].Code, e.Errors[0].Message
}

// wantOCIManifest checks that a is the manifest body want, named by digest.
func wantOCIManifest(t *testing.T, what string, a ociAnswer, want []byte) {
	t.Helper()
	d := digest.FromBytes(want)
	if a.status != http.StatusOK || !bytes.Equal(a.body, want) || a.header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("%s: %s (Docker-Content-Digest %q), want the manifest %s", what, a, a.header.Get("Docker-Content-Digest"), d)
	}
}

// wantOCIBlob checks that a is the whole, verified blob want.
func wantOCIBlob(t *testing.T, what string, a ociAnswer, want []byte) {
	t.Helper()
	if a.status != http.StatusOK || a.readErr != nil || !bytes.Equal(a.body, want) {
		t.Fatalf("%s: status %d, %d bytes (read error %v), want the %d bytes of %s", what, a.status, len(a.body), a.readErr, len(want), digest.FromBytes(want))
	}
}

// pullOCIImage pulls img through the cache as a client does (manifest by tag,
// then by digest, config and layers) and checks every byte.
func pullOCIImage(t *testing.T, cacheURL, repo string, img cachetest.Image, layers [][]byte) {
	t.Helper()
	base := cacheURL + "/v2/" + repo
	wantOCIManifest(t, "manifest by tag", ociGet(t, base+"/manifests/"+img.Tag), img.ManifestBytes)
	wantOCIManifest(t, "manifest by digest", ociGet(t, base+"/manifests/"+img.Manifest.Digest.String()), img.ManifestBytes)
	wantOCIBlob(t, "config", ociGet(t, base+"/blobs/"+img.Config.Digest.String()), img.ConfigBytes)
	for i, l := range img.Layers {
		wantOCIBlob(t, "layer", ociGet(t, base+"/blobs/"+l.Digest.String()), layers[i])
	}
}

// ociBlobStored reports whether the storage holds the content of d.
func ociBlobStored(t *testing.T, s storage.Driver, d digest.Digest) bool {
	t.Helper()
	_, err := s.Stat(context.Background(), "blobs/sha256/"+d.Encoded()[:2]+"/"+d.Encoded()+"/data")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// eventually polls cond until it holds or timeout (a bound against
// hanging, never a speed target) has passed.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// ociStored reports whether the storage holds key.
func ociStored(t *testing.T, s storage.Driver, key string) bool {
	t.Helper()
	_, err := s.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// 50 nodes pulling a new image at once: the upstream sends the blob once,
// and every client gets its first bytes while the upstream has sent less
// than half of it (the cache streams, it does not download first). The
// fills-per-identity bound is the default one: the 50 anonymous clients
// are one identity, and joining a download must not count against it.
func TestCacheUpstreamFiftyColdPullsOfOneBlobCostOneStreamedDownload(t *testing.T) {
	w := newOCIUpstreamWorld(t, Config{Storage: ociFSStore(t)})
	const size = 64 << 20
	const clients = 50
	blob := cachetest.RandomBytes(size)
	img := cachetest.PushImage(t, w.dist.URL, "team/big", "v1", [][]byte{blob})
	d := img.Layers[0].Digest
	url := w.url + "/v2/" + ociDistName + "/team/big/blobs/" + d.String()

	w.proxy.Pace("/blobs/" + d.String())
	w.proxy.Allow(1 << 20)
	hc := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, DisableCompression: true}}
	defer hc.CloseIdleConnections()

	var firstBytes, finished sync.WaitGroup
	firstBytes.Add(clients)
	finished.Add(clients)
	var gotFirst atomic.Int32
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			defer finished.Done()
			var once sync.Once
			first := func() { once.Do(firstBytes.Done) }
			defer first() // a client that fails must not hold up the others' check
			resp, err := hc.Get(url)
			if err != nil {
				errs <- fmt.Errorf("client %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				errs <- fmt.Errorf("client %d: %d %s", i, resp.StatusCode, bytes.TrimSpace(b))
				return
			}
			br := bufio.NewReaderSize(resp.Body, 64<<10)
			if _, err := br.Peek(1); err != nil {
				errs <- fmt.Errorf("client %d: first byte: %v", i, err)
				return
			}
			gotFirst.Add(1)
			first()
			h := sha256.New()
			n, err := io.Copy(h, br)
			if err != nil {
				errs <- fmt.Errorf("client %d: after %d bytes: %v", i, n, err)
				return
			}
			if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != d || n != size {
				errs <- fmt.Errorf("client %d: %d bytes of digest %s, want %d of %s", i, n, got, size, d)
			}
		}()
	}
	waited := make(chan struct{})
	go func() { firstBytes.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second): // a deadline against hanging, not a speed target
		w.proxy.Pass()
		t.Fatalf("after 60 s only %d of %d clients had their first bytes", gotFirst.Load(), clients)
	}
	sentAtFirstBytes := w.proxy.BytesSent()
	w.proxy.Pass()
	finished.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d clients failed", failed, clients)
	}
	if gotFirst.Load() == clients && sentAtFirstBytes >= size/2 {
		t.Errorf("every client had its first bytes only once the upstream had sent %d of %d bytes: not streamed", sentAtFirstBytes, size)
	}
	if n := w.proxy.Count("GET", "/blobs/"+d.String()); n != 1 {
		t.Errorf("the upstream saw %d GETs of the blob, want 1", n)
	}
	// A client has the whole body once it has Content-Length bytes, which
	// may be before the cache has stored them: wait for the store.
	if !eventually(30*time.Second, func() bool { return ociBlobStored(t, w.store, d) }) {
		t.Errorf("the blob is not stored 30 s after the pulls")
	}
	// Stored: the next pull costs the upstream nothing.
	before := len(w.proxy.Requests())
	wantOCIBlob(t, "warm pull", ociGet(t, url), blob)
	if after := len(w.proxy.Requests()); after != before {
		t.Errorf("a warm pull of the blob cost %d upstream requests", after-before)
	}
}

// One platform of a 4-platform index costs that platform: the index is
// cached as an index, and the other platforms' manifests and blobs are
// never asked of the upstream.
func TestCacheUpstreamOnePlatformOfAnIndexCostsThatPlatform(t *testing.T) {
	w := newOCIUpstreamWorld(t, Config{})
	ix := cachetest.PushIndex(t, w.dist.URL, "team/multi", "v1", 4, 1<<20)
	pick := ix.Platforms[1]
	repo := w.url + "/v2/" + ociDistName + "/team/multi"

	wantOCIManifest(t, "index", ociGet(t, repo+"/manifests/v1"), ix.IndexBytes)
	wantOCIManifest(t, "platform manifest", ociGet(t, repo+"/manifests/"+pick.Manifest.Digest.String()), pick.ManifestBytes)
	wantOCIBlob(t, "config", ociGet(t, repo+"/blobs/"+pick.Config.Digest.String()), pick.ConfigBytes)
	layer, err := cachetest.FetchBlob(context.Background(), w.dist.URL, "team/multi", pick.Layers[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	wantOCIBlob(t, "layer", ociGet(t, repo+"/blobs/"+pick.Layers[0].Digest.String()), layer)

	want := ix.Index.Size + pick.Size()
	// The proxy counts an answer's bytes just after its client may have
	// read them: wait for the count to catch up before judging it.
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.proxy.WaitBytesSent(wctx, want)
	if got := w.proxy.BytesSent(); got < want || got > want*105/100 {
		t.Errorf("the upstream sent %d bytes for one platform of %d bytes (index included), want within 1.05x", got, want)
	}
	for i, p := range ix.Platforms {
		if i == 1 {
			continue
		}
		for _, d := range []digest.Digest{p.Manifest.Digest, p.Config.Digest, p.Layers[0].Digest} {
			if n := w.proxy.Count("", d.Encoded()); n != 0 {
				t.Errorf("platform %s: the upstream was asked %d times for %s", p.Manifest.Platform.Architecture, n, d)
			}
		}
	}
	// The index is stored as the index: asked again by digest, nothing
	// goes upstream.
	before := len(w.proxy.Requests())
	wantOCIManifest(t, "index by digest", ociGet(t, repo+"/manifests/"+ix.Index.Digest.String()), ix.IndexBytes)
	if after := len(w.proxy.Requests()); after != before {
		t.Errorf("the cached index by digest cost %d upstream requests", after-before)
	}
}

// The containerd mirror form (?ns=dist.test) and the path form are one
// cached repository: the same digests and bytes, each blob fetched once
// whichever form asked first, one name in the catalog.
func TestCacheUpstreamMirrorFormAndPathFormAgree(t *testing.T) {
	w := newOCIUpstreamWorld(t, Config{})
	layers := [][]byte{cachetest.RandomBytes(64 << 10), cachetest.RandomBytes(64 << 10)}
	img := cachetest.PushImage(t, w.dist.URL, "team/app", "v1", layers)
	path := w.url + "/v2/" + ociDistName + "/team/app"
	mirror := w.url + "/v2/team/app"
	const ns = "?ns=" + ociDistName

	// The mirror form first (cold), then the path form (warm), and the
	// other way round for the second layer.
	wantOCIManifest(t, "mirror form by tag", ociGet(t, mirror+"/manifests/v1"+ns), img.ManifestBytes)
	wantOCIManifest(t, "path form by tag", ociGet(t, path+"/manifests/v1"), img.ManifestBytes)
	wantOCIManifest(t, "mirror form by digest", ociGet(t, mirror+"/manifests/"+img.Manifest.Digest.String()+ns), img.ManifestBytes)
	wantOCIBlob(t, "mirror form layer 0", ociGet(t, mirror+"/blobs/"+img.Layers[0].Digest.String()+ns), layers[0])
	wantOCIBlob(t, "path form layer 0", ociGet(t, path+"/blobs/"+img.Layers[0].Digest.String()), layers[0])
	wantOCIBlob(t, "path form layer 1", ociGet(t, path+"/blobs/"+img.Layers[1].Digest.String()), layers[1])
	wantOCIBlob(t, "mirror form layer 1", ociGet(t, mirror+"/blobs/"+img.Layers[1].Digest.String()+ns), layers[1])
	wantOCIBlob(t, "mirror form config", ociGet(t, mirror+"/blobs/"+img.Config.Digest.String()+ns), img.ConfigBytes)

	for _, l := range img.Layers {
		if n := w.proxy.Count("GET", "/blobs/"+l.Digest.String()); n != 1 {
			t.Errorf("layer %s: %d upstream GETs, want 1 (one cached repository for both forms)", l.Digest, n)
		}
	}
	if n := w.proxy.Count("GET", "/manifests/"); n != 1 {
		t.Errorf("%d upstream manifest GETs, want 1", n)
	}
	cat := ociGet(t, w.url+"/v2/_catalog")
	if cat.status != http.StatusOK || string(bytes.TrimSpace(cat.body)) != `{"repositories":["`+ociDistName+`/team/app"]}` {
		t.Errorf("catalog: %s", cat)
	}
	// The mirror form without ns (or with an ns that is no upstream) is
	// the local repository team/app, which does not exist.
	for _, u := range []string{mirror + "/manifests/v1", mirror + "/manifests/v1?ns=other.test"} {
		if a := ociGet(t, u); a.status == http.StatusOK {
			t.Errorf("%s: %s, want the local repository's answer", u, a)
		}
	}
}

// A tag moved upstream is served after the tag TTL, and only after it:
// within a long TTL the cache serves the old digest without asking the
// upstream, and a revalidation of an unmoved tag is a HEAD alone.
func TestCacheUpstreamMovedTagIsServedAfterTheTTL(t *testing.T) {
	dist := cachetest.StartDistribution(t)
	shortProxy, longProxy := cachetest.NewProxy(t, dist.URL), cachetest.NewProxy(t, dist.URL)
	short := startOCICache(t, ociDistName, shortProxy.URL(), Config{OCI: OCIConfig{Settings: oci.Settings{UpstreamTagTTL: 200 * time.Millisecond}}})
	long := startOCICache(t, ociDistName, longProxy.URL(), Config{OCI: OCIConfig{Settings: oci.Settings{UpstreamTagTTL: time.Hour}}})
	tagPath := "/v2/" + ociDistName + "/team/moving/manifests/v1"

	old := cachetest.PushImage(t, dist.URL, "team/moving", "v1", [][]byte{cachetest.RandomBytes(4 << 10)})
	wantOCIManifest(t, "short TTL, first pull", ociGet(t, short.url+tagPath), old.ManifestBytes)
	wantOCIManifest(t, "long TTL, first pull", ociGet(t, long.url+tagPath), old.ManifestBytes)

	moved := cachetest.PushImage(t, dist.URL, "team/moving", "v1", [][]byte{cachetest.RandomBytes(4 << 10)})
	longProxy.Reset()
	deadline := time.Now().Add(15 * time.Second) // generous: the TTL is 200 ms
	for {
		a := ociGet(t, short.url+tagPath)
		if a.status == http.StatusOK && bytes.Equal(a.body, moved.ManifestBytes) {
			wantOCIManifest(t, "short TTL, after the move", a, moved.ManifestBytes)
			break
		}
		if !bytes.Equal(a.body, old.ManifestBytes) {
			t.Fatalf("short TTL: %s, neither the old nor the moved manifest", a)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the moved tag was not served 15 s after the move (TTL 200 ms)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The old manifest stays pullable by digest: content is immutable.
	wantOCIManifest(t, "old manifest by digest", ociGet(t, short.url+"/v2/"+ociDistName+"/team/moving/manifests/"+old.Manifest.Digest.String()), old.ManifestBytes)

	// More than the short TTL has passed since the move; the long TTL has not.
	for range 3 {
		wantOCIManifest(t, "long TTL, after the move", ociGet(t, long.url+tagPath), old.ManifestBytes)
	}
	if reqs := longProxy.Requests(); len(reqs) != 0 {
		t.Errorf("within its TTL the cached tag cost %d upstream requests, the first %s %s", len(reqs), reqs[0].Method, reqs[0].Path)
	}

	// An unmoved tag past its TTL is revalidated with a HEAD, no GET.
	time.Sleep(300 * time.Millisecond)
	shortProxy.Reset()
	wantOCIManifest(t, "short TTL, revalidated", ociGet(t, short.url+tagPath), moved.ManifestBytes)
	if heads, gets := shortProxy.Count("HEAD", "/manifests/v1$"), shortProxy.Count("GET", "/manifests/"); heads != 1 || gets != 0 {
		t.Errorf("revalidating an unmoved tag cost %d HEADs and %d manifest GETs, want 1 and 0", heads, gets)
	}
}

// The upstream hangs: a cached tag whose TTL has expired is answered from
// the cache within 2 s while its revalidation waits on the upstream; a
// pull of something not cached fails within 10 s with a 5xx OCI error
// naming the upstream.
func TestCacheUpstreamHangingServesCachedTagsAndFailsUncachedInTime(t *testing.T) {
	w := newOCIUpstreamWorld(t, Config{OCI: OCIConfig{Settings: oci.Settings{UpstreamTagTTL: 200 * time.Millisecond}}})
	layers := [][]byte{cachetest.RandomBytes(32 << 10)}
	img := cachetest.PushImage(t, w.dist.URL, "team/app", "v1", layers)
	repo := ociDistName + "/team/app"
	pullOCIImage(t, w.url, repo, img, layers)
	time.Sleep(300 * time.Millisecond) // the tag's TTL expires: the next pull revalidates

	w.proxy.Hang()
	heads := w.proxy.Count("HEAD", "/manifests/v1$")
	start := time.Now()
	a := ociGet(t, w.url+"/v2/"+repo+"/manifests/v1")
	elapsed := time.Since(start)
	wantOCIManifest(t, "cached tag, upstream hanging", a, img.ManifestBytes)
	if elapsed > 2*time.Second {
		t.Errorf("the cached tag took %s with the upstream hanging, want within 2 s", elapsed)
	}
	if w.proxy.Count("HEAD", "/manifests/v1$") != heads+1 || w.proxy.Hanging() < 1 {
		t.Errorf("the expired tag was not revalidated (HEADs %d -> %d, %d hanging): the test proves nothing",
			heads, w.proxy.Count("HEAD", "/manifests/v1$"), w.proxy.Hanging())
	}
	// Its blobs and the manifest by digest do not ask the upstream at all.
	before := len(w.proxy.Requests())
	pullOCIImage(t, w.url, repo, img, layers)
	if n := len(w.proxy.Requests()) - before; n > 1 { // the tag may be revalidated once more
		t.Errorf("pulling the cached image with the upstream hanging sent %d requests", n)
	}

	// Both at once: each waits for the upstream's timeout.
	paths := []string{"/team/never/manifests/v1", "/team/never/blobs/" + digest.FromString("never").String()}
	type outcome struct {
		a       ociAnswer
		err     error
		elapsed time.Duration
	}
	outcomes := make([]outcome, len(paths))
	var wg sync.WaitGroup
	for i, path := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := http.Get(w.url + "/v2/" + ociDistName + path)
			if err != nil {
				outcomes[i] = outcome{err: err, elapsed: time.Since(start)}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			outcomes[i] = outcome{a: ociAnswer{status: resp.StatusCode, header: resp.Header, body: b}, elapsed: time.Since(start)}
		}()
	}
	wg.Wait()
	for i, o := range outcomes {
		if o.err != nil || o.a.status < 500 || o.elapsed > 10*time.Second {
			t.Errorf("uncached %s with the upstream hanging: %v %s after %s, want a 5xx within 10 s", paths[i], o.err, o.a, o.elapsed)
			continue
		}
		if code, msg := ociErr(t, o.a); code != oci.CodeUnavailable || !strings.Contains(msg, ociDistName) {
			t.Errorf("uncached %s: %s %q, want UNAVAILABLE naming the upstream %s", paths[i], code, msg, ociDistName)
		}
	}
}

// The upstream refuses (503) or drops the connection: every manifest and
// blob of a cached image still pulls, by tag and by digest, though the
// expired tag's revalidation reached the upstream and failed.
func TestCacheUpstreamRefusingStillServesEveryPartOfACachedImage(t *testing.T) {
	w := newOCIUpstreamWorld(t, Config{OCI: OCIConfig{Settings: oci.Settings{UpstreamTagTTL: 200 * time.Millisecond}}})
	layers := [][]byte{cachetest.RandomBytes(48 << 10), cachetest.RandomBytes(16 << 10), cachetest.RandomBytes(8 << 10)}
	img := cachetest.PushImage(t, w.dist.URL, "team/app", "v1", layers)
	repo := ociDistName + "/team/app"
	pullOCIImage(t, w.url, repo, img, layers)

	for _, mode := range []struct {
		name string
		set  func()
	}{{"refusing 503", func() { w.proxy.RefuseStatus(http.StatusServiceUnavailable) }}, {"dropping", w.proxy.Drop}} {
		time.Sleep(300 * time.Millisecond) // past the TTL: the tag is revalidated
		mode.set()
		heads := w.proxy.Count("HEAD", "/manifests/v1$")
		pullOCIImage(t, w.url, repo, img, layers)
		for _, d := range append([]digest.Digest{img.Config.Digest}, img.Layers[0].Digest, img.Layers[1].Digest, img.Layers[2].Digest) {
			if a := ociSend(t, http.MethodHead, w.url+"/v2/"+repo+"/blobs/"+d.String(), nil, nil); a.status != http.StatusOK {
				t.Errorf("%s: HEAD blob %s: %d", mode.name, d, a.status)
			}
		}
		if mode.name == "refusing 503" && w.proxy.Count("HEAD", "/manifests/v1$") == heads {
			t.Errorf("%s: the expired tag was not revalidated: the test proves nothing", mode.name)
		}
	}
	w.proxy.Pass()
	m := scrapeCacheMetrics(t, w.url)
	if m[`unireg_cache_requests_total{protocol="oci",result="stale",upstream="`+ociDistName+`"}`] < 1 {
		t.Errorf("no stale answer counted in /metrics")
	}
}

// scrapeCacheMetrics returns the cache's /metrics samples by series.
func scrapeCacheMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	a := ociGet(t, url+"/metrics")
	if a.status != http.StatusOK {
		t.Fatalf("/metrics: %s", a)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(a.body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") || !strings.HasPrefix(line, "unireg_cache_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q", line)
		}
		m[line[:i]] = v
	}
	return m
}

// Negative caching: a manifest or blob the upstream does not have, asked
// twice, costs it one request. The circuit breaker: after 5 failures in a
// row an uncached pull fails at once with 503 and Retry-After, and the
// upstream is not asked. All of it shows in /metrics.
func TestCacheUpstreamNegativeCachingAndCircuitBreaker(t *testing.T) {
	w := newOCIUpstreamWorld(t, Config{})
	layers := [][]byte{cachetest.RandomBytes(100 << 10)}
	img := cachetest.PushImage(t, w.dist.URL, "team/app", "v1", layers)
	repo := w.url + "/v2/" + ociDistName + "/team/app"
	pullOCIImage(t, w.url, ociDistName+"/team/app", img, layers)

	missing := digest.FromString("not upstream")
	for _, c := range []struct{ path, pattern, code string }{
		{"/manifests/nope", "/team/app/manifests/nope$", oci.CodeManifestUnknown},
		{"/blobs/" + missing.String(), "/team/app/blobs/" + missing.String() + "$", oci.CodeBlobUnknown},
	} {
		for i := range 2 {
			a := ociGet(t, repo+c.path)
			if a.status != http.StatusNotFound {
				t.Fatalf("%s, ask %d: %s, want 404", c.path, i+1, a)
			}
			if code, _ := ociErr(t, a); code != c.code {
				t.Errorf("%s: code %s, want %s", c.path, code, c.code)
			}
		}
		if n := w.proxy.Count("", c.pattern); n != 1 {
			t.Errorf("%s asked twice cost the upstream %d requests, want 1", c.path, n)
		}
	}

	w.proxy.RefuseStatus(http.StatusInternalServerError)
	for i := range 5 {
		a := ociGet(t, fmt.Sprintf("%s/v2/%s/team/fail%d/manifests/v1", w.url, ociDistName, i))
		if a.status != http.StatusBadGateway {
			t.Fatalf("uncached pull %d with the upstream failing: %s, want 502", i, a)
		}
	}
	before := len(w.proxy.Requests())
	a := ociGet(t, w.url+"/v2/"+ociDistName+"/team/fail5/manifests/v1")
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("uncached pull after 5 failures: %s, want 503 (breaker open)", a)
	}
	if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("breaker open: Retry-After %q", a.header.Get("Retry-After"))
	}
	if code, msg := ociErr(t, a); code != oci.CodeUnavailable || !strings.Contains(msg, ociDistName) {
		t.Errorf("breaker open: %s %q, want UNAVAILABLE naming %s", code, msg, ociDistName)
	}
	if after := len(w.proxy.Requests()); after != before {
		t.Errorf("with the breaker open the upstream still got %d requests", after-before)
	}
	// The cached image is still served with the breaker open.
	wantOCIManifest(t, "cached manifest, breaker open", ociGet(t, repo+"/manifests/"+img.Manifest.Digest.String()), img.ManifestBytes)
	wantOCIBlob(t, "cached layer, breaker open", ociGet(t, repo+"/blobs/"+img.Layers[0].Digest.String()), layers[0])

	m := scrapeCacheMetrics(t, w.url)
	labels := `{protocol="oci",upstream="` + ociDistName + `"}`
	result := func(r string) string {
		return `unireg_cache_requests_total{protocol="oci",result="` + r + `",upstream="` + ociDistName + `"}`
	}
	for series, least := range map[string]float64{
		"unireg_cache_breaker_open" + labels:          1,
		"unireg_cache_upstream_errors_total" + labels: 5,
		// The blobs' bytes at least (manifests may be counted too).
		"unireg_cache_upstream_bytes_total" + labels: float64(img.Config.Size + img.Layers[0].Size),
		result("miss"):     3, // the manifest, the config, the layer
		result("negative"): 2, // the second ask of each missing object
		result("hit"):      1, // the cached manifest by digest
	} {
		if m[series] < least {
			t.Errorf("/metrics %s = %v, want at least %v", series, m[series], least)
		}
	}
	if m["unireg_cache_breaker_open"+labels] != 1 {
		t.Errorf("/metrics breaker_open = %v, want 1", m["unireg_cache_breaker_open"+labels])
	}
}

// Cached namespaces are read-only, even to a caller who may push anywhere:
// pushes, deletes and mounts into them get 403 DENIED, in both name forms,
// and the upstream sees no write. Local content elsewhere works as ever,
// local content that was in the namespace before it became cached stays
// readable, and a blob once cached mounts from the cached repository into
// a local one.
func TestCacheUpstreamNamespaceIsReadOnlyForAnyone(t *testing.T) {
	store := ociFSStore(t)
	admin := ociBasic("admin", "pw")
	authed := cachetest.WithAuthorization(func(string) string { return admin.Get("Authorization") })
	users := Config{Storage: store, Authenticator: userDB{"admin": "pw"}, Authorizer: allowAll{}}

	// Before the namespace is cached: an image pushed under it, locally.
	before := startOCICache(t, "other.test", "http://127.0.0.1:1", users)
	oldLayers := [][]byte{cachetest.RandomBytes(8 << 10)}
	oldImg := cachetest.PushImage(t, before.url, ociDistName+"/old/app", "v1", oldLayers, authed)
	before.srv.Close()

	w := newOCIUpstreamWorld(t, users)
	layers := [][]byte{cachetest.RandomBytes(16 << 10)}
	img := cachetest.PushImage(t, w.dist.URL, "team/app", "v1", layers)
	pullOCIImage(t, w.url, ociDistName+"/team/app", img, layers)
	pullOCIImage(t, w.url, ociDistName+"/old/app", oldImg, oldLayers)

	local := cachetest.PushImage(t, w.url, "local/app", "v1", [][]byte{cachetest.RandomBytes(8 << 10)}, authed)
	repo := w.url + "/v2/" + ociDistName + "/team/app"
	manifestType := http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}}
	for _, wr := range []struct {
		method, url string
		body        []byte
		header      http.Header
	}{
		{"POST", repo + "/blobs/uploads/", nil, nil},
		{"POST", repo + "/blobs/uploads/?digest=" + local.Layers[0].Digest.String(), []byte("x"), nil},
		{"POST", repo + "/blobs/uploads/?mount=" + local.Layers[0].Digest.String() + "&from=local/app", nil, nil},
		{"PUT", repo + "/manifests/v2", local.ManifestBytes, manifestType},
		{"PUT", repo + "/manifests/v1", local.ManifestBytes, manifestType},
		{"DELETE", repo + "/manifests/v1", nil, nil},
		{"DELETE", repo + "/manifests/" + img.Manifest.Digest.String(), nil, nil},
		{"DELETE", repo + "/blobs/" + img.Layers[0].Digest.String(), nil, nil},
		{"POST", w.url + "/v2/team/app/blobs/uploads/?ns=" + ociDistName, nil, nil},
		{"PUT", w.url + "/v2/team/app/manifests/v2?ns=" + ociDistName, local.ManifestBytes, manifestType},
		{"DELETE", w.url + "/v2/team/app/manifests/v1?ns=" + ociDistName, nil, nil},
		{"POST", w.url + "/v2/" + ociDistName + "/old/app/blobs/uploads/", nil, nil},
		{"DELETE", w.url + "/v2/" + ociDistName + "/old/app/manifests/v1", nil, nil},
	} {
		h := admin.Clone()
		for k, v := range wr.header {
			h[k] = v
		}
		a := ociSend(t, wr.method, wr.url, wr.body, h)
		if a.status != http.StatusForbidden {
			t.Errorf("%s %s: %s, want 403 DENIED", wr.method, strings.TrimPrefix(wr.url, w.url), a)
			continue
		}
		if code, msg := ociErr(t, a); code != oci.CodeDenied || !strings.Contains(msg, ociDistName) {
			t.Errorf("%s %s: %s %q, want DENIED naming the upstream", wr.method, strings.TrimPrefix(wr.url, w.url), code, msg)
		}
	}
	for _, r := range w.proxy.Requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Errorf("the upstream got a write: %s %s", r.Method, r.Path)
		}
	}
	// Nothing changed: the cached and the old image still pull whole.
	pullOCIImage(t, w.url, ociDistName+"/team/app", img, layers)
	pullOCIImage(t, w.url, ociDistName+"/old/app", oldImg, oldLayers)

	// Local content beside the cache works: pushed above, pulled back.
	if _, _, err := cachetest.FetchManifest(context.Background(), w.url, "local/app", "v1", authed); err != nil {
		t.Errorf("local image beside the cache: %v", err)
	}
	// A cached blob mounts into a local repository (once its fill has
	// linked it, which may be a little after its client had the bytes).
	d := img.Layers[0].Digest
	if !eventually(30*time.Second, func() bool {
		return ociStored(t, store, "repositories/"+ociDistName+"/team/app/_layers/sha256/"+d.Encoded())
	}) {
		t.Fatalf("the cached layer is not linked into its repository")
	}
	a := ociSend(t, http.MethodPost, w.url+"/v2/local/copy/blobs/uploads/?mount="+d.String()+"&from="+ociDistName+"/team/app", nil, admin)
	if a.status != http.StatusCreated {
		t.Fatalf("mount of a cached blob into a local repository: %s, want 201", a)
	}
	wantOCIBlob(t, "the mounted blob", ociSend(t, http.MethodGet, w.url+"/v2/local/copy/blobs/"+d.String(), nil, admin), layers[0])
}

// evilOCIUpstream is an upstream that lies about one blob: it serves a
// manifest naming layer digest of good, and for the layer's GET sends, by
// mode, other bytes of the same length ("wrong"), half of good under the
// full Content-Length ("short"), or good. Its tag "bad" is a manifest whose
// GET by digest answers other bytes than the digest HEAD named.
type evilOCIUpstream struct {
	srv                   *httptest.Server
	good                  []byte
	layer                 digest.Digest
	config                []byte
	manifest, badManifest []byte

	mu       sync.Mutex
	mode     string
	blobGets int
	requests []string // method, path and mode, for failure messages
}

func startEvilOCIUpstream(t *testing.T) *evilOCIUpstream {
	t.Helper()
	e := &evilOCIUpstream{good: cachetest.RandomBytes(256 << 10), config: []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)}
	e.layer = digest.FromBytes(e.good)
	e.manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		digest.FromBytes(e.config), len(e.config), e.layer, len(e.good)))
	e.badManifest = append(bytes.Clone(e.manifest), ' ')
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *evilOCIUpstream) setMode(m string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mode = m
}

func (e *evilOCIUpstream) layerGets() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.blobGets
}

func (e *evilOCIUpstream) log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.requests, "; ")
}

func (e *evilOCIUpstream) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.requests = append(e.requests, r.Method+" "+r.URL.Path+" ("+e.mode+")")
	e.mu.Unlock()
	const prefix = "/v2/evil/app/"
	writeManifest := func(body []byte, d digest.Digest) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodGet {
			w.Write(body)
		}
	}
	md := digest.FromBytes(e.manifest)
	switch p := r.URL.Path; {
	case p == "/v2/":
		w.Write([]byte("{}"))
	case p == prefix+"manifests/v1" || p == prefix+"manifests/"+md.String() && r.Method == http.MethodHead:
		writeManifest(e.manifest, md)
	case p == prefix+"manifests/bad" && r.Method == http.MethodHead:
		writeManifest(e.manifest, md)
	case p == prefix+"manifests/"+md.String():
		// A GET by digest (what the cache sends after a HEAD of a tag)
		// answers the tampered body until the mode is "good".
		e.mu.Lock()
		bad := e.mode != "good"
		e.mu.Unlock()
		if bad {
			writeManifest(e.badManifest, md)
		} else {
			writeManifest(e.manifest, md)
		}
	case p == prefix+"blobs/"+digest.FromBytes(e.config).String():
		w.Header().Set("Content-Length", strconv.Itoa(len(e.config)))
		w.Write(e.config)
	case p == prefix+"blobs/"+e.layer.String():
		w.Header().Set("Content-Length", strconv.Itoa(len(e.good)))
		w.Header().Set("Docker-Content-Digest", e.layer.String())
		if r.Method == http.MethodHead {
			return
		}
		e.mu.Lock()
		e.blobGets++
		mode := e.mode
		e.mu.Unlock()
		switch mode {
		case "wrong":
			w.Write(cachetest.RandomBytes(len(e.good)))
		case "short":
			w.Write(e.good[:len(e.good)/2]) // the server then closes the connection
		default:
			w.Write(e.good)
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"NAME_UNKNOWN","message":"no"}]}`))
	}
}

// A wrong or truncated upstream body is never cached: the client gets an
// error or a body that does not verify, nothing is stored, and the next
// pull asks the upstream again; once the upstream sends the right bytes
// they are stored and served from then on. A manifest that does not match
// the digest the upstream named is refused (502) and not stored either.
func TestCacheUpstreamNeverCachesAWrongOrTruncatedBody(t *testing.T) {
	evil := startEvilOCIUpstream(t)
	const name = "evil.test"
	c := startOCICache(t, name, evil.srv.URL, Config{})
	repo := c.url + "/v2/" + name + "/evil/app"
	linkKey := "repositories/" + name + "/evil/app/_layers/sha256/" + evil.layer.Encoded()

	// The manifest: by digest the upstream sends a tampered body.
	md := digest.FromBytes(evil.manifest)
	evil.setMode("wrong")
	for _, ref := range []string{"bad", md.String()} {
		a := ociGet(t, repo+"/manifests/"+ref)
		if a.status != http.StatusBadGateway {
			t.Errorf("manifest %s that does not match its digest: %s, want 502", ref, a)
		} else if code, msg := ociErr(t, a); code != oci.CodeUnavailable || !strings.Contains(msg, name) {
			t.Errorf("manifest %s: %s %q, want UNAVAILABLE naming the upstream", ref, code, msg)
		}
	}
	for _, key := range []string{
		"repositories/" + name + "/evil/app/_manifests/revisions/sha256/" + md.Encoded(),
		"repositories/" + name + "/evil/app/_manifests/tags/bad",
		"blobs/sha256/" + md.Encoded()[:2] + "/" + md.Encoded() + "/data",
	} {
		if ociStored(t, c.store, key) {
			t.Errorf("a manifest that did not verify left %s in storage", key)
		}
	}

	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	errorsSeries := `unireg_cache_upstream_errors_total{protocol="oci",upstream="` + name + `"}`
	for i, mode := range []string{"wrong", "short"} {
		evil.setMode(mode)
		failures := scrapeCacheMetrics(t, c.url)[errorsSeries]
		// A fresh connection: Go's client retries a GET whose reused
		// connection closes before an answer, which would be a second fill.
		resp, err := fresh.Get(repo + "/blobs/" + evil.layer.String())
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil && digest.FromBytes(body) == evil.layer {
				t.Fatalf("%s body: the client got a whole, verified blob", mode)
			}
		}
		// The client may have all its Content-Length bytes before the
		// download has ended: wait until the fill has failed (or, wrongly,
		// been stored) before looking at the storage.
		ended := eventually(30*time.Second, func() bool {
			return ociBlobStored(t, c.store, evil.layer) || scrapeCacheMetrics(t, c.url)[errorsSeries] > failures
		})
		if ociBlobStored(t, c.store, evil.layer) || ociStored(t, c.store, linkKey) {
			t.Fatalf("%s body: stored", mode)
		}
		if !ended {
			t.Fatalf("%s body: the download neither failed nor was stored in 30 s", mode)
		}
		if n := evil.layerGets(); n != i+1 {
			t.Fatalf("after the %s body the upstream saw %d GETs of the layer, want %d (asked again, nothing remembered); it was asked: %s", mode, n, i+1, evil.log())
		}
	}
	evil.setMode("good")
	wantOCIBlob(t, "the right body", ociGet(t, repo+"/blobs/"+evil.layer.String()), evil.good)
	if !eventually(30*time.Second, func() bool { return ociBlobStored(t, c.store, evil.layer) && ociStored(t, c.store, linkKey) }) {
		t.Fatalf("the verified blob is not stored 30 s after its pull")
	}
	wantOCIBlob(t, "the stored body", ociGet(t, repo+"/blobs/"+evil.layer.String()), evil.good)
	if n := evil.layerGets(); n != 3 {
		t.Errorf("the upstream saw %d GETs of the layer, want 3 (the stored blob is served from storage)", n)
	}
	wantOCIManifest(t, "the right manifest", ociGet(t, repo+"/manifests/v1"), evil.manifest)
}

// Fills per identity: with a bound of 1, a second cold pull of another
// blob by the same (anonymous) identity is refused with 429 while the
// first download runs, and the upstream is not asked for it; a second
// client of the same blob joins the download instead (no 429, one GET).
func TestCacheUpstreamFillsPerIdentityCountDownloadsNotClients(t *testing.T) {
	w := newOCIUpstreamWorld(t, Config{Limits: Limits{CacheFillsPerIdentity: 1}})
	layers := [][]byte{cachetest.RandomBytes(1 << 20), cachetest.RandomBytes(1 << 20)}
	img := cachetest.PushImage(t, w.dist.URL, "team/app", "v1", layers)
	repo := w.url + "/v2/" + ociDistName + "/team/app"
	a, b := img.Layers[0].Digest, img.Layers[1].Digest
	// Two bytes flow, so that the cache sends its first client the
	// headers with the first byte (it holds back the last byte received
	// until the blob is verified); the rest is held.
	w.proxy.Pace("/blobs/")
	w.proxy.Allow(2)

	type result struct {
		status int
		body   []byte
		err    error
	}
	start := func(d digest.Digest) (status chan int, done chan result) {
		status, done = make(chan int, 1), make(chan result, 1)
		go func() {
			resp, err := http.Get(repo + "/blobs/" + d.String())
			if err != nil {
				status <- 0
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			status <- resp.StatusCode
			body, err := io.ReadAll(resp.Body)
			done <- result{resp.StatusCode, body, err}
		}()
		return status, done
	}
	waitStatus := func(what string, ch chan int) int {
		select {
		case s := <-ch:
			return s
		case <-time.After(30 * time.Second): // against hanging only
			w.proxy.Pass()
			t.Fatalf("%s: no answer in 30 s", what)
			return 0
		}
	}
	firstStatus, firstDone := start(a)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.proxy.WaitCount(ctx, "GET", "/blobs/"+a.String(), 1); err != nil {
		t.Fatal(err)
	}
	if s := waitStatus("first client", firstStatus); s != http.StatusOK {
		w.proxy.Pass()
		t.Fatalf("first client: %d", s)
	}
	joinStatus, joinDone := start(a)
	joined := waitStatus("second client of the same blob", joinStatus)

	other := ociGet(t, repo+"/blobs/"+b.String())
	if other.status != http.StatusTooManyRequests {
		t.Errorf("a second download by the same identity: %s, want 429", other)
	} else if code, _ := ociErr(t, other); code != oci.CodeTooManyRequests {
		t.Errorf("a second download by the same identity: code %s, want TOOMANYREQUESTS", code)
	}
	if n := w.proxy.Count("GET", "/blobs/"+b.String()); n != 0 {
		t.Errorf("the refused download still asked the upstream (%d GETs)", n)
	}

	w.proxy.Pass()
	if r := <-firstDone; r.err != nil || !bytes.Equal(r.body, layers[0]) {
		t.Errorf("first client: %d bytes, %v", len(r.body), r.err)
	}
	if joined != http.StatusOK {
		r := <-joinDone
		t.Errorf("a second client of the blob being downloaded: %d %s, want 200 (it joins the download)", joined, bytes.TrimSpace(r.body))
	} else if r := <-joinDone; r.err != nil || !bytes.Equal(r.body, layers[0]) {
		t.Errorf("second client of the same blob: %d bytes, %v", len(r.body), r.err)
	}
	if n := w.proxy.Count("GET", "/blobs/"+a.String()); n != 1 {
		t.Errorf("the upstream saw %d GETs of the blob two clients pulled, want 1", n)
	}
	// Once the first download has ended (its clients may have all their
	// bytes a little before), the identity may start another.
	var after ociAnswer
	eventually(30*time.Second, func() bool {
		after = ociGet(t, repo+"/blobs/"+b.String())
		return after.status != http.StatusTooManyRequests
	})
	wantOCIBlob(t, "the other blob, once the first download has ended", after, layers[1])
}

// The Docker token flow against a real challenge (a unireg upstream with
// token auth): the cache logs in with its credentials, asks the realm once
// for the repository's pull token and sends it on every request; wrong
// credentials make a pull fail with a 502 naming the upstream, and nothing
// is stored.
func TestCacheUpstreamTokenFlowLogsInOncePerRepository(t *testing.T) {
	up, err := New(context.Background(), Config{Storage: inmemory.New(), Authenticator: userDB{"up": "pw"}, Authorizer: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)
	layers := [][]byte{cachetest.RandomBytes(32 << 10), cachetest.RandomBytes(16 << 10), cachetest.RandomBytes(8 << 10)}
	img := cachetest.PushImage(t, upstream.URL, "team/app", "v1", layers,
		cachetest.WithAuthorization(func(string) string { return ociBasic("up", "pw").Get("Authorization") }))

	proxy := cachetest.NewProxy(t, upstream.URL)
	var logins atomic.Int32
	c := startOCICache(t, "up.test", proxy.URL(), Config{OCI: OCIConfig{Settings: oci.Settings{Upstreams: []oci.Upstream{{
		Name: "up.test", URL: proxy.URL(),
		Credentials: func() (string, string, error) { logins.Add(1); return "up", "pw", nil },
	}}}}})
	pullOCIImage(t, c.url, "up.test/team/app", img, layers)

	if n := proxy.Count("GET", "^/token$"); n != 1 {
		t.Errorf("pulling one image cost %d token requests, want 1", n)
	}
	if logins.Load() < 1 {
		t.Errorf("the credentials were never read")
	}
	for _, r := range proxy.Requests() {
		if strings.HasPrefix(r.Path, "/v2/team/app/") && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			t.Errorf("%s %s went to the upstream without the token", r.Method, r.Path)
		}
		if r.Path == "/token" && !strings.Contains(r.RawQuery, "scope=repository%3Ateam%2Fapp%3Apull") && !strings.Contains(r.RawQuery, "scope=repository:team/app:pull") {
			t.Errorf("token request for %q, want the pull scope of team/app", r.RawQuery)
		}
	}

	// Wrong credentials: the upstream's refusal is a gateway error that
	// names the upstream, and nothing is stored.
	wrong := startOCICache(t, "up.test", upstream.URL, Config{OCI: OCIConfig{Settings: oci.Settings{Upstreams: []oci.Upstream{{
		Name: "up.test", URL: upstream.URL,
		Credentials: func() (string, string, error) { return "up", "wrong", nil },
	}}}}})
	for _, path := range []string{"/manifests/v1", "/blobs/" + img.Layers[0].Digest.String()} {
		a := ociGet(t, wrong.url+"/v2/up.test/team/app"+path)
		if a.status != http.StatusBadGateway {
			t.Errorf("%s with wrong upstream credentials: %s, want 502", path, a)
			continue
		}
		if code, msg := ociErr(t, a); code != oci.CodeUnavailable || !strings.Contains(msg, "up.test") {
			t.Errorf("%s with wrong upstream credentials: %s %q", path, code, msg)
		} else {
			t.Logf("wrong credentials: %q", msg)
		}
	}
	if ociBlobStored(t, wrong.store, img.Layers[0].Digest) {
		t.Errorf("a blob was stored without the upstream's consent")
	}
}
