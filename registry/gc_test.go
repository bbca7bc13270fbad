package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
)

// gcWorld is a registry on a filesystem store with a collector whose
// grace is short, so tests can age content by waiting a moment.
type gcWorld struct {
	t     *testing.T
	reg   *Registry
	srv   *httptest.Server
	store storage.Driver

	mu     sync.Mutex
	events []Event
}

const testGrace = 50 * time.Millisecond

// orphanedImage pushes an image of layers layers to team/app:1 on a
// filesystem store with hooks, deletes its manifest and ages everything
// past the grace: the collector's next run quarantines and sweeps its
// blobs, unless something takes them back.
func orphanedImage(t *testing.T, layers int64) (*gcWorld, *hookStore, v1.Image) {
	t.Helper()
	fs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &hookStore{Driver: fs}
	w := newGCWorld(t, store, Config{})
	img, _ := random.Image(2048, layers)
	d := w.push("team/app:1", img)
	w.deleteRef("team/app@" + d.String())
	w.age()
	return w, store, img
}

func newGCWorld(t *testing.T, store storage.Driver, cfg Config) *gcWorld {
	t.Helper()
	if store == nil {
		fs, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		store = fs
	}
	w := &gcWorld{t: t, store: store}
	cfg.Storage = store
	cfg.DisableAuth = true
	if cfg.GC.Grace == 0 {
		cfg.GC.Grace = testGrace
	}
	cfg.OnEvent = func(_ context.Context, e Event) {
		w.mu.Lock()
		w.events = append(w.events, e)
		w.mu.Unlock()
	}
	reg, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	w.reg = reg
	w.srv = httptest.NewServer(reg)
	t.Cleanup(w.srv.Close)
	return w
}

func (w *gcWorld) ref(s string) name.Reference {
	w.t.Helper()
	r, err := name.ParseReference(strings.TrimPrefix(w.srv.URL, "http://") + "/" + s)
	if err != nil {
		w.t.Fatal(err)
	}
	return r
}

func (w *gcWorld) push(repoTag string, img v1.Image) v1.Hash {
	w.t.Helper()
	if err := remote.Write(w.ref(repoTag), img); err != nil {
		w.t.Fatalf("push %s: %v", repoTag, err)
	}
	d, _ := img.Digest()
	return d
}

func (w *gcWorld) deleteRef(ref string) {
	w.t.Helper()
	if err := remote.Delete(w.ref(ref)); err != nil {
		w.t.Fatalf("delete %s: %v", ref, err)
	}
}

// age waits until everything written so far is past the grace.
func (w *gcWorld) age() { time.Sleep(testGrace + gc.TimeSpare + 50*time.Millisecond) }

func (w *gcWorld) collect(dryRun bool) gc.Report {
	w.t.Helper()
	rep, err := w.reg.Collect(context.Background(), dryRun)
	if err != nil {
		w.t.Fatalf("collect (dry run %v): %v", dryRun, err)
	}
	return rep
}

// pullAll pulls the image or index at ref and reads every blob.
func (w *gcWorld) pullAll(ref string) error {
	desc, err := remote.Get(w.ref(ref))
	if err != nil {
		return err
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		repo := strings.SplitN(ref, ":", 2)[0]
		repo = strings.SplitN(repo, "@", 2)[0]
		for _, m := range im.Manifests {
			if err := w.pullAll(repo + "@" + m.Digest.String()); err != nil {
				return err
			}
		}
		return nil
	}
	img, err := desc.Image()
	if err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *gcWorld) mustPull(ref string) {
	w.t.Helper()
	if err := w.pullAll(ref); err != nil {
		w.t.Fatalf("pull %s: %v", ref, err)
	}
}

func (w *gcWorld) blobStored(d v1.Hash) bool {
	_, err := w.store.Stat(context.Background(), "blobs/"+d.Algorithm+"/"+d.Hex[:2]+"/"+d.Hex+"/data")
	return err == nil
}

func blobsOf(t *testing.T, img v1.Image) []v1.Hash {
	t.Helper()
	cfg, _ := img.ConfigName()
	out := []v1.Hash{cfg}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		out = append(out, d)
	}
	return out
}

