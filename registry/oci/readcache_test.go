package oci

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The cache must never serve what the storage no longer holds, even when
// another process (a replica) wrote or deleted behind its back.
func TestReadCacheFollowsTheStorage(t *testing.T) {
	ctx := context.Background()
	store := inmemory.New()
	c := newReadCache(store, 1<<20)
	put := func(v string) {
		if _, err := store.Put(ctx, "tags/v1", bytes.NewReader([]byte(v)), storage.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	put("sha256:aaaa")
	for range 2 {
		if b, err := c.read(ctx, "tags/v1"); err != nil || string(b) != "sha256:aaaa" {
			t.Fatalf("read = %q, %v", b, err)
		}
	}
	put("sha256:bbbb") // same size: only the version tells them apart
	if b, err := c.read(ctx, "tags/v1"); err != nil || string(b) != "sha256:bbbb" {
		t.Fatalf("after a write elsewhere, read = %q, %v", b, err)
	}
	if err := store.Delete(ctx, "tags/v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.read(ctx, "tags/v1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a delete elsewhere, read err = %v, want not found", err)
	}
}

// A content-addressed object is served from memory for up to the recheck
// interval, then its deletion by another process shows.
func TestReadCacheRechecksImmutableObjects(t *testing.T) {
	ctx := context.Background()
	store := inmemory.New()
	c := newReadCache(store, 1<<20)
	c.recheck = 20 * time.Millisecond
	store.Put(ctx, "blobs/m", bytes.NewReader([]byte("manifest")), storage.Condition{})
	if b, err := c.readImmutable(ctx, "blobs/m"); err != nil || string(b) != "manifest" {
		t.Fatalf("read = %q, %v", b, err)
	}
	store.Delete(ctx, "blobs/m")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.readImmutable(ctx, "blobs/m")
		if errors.Is(err, storage.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a deleted object is still served after the recheck interval (err %v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A local drop takes effect at once.
	store.Put(ctx, "blobs/n", bytes.NewReader([]byte("n")), storage.Condition{})
	c.readImmutable(ctx, "blobs/n")
	store.Delete(ctx, "blobs/n")
	c.drop("blobs/n")
	if _, err := c.readImmutable(ctx, "blobs/n"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after drop, err = %v", err)
	}
}

func TestReadCacheStaysWithinBudget(t *testing.T) {
	ctx := context.Background()
	store := inmemory.New()
	c := newReadCache(store, 64<<10) // items up to 4 KiB are kept
	for i := range 100 {
		key := "m/" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		store.Put(ctx, key, bytes.NewReader(make([]byte, 4<<10)), storage.Condition{})
		if _, err := c.read(ctx, key); err != nil {
			t.Fatal(err)
		}
		if c.size > c.budget {
			t.Fatalf("cache holds %d bytes, budget %d", c.size, c.budget)
		}
	}
	if len(c.items) == 0 {
		t.Fatal("nothing cached")
	}
	// Rewriting cached keys while the cache is full keeps the accounting
	// exact (a tag that moves is such a rewrite).
	for round := range 20 {
		for i := range 100 {
			key := "m/" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			store.Put(ctx, key, bytes.NewReader(make([]byte, 3<<10+(round%2)<<10)), storage.Condition{})
			c.read(ctx, key)
		}
	}
	var sum int64
	for _, o := range c.items {
		sum += int64(len(o.data))
	}
	if sum != c.size || c.size > c.budget {
		t.Fatalf("cache counts %d bytes, holds %d, budget %d", c.size, sum, c.budget)
	}
	store.Put(ctx, "big", bytes.NewReader(make([]byte, 8<<10)), storage.Condition{})
	c.read(ctx, "big")
	if _, ok := c.items["big"]; ok {
		t.Fatal("an object above the per-item limit was cached")
	}
}

// Replacing an entry while the cache is full must not count its old size
// twice (the old entry is a candidate for eviction).
func TestReadCacheReplaceWhileFull(t *testing.T) {
	for range 50 {
		c := newReadCache(inmemory.New(), 10)
		c.put("a", cachedObject{version: "1", data: make([]byte, 5)})
		c.put("b", cachedObject{version: "1", data: make([]byte, 5)})
		c.put("a", cachedObject{version: "2", data: make([]byte, 6)})
		var sum int64
		for _, o := range c.items {
			sum += int64(len(o.data))
		}
		if sum != c.size || sum > c.budget {
			t.Fatalf("cache counts %d bytes, holds %d, budget %d", c.size, sum, c.budget)
		}
	}
}
