package cachetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// testTimeout bounds each wait of these tests so that a broken proxy fails
// them instead of hanging them; no assertion depends on it.
const testTimeout = 30 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestPushedImageIsFetchedBackThroughTheProxyAndCounted(t *testing.T) {
	up := StartDistribution(t)
	layers := [][]byte{RandomBytes(100 << 10), RandomBytes(3 << 10)}
	img := PushImage(t, up.URL, "library/nginx", "1.27", layers)
	proxy := NewProxy(t, up.URL)
	ctx := testContext(t)

	body, desc, err := FetchManifest(ctx, proxy.URL(), "library/nginx", "1.27")
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != img.Manifest.Digest || !bytes.Equal(body, img.ManifestBytes) {
		t.Fatalf("manifest by tag: digest %s, pushed %s", desc.Digest, img.Manifest.Digest)
	}
	for i, l := range img.Layers {
		got, err := FetchBlob(ctx, proxy.URL(), "library/nginx", l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, layers[i]) {
			t.Fatalf("layer %d differs from what was pushed", i)
		}
	}

	if n := proxy.Count("GET", "^/v2/library/nginx/manifests/"); n != 1 {
		t.Errorf("manifest GETs counted: %d, want 1", n)
	}
	if n := proxy.Count("GET", "/blobs/sha256:"); n != 2 {
		t.Errorf("blob GETs counted: %d, want 2", n)
	}
	if n := proxy.Count("", ""); n != 3 {
		t.Errorf("requests counted: %d, want 3: %+v", n, proxy.Requests())
	}
	wantBytesSent(t, ctx, proxy, img.Manifest.Size+img.Layers[0].Size+img.Layers[1].Size, "manifest and both layers")
	proxy.Reset()
	if proxy.BytesSent() != 0 || len(proxy.Requests()) != 0 {
		t.Errorf("after Reset: %d bytes, %d requests", proxy.BytesSent(), len(proxy.Requests()))
	}
}

func TestPushThroughTheProxySendsTheAuthorizationAndFollowsUploadLocations(t *testing.T) {
	up := StartDistribution(t)
	proxy := NewProxy(t, up.URL)
	// Distribution ignores the header; the proxy shows it was sent. The
	// upload Location names the proxy, so the PUT goes through it too.
	img := PushImage(t, proxy.URL(), "team/app", "v1", [][]byte{RandomBytes(1000)}, WithBearer("secret-token"))
	for _, r := range proxy.Requests() {
		if got := r.Header.Get("Authorization"); got != "Bearer secret-token" {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, got)
		}
	}
	if n := proxy.Count("PUT", "^/v2/team/app/blobs/uploads/"); n != 2 {
		t.Errorf("blob upload PUTs through the proxy: %d, want 2 (layer, config)", n)
	}
	if _, err := FetchBlob(testContext(t), up.URL, "team/app", img.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
}

func TestIndexPlatformCostsThatPlatformsBytes(t *testing.T) {
	up := StartDistribution(t)
	ix := PushIndex(t, up.URL, "multi", "latest", 4, 10<<10)
	proxy := NewProxy(t, up.URL)
	ctx := testContext(t)

	body, desc, err := FetchManifest(ctx, proxy.URL(), "multi", "latest")
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != ix.Index.Digest || !bytes.Equal(body, ix.IndexBytes) {
		t.Fatalf("index digest %s, pushed %s", desc.Digest, ix.Index.Digest)
	}
	seen := map[digest.Digest]bool{}
	for _, p := range ix.Platforms {
		for _, d := range []digest.Digest{p.Manifest.Digest, p.Config.Digest, p.Layers[0].Digest} {
			if seen[d] {
				t.Fatalf("platforms share %s", d)
			}
			seen[d] = true
		}
	}
	arm := ix.Platforms[1]
	if arm.Manifest.Platform == nil || arm.Manifest.Platform.Architecture != "arm64" {
		t.Fatalf("platform 1: %+v", arm.Manifest.Platform)
	}
	if _, _, err := FetchManifest(ctx, proxy.URL(), "multi", arm.Manifest.Digest.String()); err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{arm.Config.Digest, arm.Layers[0].Digest} {
		if _, err := FetchBlob(ctx, proxy.URL(), "multi", d); err != nil {
			t.Fatal(err)
		}
	}
	wantBytesSent(t, ctx, proxy, ix.Index.Size+arm.Size(), "the index and one platform")
}

// wantBytesSent checks that the proxy sent exactly want body bytes. The
// proxy counts a chunk just after writing it, so its client may have read
// the last chunk before it is counted: wait for the count to reach want
// first (a count past want fails at once).
func wantBytesSent(t *testing.T, ctx context.Context, proxy *Proxy, want int64, what string) {
	t.Helper()
	if err := proxy.WaitBytesSent(ctx, want); err != nil {
		t.Errorf("BytesSent: %v (%s)", err, what)
		return
	}
	if got := proxy.BytesSent(); got != want {
		t.Errorf("BytesSent %d, want %d (%s)", got, want, what)
	}
}

type fetchResult struct {
	body []byte
	err  error
}

func fetchAsync(ctx context.Context, base, repo, ref string) <-chan fetchResult {
	done := make(chan fetchResult, 1)
	go func() {
		body, _, err := FetchManifest(ctx, base, repo, ref)
		done <- fetchResult{body, err}
	}()
	return done
}