func deletedKeys(rep gc.Report) []string {
	var keys []string
	for _, d := range rep.Deleted {
		keys = append(keys, d.Kind+" "+d.Key)
	}
	slices.Sort(keys)
	return keys
}

// A deleted image's own blobs go; the layers it shares with a live image
// stay; the live image pulls whole; the dry run lists exactly what the
// real run then deletes.
func TestGCSweepsADeletedImageAndKeepsWhatLiveImagesShare(t *testing.T) {
	w := newGCWorld(t, nil, Config{})
	base, _ := random.Image(2048, 2)
	own, _ := random.Layer(4096, types.OCILayer)
	gone, _ := mutate.AppendLayers(base, own)
	keptLayer, _ := random.Layer(4096, types.OCILayer)
	kept, _ := mutate.AppendLayers(base, keptLayer)
	goneDigest := w.push("team/app:old", gone)
	w.push("team/app:new", kept)
	w.deleteRef("team/app@" + goneDigest.String())
	w.age()

	dry := w.collect(true)
	if !dry.DryRun || dry.Total.Objects == 0 {
		t.Fatalf("dry run found nothing to delete: %+v", dry)
	}
	ownDigest, _ := own.Digest()
	goneConfig, _ := gone.ConfigName()
	for _, d := range []v1.Hash{ownDigest, goneConfig, goneDigest} {
		if !w.blobStored(d) {
			t.Fatalf("the dry run deleted %s", d)
		}
	}
	real := w.collect(false)
	if got, want := deletedKeys(real), deletedKeys(dry); !slices.Equal(got, want) {
		t.Fatalf("the real run deleted\n%v\nthe dry run said\n%v", got, want)
	}
	for _, d := range []v1.Hash{ownDigest, goneConfig, goneDigest} {
		if w.blobStored(d) {
			t.Fatalf("blob %s of the deleted image is still stored", d)
		}
	}
	for _, d := range blobsOf(t, kept) {
		if !w.blobStored(d) {
			t.Fatalf("blob %s of the live image was swept", d)
		}
	}
	w.mustPull("team/app:new")
	if real.ByKind["blob"].Objects != 3 {
		t.Fatalf("swept %d blobs, want 3 (a layer, a config, a manifest): %+v", real.ByKind["blob"].Objects, real.Deleted)
	}
	if again := w.collect(false); again.Total.Objects != 0 {
		t.Fatalf("a second run deleted more: %+v", again.Deleted)
	}
}

// Nothing uploaded within the grace goes, even if nothing references it:
// a client between its blob uploads and its manifest push is safe.
func TestGCKeepsUnreferencedBlobsWithinTheGrace(t *testing.T) {
	w := newGCWorld(t, nil, Config{GC: GCConfig{Grace: time.Hour}})
	img, _ := random.Image(1024, 1)
	layers, _ := img.Layers()
	if err := remote.WriteLayer(w.ref("team/app").Context(), layers[0]); err != nil {
		t.Fatal(err)
	}
	if rep := w.collect(false); rep.ByKind["blob"].Objects != 0 {
		t.Fatalf("swept a blob uploaded just now: %+v", rep.Deleted)
	}
	w.push("team/app:1", img)
	w.mustPull("team/app:1")
}

