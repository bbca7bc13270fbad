package gc

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func stores(t *testing.T) map[string]storage.Driver {
	fs, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]storage.Driver{"inmemory": inmemory.New(), "filesystem": fs}
}

func TestLeaseOneHolderAtATimeUntilItExpires(t *testing.T) {
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			a := &Lease{Store: store, Holder: "a", TTL: time.Minute, now: clock.now}
			b := &Lease{Store: store, Holder: "b", TTL: time.Minute, now: clock.now}
			if held, err := a.Acquire(ctx); !held || err != nil {
				t.Fatalf("a on a free lease: %v %v", held, err)
			}
			if held, err := b.Acquire(ctx); held || err != nil {
				t.Fatalf("b while a holds it: %v %v", held, err)
			}
			clock.advance(50 * time.Second)
			if ok, err := a.Renew(ctx); !ok || err != nil {
				t.Fatalf("a renewing: %v %v", ok, err)
			}
			clock.advance(50 * time.Second) // 100 s after the first write, 50 after the renewal
			if held, _ := b.Acquire(ctx); held {
				t.Fatal("b took a lease a had renewed")
			}
			clock.advance(11 * time.Second) // a stopped renewing: expired
			if held, err := b.Acquire(ctx); !held || err != nil {
				t.Fatalf("b on an expired lease: %v %v", held, err)
			}
			if ok, _ := a.Renew(ctx); ok {
				t.Fatal("a renewed a lease b had taken")
			}
			if err := b.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if held, err := a.Acquire(ctx); !held || err != nil {
				t.Fatalf("a after b released: %v %v", held, err)
			}
		})
	}
}

// Replicas racing for a free or expired lease: exactly one wins each round.
func TestLeaseRaceHasOneWinner(t *testing.T) {
	for name, store := range stores(t) {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
			for round := range 20 {
				var winners atomic.Int32
				var wg sync.WaitGroup
				for i := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						l := &Lease{Store: store, Holder: fmt.Sprintf("r%d-%d", round, i), TTL: time.Minute, now: clock.now}
						if held, err := l.Acquire(context.Background()); err != nil {
							t.Error(err)
						} else if held {
							winners.Add(1)
						}
					}()
				}
				wg.Wait()
				if n := winners.Load(); n != 1 {
					t.Fatalf("round %d: %d replicas hold the lease", round, n)
				}
				clock.advance(2 * time.Minute) // the winner dies; the lease expires
			}
		})
	}
}
