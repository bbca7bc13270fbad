package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/s3"
	"github.com/unireg/unireg/registry/storage/storagetest"
)

// The stress test: writers push images that share base layers,
// move tags and delete manifests by digest while the collector runs every
// second with a short grace, and a verifier pulls every live tag after
// each collection. No live tag may lose a blob, no push may fail, and once
// the writers stop and the grace has passed, the store holds about what
// the live tags reference.

// gcStress is one stress run's knobs.
type gcStress struct {
	writers  int
	repos    int
	tags     int           // tags each writer owns in each repository
	run      time.Duration // how long the writers write
	grace    time.Duration
	interval time.Duration // pause between collections
}

func TestGCStressFilesystem(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test")
	}
	runGCStress(t, nil, gcStress{writers: 4, repos: 3, tags: 2, run: 20 * time.Second, grace: 2 * time.Second, interval: time.Second})
}

// On S3 an object's time is cut to the second (a HEAD's Last-Modified);
// the collector's gc.TimeSpare covers that, so the grace is the same as
// on the filesystem. MinIO is slower: fewer operations fit in the time.
func TestGCStressS3(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test")
	}
	runGCStress(t, gcS3Store(t, "gcstress"), gcStress{writers: 4, repos: 3, tags: 2, run: 20 * time.Second, grace: 2 * time.Second, interval: time.Second})
}

// gcS3Store is a store under the prefix "registry" of a fresh bucket of
// the test's MinIO (skipping t without one).
func gcS3Store(t testing.TB, bucketPrefix string) storage.Driver {
	t.Helper()
	endpoint, accessKey, secretKey := storagetest.MinIO(t)
	d, err := s3.New(context.Background(), s3.Options{
		Endpoint: endpoint, Bucket: bucketPrefix + "-" + strings.ToLower(rand.Text()[:12]), Prefix: "registry",
		AccessKey: accessKey, SecretKey: secretKey, CreateBucket: true,
	})
	if err != nil {
		t.Fatalf("S3 driver on %s: %v", endpoint, err)
	}
	return d
}

// stressEntry is what a writer knows of one of its tags: the digest the
// registry acknowledged, and a version bumped before and after every change
// so the verifier can tell a tag that moved under it from a lost one.
type stressEntry struct {
	repo, tag string
	digest    v1.Hash
	version   uint64 // from the ledger's counter: a tag deleted and pushed again never repeats one
	busy      bool   // a change is in flight
	suspect   bool   // a change failed: the registry's state is unknown
}

// stressLedger is the writers' record of every live tag, every image they
// pushed, and what happened to each digest when.
type stressLedger struct {
	start time.Time

	mu      sync.Mutex
	seq     uint64
	entries map[string]*stressEntry // repo:tag
	images  map[v1.Hash]v1.Image
	history map[string][]string // by hex digest: writer events
	counts  map[string]int
	fails   []func() string // rendered at the end, with all the histories
	maxPush time.Duration
}

// bump gives e a version no entry had before; l.mu is held.
func (l *stressLedger) bump(e *stressEntry) {
	l.seq++
	e.version = l.seq
}

func (l *stressLedger) since() string { return fmt.Sprintf("+%.3fs", time.Since(l.start).Seconds()) }

