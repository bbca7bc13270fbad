package main

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// The crash test: many clients push blobs (whole and in chunks), manifests
// and npm packages while the server is killed with SIGKILL at a random
// moment; after a restart on the same storage, everything that was
// acknowledged must be there and verify, nothing half-written may be
// visible, and the store must be consistent. Several kill points in a row,
// on the filesystem here and on S3 in the S3 run (make unit-s3).

// crashLedger records what the server acknowledged, and what was attempted.
type crashLedger struct {
	mu        sync.Mutex
	blobs     map[string]string    // digest -> repository, acknowledged
	blobAt    map[string]time.Time // digest -> when its upload was acknowledged
	inImages  map[string]bool      // digests of blobs an acknowledged manifest references
	attempted map[string]string    // digest -> repository, every blob tried
	manifests map[string]string    // repository:tag -> manifest digest, acknowledged
	versions  map[string]string    // package@version -> integrity, acknowledged
	packages  map[string]bool      // every package tried
	repos     map[string]bool
}

func newCrashLedger() *crashLedger {
	return &crashLedger{blobs: map[string]string{}, blobAt: map[string]time.Time{}, inImages: map[string]bool{}, attempted: map[string]string{}, manifests: map[string]string{},
		versions: map[string]string{}, packages: map[string]bool{}, repos: map[string]bool{}}
}

