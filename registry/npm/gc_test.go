package npm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The collector's tests run with a short grace: what a test writes before
// gcEnv.age() is older than the grace when the next collection starts,
// what it writes after is young, for the rest of the test (a dry run and
// the real run after it must agree). The margins exceed the coarse clock
// that stamps file modification times (a jiffy, up to 10 ms) and a busy
// machine's pauses.
const (
	testGrace = 500 * time.Millisecond
	testAging = testGrace + gc.TimeSpare + 200*time.Millisecond // past the grace and the run's second to spare
)

// gcEnv is a harness whose handler works on store (inmemory or
// filesystem), through a pauseStore, with a collector of its npm part.
type gcEnv struct {
	*harness
	store *pauseStore
}

func gcStores() []struct {
	name string
	new  func(t *testing.T) storage.Driver
} {
	return []struct {
		name string
		new  func(t *testing.T) storage.Driver
	}{
		{"inmemory", func(*testing.T) storage.Driver { return inmemory.New() }},
		{"filesystem", func(t *testing.T) storage.Driver {
			d, err := filesystem.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
	}
}

// forEachStore runs test on a fresh gcEnv over every backend.
func forEachStore(t *testing.T, test func(t *testing.T, env *gcEnv)) {
	for _, st := range gcStores() {
		t.Run(st.name, func(t *testing.T) {
			ps := &pauseStore{Driver: st.new(t)}
			hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Storage = ps }})
			test(t, &gcEnv{harness: hs, store: ps})
		})
	}
}

// age lets the grace pass over everything written so far.
func (env *gcEnv) age() { time.Sleep(testAging) }

func (env *gcEnv) collector(opts gc.Options) *gc.Collector {
	if opts.Grace == 0 {
		opts.Grace = testGrace
	}
	return &gc.Collector{Store: env.store, Parts: []gc.Part{env.h.GC()}, Options: opts}
}

// collect runs one collection and returns its deletions.
func (env *gcEnv) collect(opts gc.Options) []gc.Deletion {
	env.t.Helper()
	rep, err := env.collector(opts).Collect(context.Background(), false)
	if err != nil {
		env.t.Fatalf("collect: %v", err)
	}
	return rep.Deleted
}

func (env *gcEnv) put(key string, content []byte) {
	env.t.Helper()
	if _, err := env.store.Put(context.Background(), key, bytes.NewReader(content), storage.Condition{}); err != nil {
		env.t.Fatal(err)
	}
}

func (env *gcEnv) exists(key string) bool {
	env.t.Helper()
	_, err := env.store.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		env.t.Fatal(err)
	}
	return err == nil
}

// keys is every stored key under prefix.
func (env *gcEnv) keys(prefix string) []string {
	env.t.Helper()
	var out []string
	err := storage.Walk(context.Background(), env.store, prefix, func(info storage.Info) error {
		out = append(out, info.Key)
		return nil
	})
	if err != nil {
		env.t.Fatal(err)
	}
	return out
}

// tarballURL is the path of name@version's tarball below the npm root.
func tarballURL(name, version string) string {
	return "/" + name + "/-/" + tarballFileName(name, version)
}

// expectTarball checks that name@version installs: its tarball is served
// with content want.
func (env *gcEnv) expectTarball(name, version string, want []byte) {
	env.t.Helper()
	w := env.get("reader", tarballURL(name, version))
	expectStatus(env.t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), want) {
		env.t.Fatalf("tarball of %s@%s is %q, want %q", name, version, w.Body.Bytes(), want)
	}
}

// deletion is the part of a gc.Deletion a test states.
type deletion struct{ kind, key, reason string }

func deletionsOf(ds []gc.Deletion) []deletion {
	out := []deletion{}
	for _, d := range ds {
		out = append(out, deletion{d.Kind, d.Key, d.Reason})
	}
	slices.SortFunc(out, func(a, b deletion) int { return strings.Compare(a.key, b.key) })
	return out
}

func expectDeletions(t *testing.T, got []gc.Deletion, want ...deletion) {
	t.Helper()
	slices.SortFunc(want, func(a, b deletion) int { return strings.Compare(a.key, b.key) })
	if want == nil {
		want = []deletion{}
	}
	if g := deletionsOf(got); !slices.Equal(g, want) {
		t.Fatalf("deleted\n  %v\nwant\n  %v", g, want)
	}
}