func (l *stressLedger) note(d v1.Hash, format string, args ...any) {
	l.mu.Lock()
	l.history[d.Hex] = append(l.history[d.Hex], l.since()+" "+fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *stressLedger) fail(format string, args ...any) {
	l.mu.Lock()
	msg := fmt.Sprintf(format, args...)
	l.fails = append(l.fails, func() string { return msg })
	l.mu.Unlock()
}

func (l *stressLedger) count(what string) {
	l.mu.Lock()
	l.counts[what]++
	l.mu.Unlock()
}

// stressTrace records what the store saw happen to each blob (its content,
// ref, quarantine copy, links), by hex digest, for failure reports.
type stressTrace struct {
	storage.Driver
	ledger *stressLedger

	mu     sync.Mutex
	events map[string][]string
}

var hexDigest = regexp.MustCompile(`[0-9a-f]{64}`)

// uploadID finds an upload session's id in a key or a log line.
var uploadID = regexp.MustCompile(`uploads/([0-9a-f]{32})\b`)

func (s *stressTrace) record(op, key string, err error) {
	var hex string
	switch {
	case strings.HasPrefix(key, "uploads/"):
		if m := uploadID.FindStringSubmatch(key + "/"); m != nil {
			hex = m[1]
		}
	case strings.HasPrefix(key, "blobs/"), strings.HasPrefix(key, "gc/quarantine/"), strings.Contains(key, "/_layers/"):
		hex = hexDigest.FindString(key)
	}
	if hex == "" {
		return
	}
	line := s.ledger.since() + " " + op + " " + key
	if err != nil {
		line += " (" + err.Error() + ")"
	}
	s.mu.Lock()
	s.events[hex] = append(s.events[hex], line)
	s.mu.Unlock()
}

func (s *stressTrace) Put(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	info, err := s.Driver.Put(ctx, key, r, cond)
	s.record("put", key, err)
	return info, err
}

func (s *stressTrace) Move(ctx context.Context, src, dst string) error {
	err := s.Driver.Move(ctx, src, dst)
	s.record("move-from", src, err)
	s.record("move-to", dst, err)
	return err
}

func (s *stressTrace) Delete(ctx context.Context, key string) error {
	err := s.Driver.Delete(ctx, key)
	s.record("delete", key, err)
	return err
}

func (s *stressTrace) DeleteAll(ctx context.Context, prefix string) error {
	err := s.Driver.DeleteAll(ctx, prefix)
	s.record("delete-all", prefix, err)
	return err
}

func (s *stressTrace) List(ctx context.Context, prefix string) ([]string, error) {
	names, err := s.Driver.List(ctx, prefix)
	if prefix == "uploads" {
		for _, n := range names {
			s.record("listed", "uploads/"+n, err)
		}
	}
	return names, err
}

func (s *stressTrace) DeleteMany(ctx context.Context, keys []string) error {
	err := storage.DeleteMany(ctx, s.Driver, keys)
	for _, k := range keys {
		s.record("delete-many", k, err)
	}
	return err
}

func (s *stressTrace) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	return storage.Walk(ctx, s.Driver, prefix, fn)
}

func (s *stressTrace) of(hex string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events[hex])
}

// stressLog keeps the server's log lines, for the failures among them.
type stressLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *stressLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, strings.TrimSpace(string(p)))
	l.mu.Unlock()
	return len(p), nil
}

// failures are the warnings, errors and answers with a 5xx status.
func (l *stressLog) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "status=5") {
			out = append(out, line)
		}
	}
	return out
}

// stressTransport keeps, for requests made under a stressRequests in their
// context, each request's time, method, path and status.
type stressTransport struct {
	base   http.RoundTripper
	ledger *stressLedger
}

type stressRequestsKey struct{}

type stressRequests struct {
	mu    sync.Mutex
	lines []string
}

func (t *stressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := t.ledger.since()
	resp, err := t.base.RoundTrip(req)
	if rs, ok := req.Context().Value(stressRequestsKey{}).(*stressRequests); ok {
		status := "error " + fmt.Sprint(err)
		if err == nil {
			status = resp.Status
		}
		rs.mu.Lock()
		rs.lines = append(rs.lines, fmt.Sprintf("%s %s %s -> %s", start, req.Method, req.URL.Path, status))
		rs.mu.Unlock()
	}
	return resp, err
}

// stressWorld is the registry, its store seen through the trace, and the
// clients' options: no retries, so every failure shows.
type stressWorld struct {
	*gcWorld
	cfg    gcStress
	trace  *stressTrace
	ledger *stressLedger
	tr     *http.Transport
	client *stressTransport
	bases  [][]v1.Layer
}

func (w *stressWorld) opts(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx), remote.WithTransport(w.client),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}), remote.WithRetryStatusCodes(),
	}
}

// randomLayer is n random bytes, as a layer (the registry does not look
// inside layers, so no tar or gzip is needed).
func randomLayer(rng *mrand.Rand, n int) v1.Layer {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return static.NewLayer(b, types.OCILayer)
}

// stressImage is an OCI image of the layers. Static layers cannot fail to
// append, so neither can this.
func stressImage(layers []v1.Layer) v1.Image {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err == nil {
		_, err = img.Digest() // computed once, before goroutines share it
	}
	if err != nil {
		panic(err)
	}
	return img
}

