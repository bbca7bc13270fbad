package oci

import (
	"context"
	"sync"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

// readCache keeps the small objects that GETs read over and over (tags,
// revision links, manifests). A mutable object (a tag) is checked against
// the storage's current version on every read: a Stat instead of an open and
// a read, and never stale, not even when another process on the same storage
// (a replica) moved it. A content-addressed object (a manifest, a revision
// link) never changes while it exists; it is re-checked at most once per
// recheck interval, so a deletion by another replica shows within that time
// (a deletion through this process shows at once: see drop).
type readCache struct {
	store   storage.Driver
	budget  int64         // total bytes kept
	maxItem int64         // larger objects are read but not kept
	recheck time.Duration // see readImmutable

	mu    sync.Mutex
	size  int64
	items map[string]cachedObject
}

type cachedObject struct {
	version string
	data    []byte
	checked time.Time // when the storage last confirmed version
}

// recheckImmutable is how long a content-addressed object is served from
// memory before its existence is checked again.
const recheckImmutable = time.Second

func newReadCache(store storage.Driver, budget int64) *readCache {
	return &readCache{store: store, budget: budget, maxItem: budget / 16, recheck: recheckImmutable, items: map[string]cachedObject{}}
}

// readImmutable is read for a content-addressed object.
func (c *readCache) readImmutable(ctx context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	o, ok := c.items[key]
	c.mu.Unlock()
	if ok && time.Since(o.checked) < c.recheck {
		return o.data, nil
	}
	return c.read(ctx, key)
}

// read returns the object's content; the caller must not modify it.
func (c *readCache) read(ctx context.Context, key string) ([]byte, error) {
	now := time.Now()
	info, err := c.store.Stat(ctx, key)
	if err != nil {
		c.drop(key)
		return nil, err
	}
	c.mu.Lock()
	o, ok := c.items[key]
	c.mu.Unlock()
	if ok && o.version == info.Version {
		o.checked = now
		c.mu.Lock()
		if cur, still := c.items[key]; still && cur.version == o.version {
			c.items[key] = o
		}
		c.mu.Unlock()
		return o.data, nil
	}
	b, info, err := storage.ReadAll(ctx, c.store, key)
	if err != nil {
		c.drop(key)
		return nil, err
	}
	if int64(len(b)) <= c.maxItem && info.Version != "" {
		c.put(key, cachedObject{version: info.Version, data: b, checked: now})
	}
	return b, nil
}

func (c *readCache) put(key string, o cachedObject) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items[key]; ok {
		c.size -= int64(len(old.data))
		delete(c.items, key)
	}
	for k, v := range c.items { // map order is random: a random eviction
		if c.size+int64(len(o.data)) <= c.budget {
			break
		}
		delete(c.items, k)
		c.size -= int64(len(v.data))
	}
	c.items[key] = o
	c.size += int64(len(o.data))
}

func (c *readCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items[key]; ok {
		c.size -= int64(len(old.data))
		delete(c.items, key)
	}
}