func TestGCReclaimsTarballsACrashedPublishLeft(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		x := env.mustPublish("x", "1.0.0")
		y := env.mustPublish("@acme/y", "1.0.0")
		orphanX := []byte("the tarball of a publish of x that crashed before its document")
		orphanY := []byte("the tarball of a publish of @acme/y that crashed")
		orphanZ := []byte("the tarball of the first publish of z, which never got a document")
		env.put(tarballKey("x", sha512Hex(orphanX)), orphanX)
		env.put(tarballKey("@acme/y", sha512Hex(orphanY)), orphanY)
		env.put(tarballKey("z", sha512Hex(orphanZ)), orphanZ)

		// Within the grace, everything stays: a publish may be about to
		// write the document that points at the tarball.
		expectDeletions(t, env.collect(gc.Options{}))
		env.age()
		got := env.collect(gc.Options{})
		expectDeletions(t, got,
			deletion{"tarball", tarballKey("x", sha512Hex(orphanX)), "unreferenced"},
			deletion{"tarball", tarballKey("@acme/y", sha512Hex(orphanY)), "unreferenced"},
			deletion{"tarball", tarballKey("z", sha512Hex(orphanZ)), "unreferenced"},
		)
		sizes := map[string]int{sha512Hex(orphanX): len(orphanX), sha512Hex(orphanY): len(orphanY), sha512Hex(orphanZ): len(orphanZ)}
		for _, d := range got {
			if want := sizes[d.Key[strings.LastIndexByte(d.Key, '/')+1:]]; d.Protocol != "npm" || d.Bytes != int64(want) {
				t.Errorf("deletion %+v: want protocol npm and %d bytes", d, want)
			}
		}
		for _, prefix := range []string{packagesKey, "gc/quarantine/npm"} {
			for _, k := range env.keys(prefix) {
				if strings.Contains(k, sha512Hex(orphanX)) || strings.Contains(k, sha512Hex(orphanY)) || strings.Contains(k, sha512Hex(orphanZ)) {
					t.Errorf("%s is still stored", k)
				}
			}
		}
		env.expectTarball("x", "1.0.0", x)
		env.expectTarball("@acme/y", "1.0.0", y)
		expectDeletions(t, env.collect(gc.Options{}))
	})
}

func TestGCKeepsEveryPublishedTarballAndTheTombstones(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		x1 := env.mustPublish("x", "1.0.0")
		x2 := env.mustPublish("x", "2.0.0")
		y := env.mustPublish("@acme/y", "1.0.0")
		env.mustPublish("gone", "1.0.0")
		rev := env.writeDoc("gone")["_rev"].(string)
		expectStatus(t, env.do(call{method: http.MethodDelete, path: "/gone/-rev/" + rev, user: "admin"}), http.StatusOK)
		// A tombstone keeps no tarball: what a deleted package left is swept.
		left := []byte("a tarball the deleted package's cleanup missed")
		env.put(tarballKey("gone", sha512Hex(left)), left)
		tomb := env.storedPackument("gone")
		env.age()

		expectDeletions(t, env.collect(gc.Options{}),
			deletion{"tarball", tarballKey("gone", sha512Hex(left)), "unreferenced"})
		env.expectTarball("x", "1.0.0", x1)
		env.expectTarball("x", "2.0.0", x2)
		env.expectTarball("@acme/y", "1.0.0", y)
		if !bytes.Equal(env.storedPackument("gone"), tomb) {
			t.Fatal("the tombstone of the deleted package changed")
		}
		expectError(t, env.publishAs("admin", "", newPublish("gone", "1.0.0", tarballOf("gone", "1.0.0"))), http.StatusForbidden, "previously published")
	})
}

func TestGCSweepsAbandonedStagingAndKeepsYoung(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		env.put("npm/staging/0123abandoned", []byte("half a tarball"))
		env.put("npm/staging/4567abandoned-publishing", nil)
		env.age()
		env.put("npm/staging/89abreceiving", []byte("a tarball being received"))

		got := env.collect(gc.Options{})
		expectDeletions(t, got,
			deletion{"staging", "npm/staging/0123abandoned", "abandoned"},
			deletion{"staging", "npm/staging/4567abandoned-publishing", "abandoned"})
		for _, d := range got {
			if d.Key == "npm/staging/0123abandoned" && d.Bytes != int64(len("half a tarball")) {
				t.Errorf("%s: %d bytes, want %d", d.Key, d.Bytes, len("half a tarball"))
			}
		}
		if ks := env.keys("npm/staging"); !slices.Equal(ks, []string{"npm/staging/89abreceiving"}) {
			t.Fatalf("staging holds %v, want only the young object", ks)
		}
	})
}