// stressBlobs lists an image's blobs and their sizes: its manifest, its
// config, its layers.
func stressBlobs(img v1.Image) (map[v1.Hash]int64, error) {
	out := map[v1.Hash]int64{}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	d, _ := img.Digest()
	out[d] = int64(len(raw))
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	cd, _ := img.ConfigName()
	out[cd] = int64(len(cfg))
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	for _, l := range layers {
		ld, _ := l.Digest()
		out[ld], _ = l.Size()
	}
	return out, nil
}

func runGCStress(t *testing.T, store storage.Driver, cfg gcStress) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	ledger := &stressLedger{start: time.Now(), entries: map[string]*stressEntry{}, images: map[v1.Hash]v1.Image{},
		history: map[string][]string{}, counts: map[string]int{}}
	if store == nil {
		fs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		store = fs
	}
	trace := &stressTrace{Driver: store, ledger: ledger, events: map[string][]string{}}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	serverLog := &stressLog{}
	w := &stressWorld{gcWorld: newGCWorld(t, trace, Config{GC: GCConfig{Grace: cfg.grace}, Logger: slog.New(slog.NewTextHandler(serverLog, nil))}), cfg: cfg, trace: trace,
		ledger: ledger, tr: tr, client: &stressTransport{base: tr, ledger: ledger}}

	// Six base images of two small layers; two have a 1 MiB layer more, and
	// two are rare, so their layers often lose their last image and are
	// then pushed again, racing the sweep.
	rng := mrand.New(mrand.NewPCG(seed, 0))
	for i := range 6 {
		layers := []v1.Layer{randomLayer(rng, 2048+rng.IntN(8192)), randomLayer(rng, 1024+rng.IntN(4096))}
		if i < 2 {
			layers = append(layers, randomLayer(rng, 1<<20))
		}
		w.bases = append(w.bases, layers)
	}

	// The collector, every interval, each run followed by a verification
	// (which may overlap the next run: reads fall back to quarantine).
	var runs []gc.Report
	var collectErrs []string
	cycles := make(chan int, 1)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		defer close(cycles)
		for n := 1; ; n++ {
			rep, err := w.reg.Collect(context.Background(), false)
			ledger.mu.Lock()
			runs = append(runs, rep)
			if err != nil {
				collectErrs = append(collectErrs, fmt.Sprintf("run %d: %v", n, err))
			}
			ledger.mu.Unlock()
			for _, d := range rep.Deleted {
				if d.Kind == "blob" {
					trace.record(fmt.Sprintf("collected-by-run-%d(start %s)", n, rep.Start.Sub(ledger.start).Round(time.Millisecond)), d.Key, nil)
				}
			}
			select {
			case cycles <- n:
			default: // the verifier is behind: it checks the newest state next
			}
			select {
			case <-stop:
				return
			case <-time.After(cfg.interval):
			}
		}
	})
	var verified, raced, cyclesVerified int
	bg.Go(func() {
		for range cycles {
			v, r := w.verify(context.Background(), false)
			verified += v
			raced += r
			cyclesVerified++
		}
	})

	deadline := time.Now().Add(cfg.run)
	var writers sync.WaitGroup
	for i := range cfg.writers {
		writers.Go(func() { w.write(i, mrand.New(mrand.NewPCG(seed, uint64(i+1))), deadline) })
	}
	writers.Wait()
	close(stop)
	bg.Wait()

	// Quiet now: past the grace, two collections leave what live tags hold.
	time.Sleep(cfg.grace + gc.TimeSpare + 200*time.Millisecond)
	var final []gc.Report
	for range 2 {
		rep, err := w.reg.Collect(context.Background(), false)
		if err != nil {
			t.Errorf("final collection: %v", err)
		}
		final = append(final, rep)
	}
	v, _ := w.verify(context.Background(), true)

	stored, quarantined := w.storedBytes(t)
	referenced, referencedBlobs := w.referencedBytes(t)
	var swept gc.Count
	var longest time.Duration
	for _, rep := range append(slices.Clone(runs), final...) {
		swept.Objects += rep.ByKind["blob"].Objects
		swept.Bytes += rep.ByKind["blob"].Bytes
		longest = max(longest, rep.Duration)
	}
	var extra string
	if stored > referenced+referenced/20 {
		extra = w.extraBlobs(t)
	}
	ledger.mu.Lock()
	fails := slices.Clone(ledger.fails)
	counts, maxPush := fmt.Sprint(ledger.counts), ledger.maxPush
	ledger.mu.Unlock() // the failures lock it to render
	t.Logf("%d writers for %s: %s; longest push %s (grace %s)", cfg.writers, cfg.run, counts, maxPush.Round(time.Millisecond), cfg.grace)
	t.Logf("%d collections (longest %s) swept %d blobs, %d bytes; %d verifications read %d tags (%d skipped: changed meanwhile); final check %d tags",
		len(runs), longest.Round(time.Millisecond), swept.Objects, swept.Bytes, cyclesVerified, verified, raced, v)
	t.Logf("stored under blobs/: %d bytes; live tags reference %d bytes in %d blobs (ratio %.4f); %d objects left in quarantine",
		stored, referenced, referencedBlobs, float64(stored)/float64(max(referenced, 1)), quarantined)
	for _, line := range serverLog.failures() {
		t.Logf("server: %s", line)
		for _, m := range uploadID.FindAllStringSubmatch(line, -1) {
			t.Logf("  store history of upload %s:\n    %s", m[1], strings.Join(trace.of(m[1]), "\n    "))
		}
	}
	for _, e := range collectErrs {
		t.Errorf("collection failed: %s", e)
	}
	for i, f := range fails {
		if i == 20 {
			t.Errorf("... and %d more failures", len(fails)-20)
			break
		}
		t.Error(f())
	}
	if swept.Objects == 0 {
		t.Error("the collector swept nothing: the test did not exercise it")
	}
	if limit := referenced + referenced/20; stored > limit {
		t.Errorf("the store holds %d bytes under blobs/, more than 1.05x the %d the live tags reference:\n%s", stored, referenced, extra)
	}
	if quarantined != 0 {
		t.Errorf("%d objects left in quarantine after two quiet collections", quarantined)
	}
}