func TestHungRequestsWaitUntilTheModeChanges(t *testing.T) {
	up := StartDistribution(t)
	img := PushImage(t, up.URL, "app", "v1", nil)
	proxy := NewProxy(t, up.URL)
	ctx := testContext(t)

	proxy.Hang()
	done := fetchAsync(ctx, proxy.URL(), "app", "v1")
	if err := proxy.WaitHanging(ctx, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		t.Fatalf("a hung request was answered: %v", r.err)
	default:
	}
	if n := proxy.Count("GET", "/manifests/v1$"); n != 1 {
		t.Errorf("hung requests counted: %d, want 1", n)
	}
	proxy.Pass()
	if r := <-done; r.err != nil || !bytes.Equal(r.body, img.ManifestBytes) {
		t.Fatalf("after Pass the hung request got %q, %v", r.body, r.err)
	}
}

func TestRequestsStillHungWhenTheTestEndsAreClosed(t *testing.T) {
	up := StartDistribution(t)
	PushImage(t, up.URL, "app", "v1", nil)
	ctx := testContext(t)
	var done <-chan fetchResult
	t.Run("hang", func(t *testing.T) {
		proxy := NewProxy(t, up.URL)
		proxy.Hang()
		done = fetchAsync(ctx, proxy.URL(), "app", "v1")
		if err := proxy.WaitHanging(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}) // the proxy's cleanup must end the request, or this test times out
	if r := <-done; r.err == nil || errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("the hung request ended with %v, want a closed connection", r.err)
	}
}

func TestRefuseAnswersTheStatusAndDropClosesTheConnection(t *testing.T) {
	up := StartDistribution(t)
	img := PushImage(t, up.URL, "app", "v1", nil)
	proxy := NewProxy(t, up.URL)
	ctx := testContext(t)

	proxy.RefuseStatus(http.StatusServiceUnavailable)
	_, _, err := FetchManifest(ctx, proxy.URL(), "app", "v1")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("refused: %v, want a 503", err)
	}
	proxy.RefuseStatus(http.StatusTooManyRequests)
	if _, _, err := FetchManifest(ctx, proxy.URL(), "app", "v1"); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("refused: %v, want a 429", err)
	}
	if got := proxy.BytesSent(); got != 0 {
		t.Errorf("BytesSent %d after refusals, want 0 (nothing came from the upstream)", got)
	}

	proxy.Drop()
	_, _, err = FetchManifest(ctx, proxy.URL(), "app", "v1")
	if err == nil || strings.Contains(err.Error(), "GET ") {
		t.Fatalf("dropped: %v, want a transport error (no answer)", err)
	}

	proxy.Pass()
	if body, _, err := FetchManifest(ctx, proxy.URL(), "app", "v1"); err != nil || !bytes.Equal(body, img.ManifestBytes) {
		t.Fatalf("after Pass: %v", err)
	}
	if n := proxy.Count("GET", "/manifests/v1$"); n < 4 {
		t.Errorf("requests counted in every mode: %d, want at least 4", n)
	}
}

func getBlob(t *testing.T, ctx context.Context, base, repo string, dg digest.Digest) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+dg.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET blob: %s", resp.Status)
	}
	return resp
}

func TestPacedBodiesGoOutOnlyAsFarAsAllowed(t *testing.T) {
	up := StartDistribution(t)
	blob := RandomBytes(1 << 20)
	desc := PushBlob(t, up.URL, "big", blob)
	PushImage(t, up.URL, "big", "v1", nil)
	proxy := NewProxy(t, up.URL)
	ctx := testContext(t)

	proxy.Pace("/blobs/")
	resp := getBlob(t, ctx, proxy.URL(), "big", desc.Digest) // headers are not held back
	if resp.ContentLength != desc.Size {
		t.Fatalf("Content-Length %d, want %d", resp.ContentLength, desc.Size)
	}
	proxy.Allow(1000)
	first := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	if err := proxy.WaitBytesSent(ctx, 1000); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first, blob[:1000]) || proxy.BytesSent() != 1000 {
		t.Fatalf("after Allow(1000): the client read %d bytes, the proxy sent %d", len(first), proxy.BytesSent())
	}
	proxy.Allow(desc.Size - 1000)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(rest, blob[1000:]) {
		t.Fatalf("rest of the blob: %d bytes, %v", len(rest), err)
	}
	wantBytesSent(t, ctx, proxy, desc.Size, "the whole blob")
	// Paths that do not match flow freely, with no allowance left. (Checked
	// last: the proxy counts an answer's bytes just after the client may
	// have read them, so an earlier answer could still be counting.)
	if _, _, err := FetchManifest(ctx, proxy.URL(), "big", "v1"); err != nil {
		t.Fatal(err)
	}

	proxy.Pass()
	if _, err := FetchBlob(ctx, proxy.URL(), "big", desc.Digest); err != nil {
		t.Fatalf("after Pass: %v", err)
	}
}

func TestDropCutsOffAnAnswerInProgress(t *testing.T) {
	up := StartDistribution(t)
	blob := RandomBytes(1 << 20)
	desc := PushBlob(t, up.URL, "big", blob)
	proxy := NewProxy(t, up.URL)
	ctx := testContext(t)

	proxy.Pace("")
	proxy.Allow(5000)
	resp := getBlob(t, ctx, proxy.URL(), "big", desc.Digest)
	if _, err := io.ReadFull(resp.Body, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	proxy.Drop()
	rest, err := io.ReadAll(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after %d more bytes the body ended with %v, want it cut off (unexpected EOF)", len(rest), err)
	}
	if got := proxy.BytesSent(); got >= desc.Size {
		t.Errorf("BytesSent %d, want less than the blob's %d", got, desc.Size)
	}
}