func TestGCResolvesWhatACrashedCollectionLeftInQuarantine(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		ctx := context.Background()
		x := env.mustPublish("x", "1.0.0")
		// A collection moved x@1.0.0's tarball (referenced since) and an
		// orphan to quarantine, then stopped.
		orphan := []byte("an orphan of @acme/y")
		env.put(quarantineKey("@acme/y", sha512Hex(orphan)), orphan)
		if err := env.store.Move(ctx, tarballKey("x", sha512Hex(x)), quarantineKey("x", sha512Hex(x))); err != nil {
			t.Fatal(err)
		}
		env.age()

		expectDeletions(t, env.collect(gc.Options{}),
			deletion{"tarball", quarantineKey("@acme/y", sha512Hex(orphan)), "unreferenced"})
		if ks := env.keys("gc/quarantine/npm"); len(ks) != 0 {
			t.Fatalf("quarantine still holds %v", ks)
		}
		if !env.exists(tarballKey("x", sha512Hex(x))) {
			t.Fatal("the referenced tarball was not moved back")
		}
		env.expectTarball("x", "1.0.0", x)
	})
}

func TestTarballInQuarantineIsServed(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		x := env.mustPublish("@acme/x", "1.0.0")
		if err := env.store.Move(context.Background(), tarballKey("@acme/x", sha512Hex(x)), quarantineKey("@acme/x", sha512Hex(x))); err != nil {
			t.Fatal(err)
		}
		env.expectTarball("@acme/x", "1.0.0", x)
	})
}

// cachedPackage writes a package of the uplink's cache: its two documents
// and one tarball, and the tarball's pulled record when pulled.
func (env *gcEnv) cachedPackage(name string, tarball []byte, pulled bool) (docs, tb, record string) {
	sum := "sha512-" + sha512Hex(tarball)
	env.put(uplinkDocKey(name, false), []byte(`{"name":"`+name+`"}`))
	env.put(uplinkDocKey(name, true), []byte(`{"name":"`+name+`"}`))
	env.put(uplinkTarballKey(name, sum), tarball)
	if pulled {
		env.put(uplinkPulledKey(name, sum), nil)
	}
	return uplinkPackageKey(name), uplinkTarballKey(name, sum), uplinkPulledKey(name, sum)
}

func TestGCEvictsIdleCachedPackages(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		_, idleTarball, idleRecord := env.cachedPackage("idle", []byte("idle tarball"), true)
		_, usedTarball, usedRecord := env.cachedPackage("@up/used", []byte("used tarball"), false)
		env.put(uplinkPulledKey("orphan", "sha1-"+strings.Repeat("0", 40)), nil)
		env.age()
		// Pulled since: the record is new, the tarball and documents old.
		env.put(usedRecord, nil)

		got := env.collect(gc.Options{CacheMaxIdle: testGrace})
		expectDeletions(t, got,
			deletion{"cached-document", uplinkDocKey("idle", false), "cache-idle"},
			deletion{"cached-document", uplinkDocKey("idle", true), "cache-idle"},
			deletion{"tarball", idleTarball, "cache-idle"},
			deletion{"pulled-record", idleRecord, "cache-idle"},
			deletion{"pulled-record", uplinkPulledKey("orphan", "sha1-"+strings.Repeat("0", 40)), "cache-idle"},
		)
		for _, k := range []string{usedTarball, usedRecord, uplinkDocKey("@up/used", false), uplinkDocKey("@up/used", true)} {
			if !env.exists(k) {
				t.Errorf("%s of a package pulled within the idle limit was deleted", k)
			}
		}
		// Without an idle limit nothing is idle.
		expectDeletions(t, env.collect(gc.Options{}))
	})
}