// write is one writer: until the deadline it pushes new images (one base
// and its own layers), tags images it already pushed elsewhere, pushes
// again images it deleted, and deletes images by digest. It deletes the
// image a tag left behind when no tag of its own holds it any more.
func (w *stressWorld) write(id int, rng *mrand.Rand, deadline time.Time) {
	type dead struct {
		repo string
		img  v1.Image
	}
	var graveyard []dead
	repo := func() string { return fmt.Sprintf("stress/r%d", rng.IntN(w.cfg.repos)) }
	tag := func() string { return fmt.Sprintf("w%d-t%d", id, rng.IntN(w.cfg.tags)) }
	bury := func(r string, d v1.Hash) {
		if w.deleteImage(id, r, d) {
			w.ledger.mu.Lock()
			img := w.ledger.images[d]
			w.ledger.mu.Unlock()
			graveyard = append(graveyard, dead{r, img})
			if len(graveyard) > 16 {
				graveyard = graveyard[1:]
			}
		}
	}
	for time.Now().Before(deadline) {
		switch op := rng.IntN(20); {
		case op < 9: // a new image
			base := rng.IntN(4)
			if rng.IntN(8) == 0 {
				base = 4 + rng.IntN(2) // a rare base
			}
			layers := slices.Clone(w.bases[base])
			for range 1 + rng.IntN(2) {
				n := 512 + rng.IntN(8192)
				if rng.IntN(25) == 0 {
					n = 1 << 20
				}
				layers = append(layers, randomLayer(rng, n))
			}
			r := repo()
			if old, ok := w.push(id, r, tag(), stressImage(layers), "new"); ok {
				bury(r, old)
			}
		case op < 11: // an image it holds, under another tag, maybe in another repository
			src := w.pickEntry(id, rng)
			if src == nil {
				continue
			}
			w.ledger.mu.Lock()
			img := w.ledger.images[src.digest]
			w.ledger.mu.Unlock()
			r := repo()
			if old, ok := w.push(id, r, tag(), img, "retag from "+src.repo+":"+src.tag); ok {
				bury(r, old)
			}
		case op < 16: // an image it deleted, again, where it was
			if len(graveyard) == 0 {
				continue
			}
			i := rng.IntN(len(graveyard))
			g := graveyard[i]
			graveyard = slices.Delete(graveyard, i, i+1)
			// Either as a client that checks its blobs first (HEADs, then
			// uploads what is missing), or as one that only sends the
			// manifest, relying on its blobs still being in the repository:
			// then the registry may refuse it cleanly, or must keep them.
			how := "again"
			if op >= 14 {
				how = "again-manifest-only"
			}
			if old, ok := w.push(id, g.repo, tag(), g.img, how); ok {
				bury(g.repo, old)
			}
		default: // delete an image by digest, and with it its tags
			if e := w.pickEntry(id, rng); e != nil {
				bury(e.repo, e.digest)
			}
		}
	}
}