// An index, its children and a referrer survive while the index's tag
// lives, even under untagged-after, and go with it.
func TestGCKeepsIndexesAndReferrersWhileTheirTagLives(t *testing.T) {
	w := newGCWorld(t, nil, Config{OCI: OCIConfig{Settings: oci.Settings{
		Retention: []oci.Retention{{Repositories: "team/*", UntaggedAfter: testGrace}},
	}}})
	idx, _ := random.Index(1024, 2, 2)
	if err := remote.WriteIndex(w.ref("team/multi:1"), idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	idxSize, _ := idx.Size()
	sig, _ := random.Image(256, 1)
	sigWithSubject := mutate.Subject(sig, v1.Descriptor{MediaType: types.OCIImageIndex, Digest: idxDigest, Size: idxSize}).(v1.Image)
	sigDigest, _ := sigWithSubject.Digest()
	if err := remote.Write(w.ref("team/multi@"+sigDigest.String()), sigWithSubject); err != nil {
		t.Fatal(err)
	}
	w.age()
	if rep := w.collect(false); rep.Total.Objects != 0 {
		t.Fatalf("deleted parts of a tagged index: %+v", rep.Deleted)
	}
	w.mustPull("team/multi:1")
	w.mustPull("team/multi@" + sigDigest.String())

	w.deleteRef("team/multi:1")
	w.age()
	rep := w.collect(false)
	if n := rep.ByKind["manifest"].Objects; n != 4 {
		t.Fatalf("deleted %d manifests, want 4 (the index, two children, the referrer): %+v", n, rep.Deleted)
	}
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		child, _ := idx.Image(m.Digest)
		for _, d := range append(blobsOf(t, child), m.Digest) {
			if w.blobStored(d) {
				t.Fatalf("blob %s of the deleted index stayed", d)
			}
		}
	}
	if w.blobStored(sigDigest) {
		t.Fatal("the referrer stayed after its subject went")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var deleted int
	for _, e := range w.events {
		if e.Action == "manifest.deleted" && e.Identity != nil && e.Identity.Subject == "unireg-gc" {
			deleted++
		}
	}
	if deleted != 4 {
		t.Fatalf("%d manifest.deleted events from the collector, want 4", deleted)
	}
}

// keep-last=3,keep-tags=^v leaves exactly those tags; untagged-after
// removes untagged manifests after their age and not before.
func TestGCRetentionKeepsTheLastTagsAndTheMatchingOnes(t *testing.T) {
	w := newGCWorld(t, nil, Config{OCI: OCIConfig{Settings: oci.Settings{
		Retention: []oci.Retention{{Repositories: "ci/*", KeepLast: 3, KeepTags: regexp.MustCompile("^v"), UntaggedAfter: 2 * time.Second}},
	}}})
	for _, tag := range []string{"v1", "v2", "t1", "t2", "t3", "t4", "t5"} {
		img, _ := random.Image(256, 1)
		w.push("ci/app:"+tag, img)
		time.Sleep(5 * time.Millisecond) // distinct push times
	}
	other, _ := random.Image(256, 1)
	w.push("other/app:t1", other)
	w.age()
	rep := w.collect(false)
	tags, err := remote.List(w.ref("ci/app").Context())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if want := []string{"t3", "t4", "t5", "v1", "v2"}; !slices.Equal(tags, want) {
		t.Fatalf("tags left %v, want %v", tags, want)
	}
	if n := rep.ByKind["tag"].Objects; n != 2 {
		t.Fatalf("deleted %d tags, want 2: %+v", n, rep.Deleted)
	}
	if n := rep.ByKind["manifest"].Objects; n != 0 {
		t.Fatalf("deleted untagged manifests before their age: %+v", rep.Deleted)
	}
	time.Sleep(2 * time.Second)
	rep = w.collect(false)
	if n := rep.ByKind["manifest"].Objects; n != 2 {
		t.Fatalf("deleted %d untagged manifests after their age, want 2: %+v", n, rep.Deleted)
	}
	for _, tag := range []string{"t3", "t4", "t5", "v1", "v2"} {
		w.mustPull("ci/app:" + tag)
	}
	w.mustPull("other/app:t1") // no rule matches: everything stays
}

// hookStore calls a test's hook before chosen storage calls.
type hookStore struct {
	storage.Driver
	mu     sync.Mutex
	onMove func(src, dst string)
	onBulk func(keys []string)
}

func (s *hookStore) Move(ctx context.Context, src, dst string) error {
	s.mu.Lock()
	hook := s.onMove
	s.mu.Unlock()
	if hook != nil {
		hook(src, dst)
	}
	return s.Driver.Move(ctx, src, dst)
}

func (s *hookStore) DeleteMany(ctx context.Context, keys []string) error {
	s.mu.Lock()
	hook := s.onBulk
	s.mu.Unlock()
	if hook != nil {
		hook(keys)
	}
	return storage.DeleteMany(ctx, s.Driver, keys)
}

func (s *hookStore) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	return storage.Walk(ctx, s.Driver, prefix, fn)
}