func TestGCEvictsTheLeastRecentlyPulledPackageBeyondTheByteBudget(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		_, oldTarball, oldRecord := env.cachedPackage("old", []byte("the old package's tarball"), true)
		time.Sleep(50 * time.Millisecond) // newer, on a coarse file clock too
		_, newTarball, _ := env.cachedPackage("new", []byte("the new package's tarball"), true)
		budget := int64(0)
		for _, k := range env.keys(uplinkPackageKey("new")) {
			info, err := env.store.Stat(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			budget += info.Size
		}

		got := env.collect(gc.Options{CacheMaxBytes: budget})
		expectDeletions(t, got,
			deletion{"cached-document", uplinkDocKey("old", false), "cache-bytes"},
			deletion{"cached-document", uplinkDocKey("old", true), "cache-bytes"},
			deletion{"tarball", oldTarball, "cache-bytes"},
			deletion{"pulled-record", oldRecord, "cache-bytes"},
		)
		if !env.exists(newTarball) {
			t.Fatal("the most recently pulled package was evicted")
		}
		expectDeletions(t, env.collect(gc.Options{CacheMaxBytes: budget}))
	})
}

func TestGCDryRunRecordsWhatTheNextRunDeletes(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		ctx := context.Background()
		x := env.mustPublish("x", "1.0.0")
		orphan := []byte("an orphan")
		env.put(tarballKey("x", sha512Hex(orphan)), orphan)
		left := []byte("left in quarantine")
		env.put(quarantineKey("@acme/y", sha512Hex(left)), left)
		if err := env.store.Move(ctx, tarballKey("x", sha512Hex(x)), quarantineKey("x", sha512Hex(x))); err != nil {
			t.Fatal(err)
		}
		env.put("npm/staging/abandoned", []byte("half"))
		env.cachedPackage("idle", []byte("idle tarball"), true)
		env.age()
		env.cachedPackage("big", bytes.Repeat([]byte("b"), 1000), false)
		time.Sleep(50 * time.Millisecond) // newer, on a coarse file clock too
		env.cachedPackage("recent", []byte("recent tarball"), true)
		opts := gc.Options{CacheMaxIdle: testGrace, CacheMaxBytes: 500}

		before := map[string][]byte{}
		for _, k := range env.keys("") {
			b, _, err := storage.ReadAll(ctx, env.store, k)
			if err != nil {
				t.Fatal(err)
			}
			before[k] = b
		}
		dry, err := env.collector(opts).Collect(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if !dry.DryRun || len(dry.Deleted) == 0 {
			t.Fatalf("dry run report: %+v", dry)
		}
		after := env.keys("")
		if !slices.Equal(after, slices.Sorted(mapKeys(before))) {
			t.Fatalf("the dry run changed the store:\n before %v\n after  %v", slices.Sorted(mapKeys(before)), after)
		}
		real := env.collect(opts)
		if d, r := deletionsOf(dry.Deleted), deletionsOf(real); !slices.Equal(d, r) {
			t.Fatalf("the dry run recorded\n  %v\nthe real run deleted\n  %v", d, r)
		}
		for i := range real {
			if dry.Deleted[i] != real[i] {
				t.Errorf("dry %+v, real %+v", dry.Deleted[i], real[i])
			}
		}
		for _, want := range []string{tarballKey("x", sha512Hex(orphan)), quarantineKey("@acme/y", sha512Hex(left)),
			"npm/staging/abandoned", uplinkDocKey("idle", false), uplinkDocKey("big", true)} {
			if !slices.ContainsFunc(real, func(d gc.Deletion) bool { return d.Key == want }) {
				t.Errorf("the run did not delete %s: %v", want, deletionsOf(real))
			}
		}
		env.expectTarball("x", "1.0.0", x)
	})
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// A publish retried after a crash finds its tarball already stored, an
// orphan old enough to collect. The collector quarantines it while the
// publish is between its move of the tarball and its document's
// compare-and-swap: the publish's marker (seen when the collector lists
// staging before the swap) or the document's new version (after it) must
// make the collector move the tarball back.
func TestGCRacingAPublishRetryKeepsItsTarball(t *testing.T) {
	for _, listing := range []string{"before the swap", "after the swap"} {
		t.Run(listing, func(t *testing.T) {
			forEachStore(t, func(t *testing.T, env *gcEnv) {
				env.mustPublish("x", "0.9.0")
				tb := tarballOf("x", "1.0.0")
				key := tarballKey("x", sha512Hex(tb))
				env.put(key, tb) // the crashed publish's tarball
				env.age()

				// The collector has chosen the orphan and is about to
				// quarantine it.
				moving := env.store.pauseAt("move", key)
				collected := make(chan []gc.Deletion, 1)
				go func() {
					rep, err := env.collector(gc.Options{}).Collect(context.Background(), false)
					if err != nil {
						t.Errorf("collect: %v", err)
					}
					collected <- rep.Deleted
				}()
				moving.wait(t)
				// The retry has moved its tarball into place; its
				// compare-and-swap has not run.
				swapping := env.store.pauseAt("put", packumentKey("x"))
				published := make(chan int, 1)
				go func() {
					published <- env.publishAs("writer", "", newPublish("x", "1.0.0", tb)).Code
				}()
				swapping.wait(t)
				listed := env.store.pauseAt("walk", "npm/staging")
				moving.release()
				listed.wait(t)
				if listing == "after the swap" {
					swapping.release()
					if code := <-published; code != http.StatusCreated {
						t.Fatalf("publish: %d", code)
					}
				}
				listed.release()
				deleted := <-collected
				if listing == "before the swap" {
					swapping.release()
					if code := <-published; code != http.StatusCreated {
						t.Fatalf("publish: %d", code)
					}
				}

				expectDeletions(t, deleted)
				env.expectTarball("x", "1.0.0", tb)
				if ks := env.keys("npm/staging"); len(ks) != 0 {
					t.Fatalf("the publish left %v in staging", ks)
				}
				if ks := env.keys("gc/quarantine/npm"); len(ks) != 0 {
					t.Fatalf("quarantine still holds %v", ks)
				}
			})
		})
	}
}

