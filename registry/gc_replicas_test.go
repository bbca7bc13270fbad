package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/s3"
	"github.com/unireg/unireg/registry/storage/storagetest"
)

// leaseWatch sees one replica's writes of the collector's lease and keeps
// the intervals in which that replica held it.
type leaseWatch struct {
	storage.Driver
	mu      sync.Mutex
	holding bool
	since   time.Time
	spans   [][2]time.Time
}

func (w *leaseWatch) Put(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	if key != "gc/lease" {
		return w.Driver.Put(ctx, key, r, cond)
	}
	b, _ := io.ReadAll(r)
	var rec struct{ Expires time.Time }
	_ = json.Unmarshal(b, &rec)
	w.mu.Lock()
	defer w.mu.Unlock()
	// A span is what the replica surely held: from the end of the write
	// that took the lease to the start of the one that released it. (The
	// end of the release write is no bound: its answer can come back well
	// after the other replica took the lease it freed.) Spans of the two
	// replicas that overlap are two holders at once.
	releaseStart := time.Now()
	info, err := w.Driver.Put(ctx, key, bytes.NewReader(b), cond)
	switch {
	case err != nil:
	case rec.Expires.IsZero() && w.holding: // released
		w.holding = false
		w.spans = append(w.spans, [2]time.Time{w.since, releaseStart})
	case !rec.Expires.IsZero() && !w.holding: // taken
		w.holding, w.since = true, time.Now()
	}
	return info, err
}

func (w *leaseWatch) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	return storage.Walk(ctx, w.Driver, prefix, fn)
}

func (w *leaseWatch) DeleteMany(ctx context.Context, keys []string) error {
	return storage.DeleteMany(ctx, w.Driver, keys)
}

// Two replicas with --gc-interval on one storage: they take turns, never
// collecting at the same time, and between them the garbage goes.
func testGCReplicasTakeTurns(t *testing.T, shared storage.Driver) {
	a, b := &leaseWatch{Driver: shared}, &leaseWatch{Driver: shared}
	// The grace is long beside a push here (a client between its blob uploads
	// and its manifest push is safe only for the grace), short beside the
	// test: the garbage goes after it.
	cfg := Config{GC: GCConfig{Interval: 30 * time.Millisecond, Grace: 500 * time.Millisecond}}
	wa := newGCWorld(t, a, cfg)
	wb := newGCWorld(t, b, cfg)
	var garbage []string
	for i := range 6 {
		img, _ := random.Image(1024, 1)
		w := wa
		if i%2 == 1 {
			w = wb
		}
		d := w.push("team/app:"+string(rune('a'+i)), img)
		w.deleteRef("team/app@" + d.String())
		garbage = append(garbage, d.String())
	}
	time.Sleep(2500 * time.Millisecond)
	wa.reg.Close()
	wb.reg.Close()
	a.mu.Lock()
	b.mu.Lock()
	defer a.mu.Unlock()
	defer b.mu.Unlock()
	if len(a.spans)+len(b.spans) < 2 {
		t.Fatalf("the replicas collected %d and %d times in 2.5 s", len(a.spans), len(b.spans))
	}
	for _, x := range a.spans {
		for _, y := range b.spans {
			if x[0].Before(y[1]) && y[0].Before(x[1]) {
				t.Fatalf("both replicas collected at once: %v-%v and %v-%v", x[0], x[1], y[0], y[1])
			}
		}
	}
	for _, d := range garbage {
		hex := strings.TrimPrefix(d, "sha256:")
		if _, err := shared.Stat(context.Background(), "blobs/sha256/"+hex[:2]+"/"+hex+"/data"); err == nil {
			t.Fatalf("deleted manifest %s is still stored after 2.5 s of collections", d)
		}
	}
	t.Logf("replica a collected %d times, b %d times", len(a.spans), len(b.spans))
}

func TestGCReplicasTakeTurnsOnTheFilesystem(t *testing.T) {
	fs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testGCReplicasTakeTurns(t, fs)
}

func TestGCReplicasTakeTurnsOnS3(t *testing.T) {
	endpoint, accessKey, secretKey := storagetest.MinIO(t)
	d, err := s3.New(t.Context(), s3.Options{
		Endpoint: endpoint, Bucket: "gc-replicas-" + strings.ToLower(rand.Text()[:12]),
		AccessKey: accessKey, SecretKey: secretKey, CreateBucket: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	testGCReplicasTakeTurns(t, d)
}