// The races the issue names, driven step by step: a manifest push that
// references a blob the collector is sweeping, at each point of the sweep,
// either wins (the blob stays and the image pulls) or fails cleanly with
// MANIFEST_BLOB_UNKNOWN; never an acknowledged manifest with a missing blob.
func TestGCManifestPushRacingTheSweepWinsOrFailsCleanly(t *testing.T) {
	for _, at := range []string{"quarantine", "delete"} {
		t.Run(at, func(t *testing.T) {
			w, store, img := orphanedImage(t, 2)
			var once sync.Once
			var pushErr error
			pushNow := func() {
				once.Do(func() {
					store.mu.Lock()
					store.onMove, store.onBulk = nil, nil
					store.mu.Unlock()
					// The layers are still linked in the repository: the
					// client skips their upload and pushes the manifest.
					pushErr = remote.Write(w.ref("team/app:again"), img)
				})
			}
			store.mu.Lock()
			switch at {
			case "quarantine": // just before the first blob leaves for quarantine
				store.onMove = func(src, dst string) {
					if strings.HasPrefix(dst, "gc/quarantine/") {
						pushNow()
					}
				}
			case "delete": // after the verification, just before the quarantine is emptied
				store.onBulk = func(keys []string) {
					if len(keys) > 0 && strings.HasPrefix(keys[0], "gc/quarantine/") {
						pushNow()
					}
				}
			}
			store.mu.Unlock()
			w.collect(false)
			if pushErr != nil {
				var terr interface{ Error() string } = pushErr
				if !strings.Contains(terr.Error(), "MANIFEST_BLOB_UNKNOWN") {
					t.Fatalf("the racing push failed, but not cleanly: %v", pushErr)
				}
				if _, err := remote.Get(w.ref("team/app:again")); err == nil {
					t.Fatal("a failed push left its tag")
				}
				return
			}
			w.mustPull("team/app:again")
			w.age()
			w.collect(false)
			w.mustPull("team/app:again")
		})
	}
}

// A pusher that HEADs its blobs while the collector holds them in
// quarantine, after the collector's first look at their refs, is told they
// are here: from then on they are the pusher's. The collector must not
// count them as swept nor take their refs or repository links, or the
// manifest push that follows the HEADs is refused (the race the stress
// test found on MinIO).
func TestGCPusherHeadAfterTheFirstCheckKeepsItsBlobsAndLinks(t *testing.T) {
	w, store, img := orphanedImage(t, 2)
	blobs := blobsOf(t, img)
	mine := map[string]bool{}
	for _, b := range blobs {
		mine["repositories/team/app/_layers/"+b.Algorithm+"/"+b.Hex] = true
		mine["blobs/"+b.Algorithm+"/"+b.Hex[:2]+"/"+b.Hex+"/ref"] = true
	}
	var once sync.Once
	var mu sync.Mutex
	var taken []string
	store.mu.Lock()
	store.onBulk = func(keys []string) {
		if len(keys) > 0 && strings.HasPrefix(keys[0], "gc/quarantine/") {
			once.Do(func() {
				for _, b := range blobs {
					req, _ := http.NewRequest(http.MethodHead, w.srv.URL+"/v2/team/app/blobs/"+b.String(), nil)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Errorf("HEAD %s: %v", b, err)
						continue
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Errorf("HEAD %s during the sweep: %d, want 200 (the blob is linked here)", b, resp.StatusCode)
					}
				}
			})
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			if mine[k] {
				taken = append(taken, k)
			}
		}
	}
	store.mu.Unlock()
	rep := w.collect(false)
	for _, k := range deletedKeys(rep) {
		for _, b := range blobs {
			if strings.Contains(k, b.Hex) {
				t.Errorf("the report lists %s, a blob a pusher was told is here", k)
			}
		}
	}
	mu.Lock()
	if len(taken) > 0 {
		t.Errorf("the collector deleted what the pusher relies on: %v", taken)
	}
	mu.Unlock()
	for _, b := range blobs {
		if !w.blobStored(b) {
			t.Errorf("blob %s is gone after a pusher was told it is here", b)
		}
	}
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	req, _ := http.NewRequest(http.MethodPut, w.srv.URL+"/v2/team/app/manifests/again", bytes.NewReader(raw))
	req.Header.Set("Content-Type", string(mt))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the manifest push after the HEADs: %d %s", resp.StatusCode, body)
	}
	w.mustPull("team/app:again")
}