// pickEntry is one of the writer's live tags, at random.
func (w *stressWorld) pickEntry(id int, rng *mrand.Rand) *stressEntry {
	w.ledger.mu.Lock()
	defer w.ledger.mu.Unlock()
	var mine []*stressEntry
	prefix := fmt.Sprintf("w%d-", id)
	for _, e := range w.ledger.entries {
		if strings.HasPrefix(e.tag, prefix) && !e.suspect {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].repo+mine[i].tag < mine[j].repo+mine[j].tag })
	e := *mine[rng.IntN(len(mine))]
	return &e
}

// push pushes img to repo:tag and records it. It returns the digest the tag
// held before when no other tag of the repository holds it any more.
func (w *stressWorld) push(id int, repo, tag string, img v1.Image, how string) (old v1.Hash, orphaned bool) {
	d, _ := img.Digest()
	l := w.ledger
	key := repo + ":" + tag
	l.mu.Lock()
	l.images[d] = img
	e := l.entries[key]
	if e == nil {
		e = &stressEntry{repo: repo, tag: tag}
		l.entries[key] = e
	}
	if e.digest == d && !e.suspect {
		l.mu.Unlock()
		return v1.Hash{}, false
	}
	old, hadOld := e.digest, e.digest != v1.Hash{}
	e.busy = true
	l.bump(e)
	l.mu.Unlock()

	rs := &stressRequests{}
	ctx := context.WithValue(context.Background(), stressRequestsKey{}, rs)
	start := time.Now()
	manifestOnly := how == "again-manifest-only"
	var err error
	if manifestOnly {
		err = w.putManifest(ctx, repo, tag, img)
	} else {
		err = remote.Write(w.ref(key), img, w.opts(ctx)...)
	}
	took := time.Since(start)
	l.note(d, "w%d push %s (%s) began %s, took %s: %v", id, key, how, start.Sub(l.start).Round(time.Millisecond), took.Round(time.Millisecond), err)
	refused := manifestOnly && errors.Is(err, errBlobUnknown)
	if refused && !hadOld {
		// A refused push leaves no tag behind.
		if _, herr := remote.Head(w.ref(key), w.opts(context.Background())...); herr == nil {
			l.fail("writer %d: the refused push of %s@%s left its tag", id, key, d)
		}
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.maxPush = max(l.maxPush, took)
	e.busy = false
	l.bump(e)
	if refused {
		// Its blobs were collected after it was deleted: a clean refusal.
		// The tag stays as it was, which the verifier checks.
		l.counts["refused "+how]++
		if !hadOld {
			delete(l.entries, key)
		}
		return v1.Hash{}, false
	}
	if err != nil {
		e.suspect = true
		l.counts["failed push"]++
		l.fails = append(l.fails, w.pushFailure(id, key, how, d, img, took, err, rs))
		return v1.Hash{}, false
	}
	l.counts["push "+strings.Fields(how)[0]]++
	e.digest, e.suspect = d, false
	if !hadOld {
		return v1.Hash{}, false
	}
	for _, o := range l.entries {
		if o.repo == repo && o.digest == old {
			return v1.Hash{}, false // still tagged
		}
	}
	return old, true
}

// errBlobUnknown is a manifest push refused with MANIFEST_BLOB_UNKNOWN.
var errBlobUnknown = errors.New("MANIFEST_BLOB_UNKNOWN")

// putManifest pushes img's manifest alone, as a client that uploaded its
// blobs long ago and does not check them again.
func (w *stressWorld) putManifest(ctx context.Context, repo, tag string, img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, _ := img.MediaType()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, w.srv.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", string(mt))
	resp, err := (&http.Client{Transport: w.client}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusCreated:
		return nil
	case resp.StatusCode == http.StatusBadRequest && strings.Contains(string(body), "MANIFEST_BLOB_UNKNOWN"):
		return fmt.Errorf("%w: %s", errBlobUnknown, body)
	}
	return fmt.Errorf("PUT manifest: %s: %s", resp.Status, body)
}

// pushFailure describes a failed push: the error, the client's requests,
// and the store's history of the manifest and of the blobs the error
// names, up to the end of the test (what the collector did after the
// failure is part of the story).
func (w *stressWorld) pushFailure(id int, key, how string, d v1.Hash, img v1.Image, took time.Duration, err error, rs *stressRequests) func() string {
	at := w.ledger.since()
	return func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "writer %d: push of %s@%s (%s) failed at %s after %s (grace %s): %v\n", id, key, d, how, at, took.Round(time.Millisecond), w.cfg.grace, err)
		rs.mu.Lock()
		fmt.Fprintf(&b, "  requests (start times):\n    %s\n", strings.Join(rs.lines, "\n    "))
		rs.mu.Unlock()
		blobs, _ := stressBlobs(img)
		for bd := range blobs {
			if strings.Contains(err.Error(), bd.Hex) || bd == d {
				fmt.Fprintf(&b, "  store history of %s (end times):\n    %s\n", bd, strings.Join(w.trace.of(bd.Hex), "\n    "))
			}
		}
		w.ledger.mu.Lock()
		fmt.Fprintf(&b, "  writer history of %s:\n    %s", d, strings.Join(w.ledger.history[d.Hex], "\n    "))
		w.ledger.mu.Unlock()
		return b.String()
	}
}