func (l *crashLedger) record(f func(l *crashLedger)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

type crashClient struct {
	base   string
	http   *http.Client
	ledger *crashLedger
	rnd    *rand.Rand
	worker int
}

// do sends a request and reads the whole answer: a request counts as
// acknowledged only when its success status and body arrived.
func (c *crashClient) do(ctx context.Context, method, path string, body []byte, header map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func (c *crashClient) randomBytes(max int) []byte {
	b := make([]byte, 1+c.rnd.IntN(max))
	for i := range b {
		b[i] = byte(c.rnd.Uint32())
	}
	return b
}

// pushBlob uploads data to repo, whole or in chunks, and records the
// acknowledgement.
func (c *crashClient) pushBlob(ctx context.Context, repo string, data []byte) bool {
	d := digest.FromBytes(data).String()
	c.ledger.record(func(l *crashLedger) { l.attempted[d] = repo; l.repos[repo] = true })
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	var ok bool
	if c.rnd.IntN(2) == 0 {
		resp, _, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d, data, octet)
		ok = err == nil && resp.StatusCode == http.StatusCreated
	} else {
		resp, _, err := c.do(ctx, "POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			return false
		}
		loc := resp.Header.Get("Location")
		for off := 0; off < len(data); {
			end := min(len(data), off+1+c.rnd.IntN(len(data)))
			resp, _, err := c.do(ctx, "PATCH", loc, data[off:end], map[string]string{
				"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("%d-%d", off, end-1)})
			if err != nil || resp.StatusCode != http.StatusAccepted {
				return false
			}
			loc, off = resp.Header.Get("Location"), end
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		resp, _, err = c.do(ctx, "PUT", loc+sep+"digest="+d, nil, nil)
		ok = err == nil && resp.StatusCode == http.StatusCreated
	}
	if ok {
		c.ledger.record(func(l *crashLedger) { l.blobs[d], l.blobAt[d] = repo, time.Now() })
	}
	return ok
}

// pushImage pushes a config and a layer, then a manifest under a new tag.
func (c *crashClient) pushImage(ctx context.Context, n int) {
	repo := fmt.Sprintf("crash/w%d", c.worker%3)
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","worker":%d,"n":%d}`, c.worker, n))
	layer := c.randomBytes(256 << 10)
	if !c.pushBlob(ctx, repo, config) || !c.pushBlob(ctx, repo, layer) {
		return
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(config), "size": len(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}},
	})
	tag := fmt.Sprintf("w%d-%d", c.worker, n)
	resp, _, err := c.do(ctx, "PUT", "/v2/"+repo+"/manifests/"+tag, manifest,
		map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
	if err == nil && resp.StatusCode == http.StatusCreated {
		c.ledger.record(func(l *crashLedger) {
			l.manifests[repo+":"+tag] = digest.FromBytes(manifest).String()
			l.inImages[digest.FromBytes(config).String()], l.inImages[digest.FromBytes(layer).String()] = true, true
		})
	}
}

// publish publishes a new version of one of a few packages.
func (c *crashClient) publish(ctx context.Context, n int) {
	name := fmt.Sprintf("crash-pkg-%d", c.worker%3)
	version := fmt.Sprintf("1.%d.%d", c.worker, n)
	c.ledger.record(func(l *crashLedger) { l.packages[name] = true })
	tgz := c.randomBytes(128 << 10)
	sum := sha512.Sum512(tgz)
	integrity := "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	file := name + "-" + version + ".tgz"
	body, _ := json.Marshal(map[string]any{
		"_id": name, "name": name, "dist-tags": map[string]string{"latest": version},
		"versions": map[string]any{version: map[string]any{"name": name, "version": version,
			"dist": map[string]any{"integrity": integrity, "tarball": c.base + "/npm/" + name + "/-/" + file}}},
		"_attachments": map[string]any{file: map[string]any{"content_type": "application/octet-stream",
			"data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz)}},
	})
	resp, _, err := c.do(ctx, "PUT", "/npm/"+name, body, map[string]string{"Content-Type": "application/json"})
	if err == nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated) {
		c.ledger.record(func(l *crashLedger) { l.versions[name+"@"+version] = integrity })
	}
}

// crashGCGrace is the collector's grace in the crash test: short enough
// that the blobs of pushes killed before their manifest are collected
// while the traffic and the kills go on.
const crashGCGrace = 2 * time.Second

// The crash test runs with the collector on, every 300 ms: killed in the
// middle of a collection too, the store must keep everything acknowledged.
// The lease of a killed collector blocks the next server for its TTL only.
var crashServerArgs = []string{"--anonymous", "*", "--gc-interval", "300ms", "--gc-grace", crashGCGrace.String(), "--gc-lease-ttl", "900ms"}

func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts the server several times")
	}
	dataDir := t.TempDir()
	ledger := newCrashLedger()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 1))
	const rounds, workers = 5, 6
	for round := range rounds {
		s := startServer(t, dataDir, crashServerArgs...)
		if round > 0 {
			checkCrashedStore(t, s.url, ledger, round)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := &crashClient{base: s.url, http: &http.Client{Timeout: time.Minute}, ledger: ledger,
					rnd: rand.New(rand.NewPCG(seed, uint64(round*workers+w+2))), worker: w}
				for n := 0; ctx.Err() == nil; n++ {
					if n%2 == 1 {
						c.publish(ctx, round*1000+n)
					} else {
						c.pushImage(ctx, round*1000+n)
					}
				}
			}()
		}
		// Kill at a random point of the traffic, with no warning.
		time.Sleep(time.Duration(500+rnd.IntN(2500)) * time.Millisecond)
		s.stop() // SIGKILL
		cancel()
		wg.Wait()
	}
	s := startServer(t, dataDir, crashServerArgs...)
	checkCrashedStore(t, s.url, ledger, rounds)
	time.Sleep(crashGCGrace + time.Second) // the last kills' leftovers age, and are collected
	checkCrashedStore(t, s.url, ledger, rounds)
	if !strings.Contains(s.logs.String(), `"msg":"gc run"`) {
		t.Fatalf("the collector never ran:\n%s", s.logs.String())
	}
	t.Logf("the last server's collector: %d runs that deleted something", len(regexp.MustCompile(`"msg":"gc run".*"objects":[1-9]`).FindAllString(s.logs.String(), -1)))
	if len(ledger.manifests) == 0 || len(ledger.versions) == 0 {
		t.Fatalf("the clients got nothing acknowledged (%d manifests, %d versions): the test proves nothing", len(ledger.manifests), len(ledger.versions))
	}
	t.Logf("after %d kills: %d blobs, %d manifests, %d npm versions acknowledged and verified; %d blobs attempted",
		rounds, len(ledger.blobs), len(ledger.manifests), len(ledger.versions), len(ledger.attempted))
}