// A blob upload that commits while the collector holds the same content in
// quarantine keeps its blob.
func TestGCUploadOfQuarantinedContentKeepsIt(t *testing.T) {
	w, store, img := orphanedImage(t, 1)
	layers, _ := img.Layers()
	var once sync.Once
	store.onBulk = func(keys []string) {
		if len(keys) > 0 && strings.HasPrefix(keys[0], "gc/quarantine/") {
			once.Do(func() {
				// Upload the layer again into another repository (not a mount).
				if err := remote.WriteLayer(w.ref("team/other").Context(), layers[0]); err != nil {
					t.Errorf("upload: %v", err)
				}
			})
		}
	}
	w.collect(false)
	ld, _ := layers[0].Digest()
	if !w.blobStored(ld) {
		t.Fatal("an upload acknowledged during the sweep lost its blob")
	}
	resp, err := http.Get(w.srv.URL + "/v2/team/other/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET of the uploaded blob: %d", resp.StatusCode)
	}
}

// Two registries on one storage: while one collects, the other's
// collection is refused with gc.ErrLeaseHeld.
func TestGCOnlyOneReplicaCollectsAtATime(t *testing.T) {
	fs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &hookStore{Driver: fs}
	a := newGCWorld(t, store, Config{})
	b := newGCWorld(t, fs, Config{})
	img, _ := random.Image(256, 1)
	d := a.push("team/app:1", img)
	a.deleteRef("team/app@" + d.String())
	a.age()
	var second error
	var once sync.Once
	store.onMove = func(src, dst string) {
		once.Do(func() { _, second = b.reg.Collect(context.Background(), false) })
	}
	a.collect(false)
	if !errors.Is(second, gc.ErrLeaseHeld) {
		t.Fatalf("a second replica's collection during the first: %v, want gc.ErrLeaseHeld", second)
	}
	if _, err := b.reg.Collect(context.Background(), false); err != nil {
		t.Fatalf("after the first finished: %v", err)
	}
}

// The collector's pass purges abandoned upload sessions, and /metrics
// reports its runs and what they freed.
func TestGCPurgesAbandonedUploadsAndReportsItsMetrics(t *testing.T) {
	w := newGCWorld(t, nil, Config{OCI: OCIConfig{Settings: oci.Settings{UploadMaxAge: testGrace}}})
	resp, err := http.Post(w.srv.URL+"/v2/team/app/blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %d", resp.StatusCode)
	}
	img, _ := random.Image(1024, 1)
	d := w.push("team/app:1", img)
	w.deleteRef("team/app@" + d.String())
	w.age()
	rep := w.collect(false)
	if rep.ByKind["upload"].Objects != 1 {
		t.Fatalf("purged %d uploads, want the abandoned one: %+v", rep.ByKind["upload"].Objects, rep.Deleted)
	}
	if names, err := w.store.List(context.Background(), "uploads"); err == nil && len(names) > 0 {
		t.Fatalf("upload sessions left: %v", names)
	}
	resp, err = http.Get(w.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`unireg_gc_runs_total{result="success"} 1`,
		`unireg_gc_deleted_objects_total{kind="blob",protocol="oci"} 3`,
		`unireg_gc_deleted_objects_total{kind="upload",protocol="oci"} 1`,
		`unireg_gc_last_success_timestamp_seconds`,
		`unireg_gc_duration_seconds_count 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(string(body), `unireg_gc_deleted_bytes_total{kind="blob",protocol="oci"}`) {
		t.Error("/metrics lacks the bytes freed")
	}
}