// deleteImage deletes repo@d (and with it every tag there holding it).
func (w *stressWorld) deleteImage(id int, repo string, d v1.Hash) bool {
	l := w.ledger
	l.mu.Lock()
	var gone []string
	for k, e := range l.entries {
		if e.repo == repo && e.digest == d {
			e.busy = true
			l.bump(e)
			gone = append(gone, k)
		}
	}
	l.mu.Unlock()
	err := remote.Delete(w.ref(repo+"@"+d.String()), w.opts(context.Background())...)
	l.note(d, "w%d delete %s@%s (tags %v): %v", id, repo, d.Hex[:12], gone, err)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range gone {
		if err != nil {
			l.entries[k].busy, l.entries[k].suspect = false, true
			continue
		}
		delete(l.entries, k)
	}
	if err != nil {
		l.counts["failed delete"]++
		msg := fmt.Sprintf("writer %d: delete of %s@%s failed: %v", id, repo, d, err)
		l.fails = append(l.fails, func() string { return msg })
		return false
	}
	l.counts["delete"]++
	return true
}

// verify pulls every live tag and reads all its blobs. A failure on a tag
// that changed meanwhile is skipped (counted as raced); one on a tag that
// stayed is recorded. With final, every failure counts.
func (w *stressWorld) verify(ctx context.Context, final bool) (verified, raced int) {
	l := w.ledger
	l.mu.Lock()
	var snap []stressEntry
	for _, e := range l.entries {
		if !e.busy && !e.suspect {
			snap = append(snap, *e)
		}
	}
	l.mu.Unlock()
	// Four pulls at a time, so that the tags change as little as possible
	// between the snapshot and their pull.
	var mu sync.Mutex
	next := make(chan stressEntry)
	var pullers sync.WaitGroup
	for range 4 {
		pullers.Go(func() {
			for e := range next {
				err := w.pullImage(ctx, e.repo+":"+e.tag, e.digest)
				l.mu.Lock()
				now := l.entries[e.repo+":"+e.tag]
				changed := now == nil || now.version != e.version
				l.mu.Unlock()
				mu.Lock()
				switch {
				case err == nil:
					verified++
				case changed && !final:
					raced++
				}
				mu.Unlock()
				if err != nil && (!changed || final) {
					f := w.pullFailure(e, err)
					l.mu.Lock()
					l.fails = append(l.fails, f)
					l.mu.Unlock()
				}
			}
		})
	}
	for _, e := range snap {
		next <- e
	}
	close(next)
	pullers.Wait()
	return verified, raced
}