// checkCrashedStore verifies the store after a kill.
func checkCrashedStore(t *testing.T, base string, l *crashLedger, round int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	get := func(path string) (int, []byte) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("after kill %d: GET %s: %v", round, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("after kill %d: GET %s: %v", round, path, err)
		}
		return resp.StatusCode, b
	}
	// Every blob ever attempted is either absent or whole: what was
	// acknowledged must be there.
	for d, repo := range l.attempted {
		code, b := get("/v2/" + repo + "/blobs/" + d)
		_, acked := l.blobs[d]
		switch {
		case code == http.StatusOK && digest.FromBytes(b).String() != d:
			t.Errorf("after kill %d: blob %s in %s is visible but half-written (%d bytes)", round, d, repo, len(b))
		case code != http.StatusOK && acked && !l.inImages[d] && time.Since(l.blobAt[d]) > crashGCGrace:
			// Nothing references it and its grace is over: the collector may take it.
		case code != http.StatusOK && acked:
			t.Errorf("after kill %d: acknowledged blob %s in %s is lost (%d)", round, d, repo, code)
		case code != http.StatusOK && code != http.StatusNotFound:
			t.Errorf("after kill %d: blob %s: %d", round, d, code)
		}
	}
	for ref, want := range l.manifests {
		repo, tag, _ := strings.Cut(ref, ":")
		code, b := get("/v2/" + repo + "/manifests/" + tag)
		if code != http.StatusOK || digest.FromBytes(b).String() != want {
			t.Errorf("after kill %d: acknowledged manifest %s: %d, digest %s, want %s", round, ref, code, digest.FromBytes(b), want)
		}
	}
	// Consistency: every tag of every repository resolves to a manifest
	// whose blobs are all there.
	for repo := range l.repos {
		code, b := get("/v2/" + repo + "/tags/list")
		if code == http.StatusNotFound {
			continue
		}
		var list struct{ Tags []string }
		if code != http.StatusOK || json.Unmarshal(b, &list) != nil {
			t.Fatalf("after kill %d: tags of %s: %d %s", round, repo, code, b)
		}
		for _, tag := range list.Tags {
			code, b := get("/v2/" + repo + "/manifests/" + tag)
			if code != http.StatusOK {
				t.Errorf("after kill %d: tag %s:%s points at a missing manifest (%d)", round, repo, tag, code)
				continue
			}
			var m struct {
				Config struct{ Digest string }
				Layers []struct{ Digest string }
			}
			json.Unmarshal(b, &m)
			for _, d := range append([]string{m.Config.Digest}, layerDigests(m.Layers)...) {
				if code, blob := get("/v2/" + repo + "/blobs/" + d); code != http.StatusOK || digest.FromBytes(blob).String() != d {
					t.Errorf("after kill %d: %s:%s references blob %s, which is %d", round, repo, tag, d, code)
				}
			}
		}
	}
	// npm: every acknowledged version is there; every version a packument
	// lists has its tarball, matching its integrity.
	for pkg := range l.packages {
		code, b := get("/npm/" + pkg)
		if code == http.StatusNotFound {
			for v := range l.versions {
				if strings.HasPrefix(v, pkg+"@") {
					t.Errorf("after kill %d: package %s lost, with acknowledged version %s", round, pkg, v)
				}
			}
			continue
		}
		var doc struct {
			Versions map[string]struct {
				Dist struct{ Integrity, Tarball string }
			}
			DistTags map[string]string `json:"dist-tags"`
		}
		if code != http.StatusOK || json.Unmarshal(b, &doc) != nil {
			t.Fatalf("after kill %d: packument of %s: %d %.200s", round, pkg, code, b)
		}
		for v, meta := range doc.Versions {
			path := meta.Dist.Tarball[strings.Index(meta.Dist.Tarball, "/npm/"):]
			code, tgz := get(path)
			sum := sha512.Sum512(tgz)
			if code != http.StatusOK || "sha512-"+base64.StdEncoding.EncodeToString(sum[:]) != meta.Dist.Integrity {
				t.Errorf("after kill %d: %s@%s is listed but its tarball is %d / does not match its integrity", round, pkg, v, code)
			}
		}
		for tag, v := range doc.DistTags {
			if _, ok := doc.Versions[v]; !ok {
				t.Errorf("after kill %d: %s dist-tag %s points at missing version %s", round, pkg, tag, v)
			}
		}
		for v, integrity := range l.versions {
			name, version, _ := strings.Cut(v, "@")
			if name != pkg {
				continue
			}
			if got, ok := doc.Versions[version]; !ok || got.Dist.Integrity != integrity {
				t.Errorf("after kill %d: acknowledged %s is missing or changed", round, v)
			}
		}
	}
}

func layerDigests(layers []struct{ Digest string }) []string {
	var out []string
	for _, l := range layers {
		out = append(out, l.Digest)
	}
	return out
}
