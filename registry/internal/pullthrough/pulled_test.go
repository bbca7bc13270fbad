package pullthrough

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// countingStore counts the writes to an in-memory store.
type countingStore struct {
	*inmemory.Driver
	puts        atomic.Int32
	cancelledAt atomic.Int32 // puts made with an ended context
}

func (s *countingStore) Put(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	s.puts.Add(1)
	if ctx.Err() != nil {
		s.cancelledAt.Add(1)
	}
	return s.Driver.Put(ctx, key, r, cond)
}

func TestPulledTouchWritesOncePerInterval(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	p := &Pulled{Store: store, Interval: time.Hour}
	key := "cache/pulled/docker.io/sha256/abc"
	for range 10 {
		p.Touch(context.Background(), key)
	}
	if n := store.puts.Load(); n != 1 {
		t.Fatalf("10 Touches within the interval wrote %d times, want 1", n)
	}
	info, err := store.Stat(context.Background(), key)
	if err != nil {
		t.Fatalf("the pulled record was not written: %v", err)
	}
	if info.Size != 0 {
		t.Errorf("pulled record is %d bytes, want an empty object", info.Size)
	}
	// Once the interval has passed, the next Touch writes again.
	p.mu.Lock()
	p.last[key] = time.Now().Add(-time.Hour - time.Second)
	p.mu.Unlock()
	p.Touch(context.Background(), key)
	p.Touch(context.Background(), key)
	if n := store.puts.Load(); n != 2 {
		t.Fatalf("Touches after the interval wrote %d times in all, want 2", n)
	}
	again, err := store.Stat(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if again.Version == info.Version {
		t.Fatal("the record was not rewritten after the interval")
	}
}

func TestPulledTouchKeysAreIndependent(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	p := &Pulled{Store: store, Interval: time.Hour}
	for i := range 5 {
		p.Touch(context.Background(), fmt.Sprintf("cache/pulled/%d", i))
	}
	if n := store.puts.Load(); n != 5 {
		t.Fatalf("5 different keys wrote %d times, want 5", n)
	}
}

func TestPulledTouchDefaultInterval(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	p := &Pulled{Store: store}
	p.Touch(context.Background(), "cache/pulled/k")
	p.mu.Lock()
	p.last["cache/pulled/k"] = time.Now().Add(-DefaultPulledInterval + time.Minute)
	p.mu.Unlock()
	p.Touch(context.Background(), "cache/pulled/k")
	if n := store.puts.Load(); n != 1 {
		t.Fatalf("zero Interval: wrote %d times within the default interval, want 1", n)
	}
}

func TestPulledTouchConcurrentWritesOnce(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	p := &Pulled{Store: store, Interval: time.Hour}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() { defer wg.Done(); p.Touch(context.Background(), "cache/pulled/k") }()
	}
	wg.Wait()
	if n := store.puts.Load(); n != 1 {
		t.Fatalf("50 concurrent Touches wrote %d times, want 1", n)
	}
}

func TestPulledTouchOutlivesTheRequest(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	p := &Pulled{Store: store, Interval: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client hung up as its pull ended
	p.Touch(ctx, "cache/pulled/k")
	if store.puts.Load() != 1 || store.cancelledAt.Load() != 0 {
		t.Fatalf("Touch with an ended request context: %d puts, %d of them with an ended context; want 1, 0",
			store.puts.Load(), store.cancelledAt.Load())
	}
}

func TestPulledMemoIsBounded(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	p := &Pulled{Store: store, Interval: time.Hour}
	// Fill the memo to its bound as a long run of distinct pulls would.
	p.last = make(map[string]time.Time, maxPulledMemo)
	now := time.Now()
	for i := range maxPulledMemo {
		p.last[fmt.Sprintf("cache/pulled/%d", i)] = now
	}
	for i := range 100 {
		p.Touch(context.Background(), fmt.Sprintf("cache/pulled/new-%d", i))
		p.mu.Lock()
		size := len(p.last)
		p.mu.Unlock()
		if size > maxPulledMemo {
			t.Fatalf("pulled memo holds %d entries, want at most %d", size, maxPulledMemo)
		}
	}
	// The newest keys are still remembered.
	before := store.puts.Load()
	p.Touch(context.Background(), "cache/pulled/new-99")
	if store.puts.Load() != before {
		t.Fatal("a key touched just now was written again: the memo lost its newest entries")
	}
}