// The marker is written only by a publish that finds its tarball stored
// already; and none is left behind.
func TestPublishWritesItsMarkerOnlyOverAStoredTarball(t *testing.T) {
	forEachStore(t, func(t *testing.T, env *gcEnv) {
		env.mustPublish("x", "1.0.0")
		if n := env.store.count("put", "-publishing"); n != 0 {
			t.Fatalf("a publish of new content wrote %d markers", n)
		}
		tb := tarballOf("x", "2.0.0")
		env.put(tarballKey("x", sha512Hex(tb)), tb)
		expectStatus(t, env.publishAs("writer", "", newPublish("x", "2.0.0", tb)), http.StatusCreated)
		if n := env.store.count("put", "-publishing"); n != 1 {
			t.Fatalf("a publish over a stored tarball wrote %d markers, want 1", n)
		}
		if ks := env.keys("npm/staging"); len(ks) != 0 {
			t.Fatalf("the publish left %v in staging", ks)
		}
		env.expectTarball("x", "2.0.0", tb)
	})
}

// pauseStore holds chosen calls until the test lets them go, and counts
// the calls it sees. It keeps the backend's own Walk and DeleteMany.
type pauseStore struct {
	storage.Driver

	mu     sync.Mutex
	pauses []*pause
	calls  []string // op + " " + key
}

type pause struct {
	op, key          string
	reached, proceed chan struct{}
}

// pauseAt holds the next call op (move, put, walk) of key, before it runs.
func (s *pauseStore) pauseAt(op, key string) *pause {
	p := &pause{op: op, key: key, reached: make(chan struct{}), proceed: make(chan struct{})}
	s.mu.Lock()
	s.pauses = append(s.pauses, p)
	s.mu.Unlock()
	return p
}

func (p *pause) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s of %s", p.op, p.key)
	}
}

func (p *pause) release() { close(p.proceed) }

func (s *pauseStore) hold(op, key string) {
	s.mu.Lock()
	s.calls = append(s.calls, op+" "+key)
	var hit *pause
	for i, p := range s.pauses {
		if p.op == op && p.key == key {
			hit = p
			s.pauses = slices.Delete(s.pauses, i, i+1)
			break
		}
	}
	s.mu.Unlock()
	if hit != nil {
		close(hit.reached)
		<-hit.proceed
	}
}

// count is how many calls op had a key containing part.
func (s *pauseStore) count(op, part string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		o, k, _ := strings.Cut(c, " ")
		if o == op && strings.Contains(k, part) {
			n++
		}
	}
	return n
}

func (s *pauseStore) Put(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	s.hold("put", key)
	return s.Driver.Put(ctx, key, r, cond)
}

func (s *pauseStore) Move(ctx context.Context, src, dst string) error {
	s.hold("move", src)
	return s.Driver.Move(ctx, src, dst)
}

func (s *pauseStore) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	s.hold("walk", prefix)
	return storage.Walk(ctx, s.Driver, prefix, fn)
}

func (s *pauseStore) DeleteMany(ctx context.Context, keys []string) error {
	return storage.DeleteMany(ctx, s.Driver, keys)
}