// pullImage pulls ref, checks it is the image want, and reads its config
// and every layer (each checked against its digest by the client).
func (w *stressWorld) pullImage(ctx context.Context, ref string, want v1.Hash) error {
	desc, err := remote.Get(w.ref(ref), w.opts(ctx)...)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if desc.Digest != want {
		return fmt.Errorf("the tag holds %s, not %s", desc.Digest, want)
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		cd, _ := img.ConfigName()
		return fmt.Errorf("config %s: %w", cd, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, layer := range layers {
		ld, _ := layer.Digest()
		rc, err := layer.Compressed()
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			if cerr := rc.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", ld, err)
		}
	}
	return nil
}

// pullFailure describes a failed pull of a live tag: the writer's history
// of its image, and the store's of each blob the error names or that was
// missing then, up to the end of the test.
func (w *stressWorld) pullFailure(e stressEntry, err error) func() string {
	at := w.ledger.since()
	w.ledger.mu.Lock()
	img := w.ledger.images[e.digest]
	w.ledger.mu.Unlock()
	blobs, _ := stressBlobs(img)
	missing := map[v1.Hash]bool{}
	for bd := range blobs {
		if strings.Contains(err.Error(), bd.Hex) || !w.blobStored(bd) {
			missing[bd] = !w.blobStored(bd)
		}
	}
	return func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "live tag %s:%s (%s) failed to pull at %s: %v\n", e.repo, e.tag, e.digest, at, err)
		w.ledger.mu.Lock()
		fmt.Fprintf(&b, "  writer history of %s:\n    %s\n", e.digest, strings.Join(w.ledger.history[e.digest.Hex], "\n    "))
		w.ledger.mu.Unlock()
		for bd, gone := range missing {
			fmt.Fprintf(&b, "  store history of %s (missing at the failure: %v; end times):\n    %s\n", bd, gone, strings.Join(w.trace.of(bd.Hex), "\n    "))
		}
		return b.String()
	}
}

// storedBytes sums the objects under blobs/ and counts the quarantine's.
func (w *stressWorld) storedBytes(t *testing.T) (stored int64, quarantined int) {
	ctx := context.Background()
	if err := storage.Walk(ctx, w.store, "blobs", func(info storage.Info) error {
		stored += info.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := storage.Walk(ctx, w.store, "gc/quarantine", func(storage.Info) error {
		quarantined++
		return nil
	}); err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return stored, quarantined
}

// referenced is every blob a live tag references, once, with its size.
func (w *stressWorld) referenced(t *testing.T) map[v1.Hash]int64 {
	w.ledger.mu.Lock()
	defer w.ledger.mu.Unlock()
	all := map[v1.Hash]int64{}
	for _, e := range w.ledger.entries {
		if (e.digest == v1.Hash{}) {
			continue // its first push failed
		}
		blobs, err := stressBlobs(w.ledger.images[e.digest])
		if err != nil {
			t.Fatal(err)
		}
		for d, n := range blobs {
			all[d] = n
		}
	}
	return all
}

func (w *stressWorld) referencedBytes(t *testing.T) (bytes int64, blobs int) {
	for _, n := range w.referenced(t) {
		bytes += n
		blobs++
	}
	return bytes, blobs
}

// extraBlobs lists the stored blobs no live tag references.
func (w *stressWorld) extraBlobs(t *testing.T) string {
	live := map[string]bool{}
	for d := range w.referenced(t) {
		live[d.Hex] = true
	}
	var b strings.Builder
	// Manifests the repositories hold that no live tag does are roots too.
	_ = storage.Walk(context.Background(), w.store, "repositories", func(info storage.Info) error {
		if hex := hexDigest.FindString(info.Key); strings.Contains(info.Key, "/_manifests/revisions/") && !live[hex] {
			w.ledger.mu.Lock()
			history := w.ledger.history[hex]
			w.ledger.mu.Unlock()
			fmt.Fprintf(&b, "  untagged revision %s, linked %s; writer history:\n    %s\n", info.Key,
				info.ModTime.Sub(w.ledger.start).Round(time.Millisecond), strings.Join(history, "\n    "))
		}
		return nil
	})
	_ = storage.Walk(context.Background(), w.store, "blobs", func(info storage.Info) error {
		if hex := hexDigest.FindString(info.Key); !live[hex] && info.Size > 0 {
			fmt.Fprintf(&b, "  %s %d bytes, modified %s\n", info.Key, info.Size, info.ModTime.Sub(w.ledger.start).Round(time.Millisecond))
			for _, e := range w.trace.of(hex) {
				fmt.Fprintf(&b, "    %s\n", e)
			}
		}
		return nil
	})
	return b.String()
}
