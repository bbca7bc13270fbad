package oci

import (
	"context"
	"sync"

	"github.com/unireg/unireg/registry/storage"
)

// readCache keeps the small objects that GETs read over and over (tags,
// revision links, manifests) and checks each against the storage's current
// version of the object on every read: a Stat instead of an open and a read,
// and never stale, not even when another process on the same storage (a
// replica) changed or deleted the object.
type readCache struct {
	store   storage.Driver
	budget  int64 // total bytes kept
	maxItem int64 // larger objects are read but not kept

	mu    sync.Mutex
	size  int64
	items map[string]cachedObject
}

type cachedObject struct {
	version string
	data    []byte
}

func newReadCache(store storage.Driver, budget int64) *readCache {
	return &readCache{store: store, budget: budget, maxItem: budget / 16, items: map[string]cachedObject{}}
}

// read returns the object's content; the caller must not modify it.
func (c *readCache) read(ctx context.Context, key string) ([]byte, error) {
	info, err := c.store.Stat(ctx, key)
	if err != nil {
		c.drop(key)
		return nil, err
	}
	c.mu.Lock()
	o, ok := c.items[key]
	c.mu.Unlock()
	if ok && o.version == info.Version {
		return o.data, nil
	}
	b, info, err := storage.ReadAll(ctx, c.store, key)
	if err != nil {
		c.drop(key)
		return nil, err
	}
	if int64(len(b)) <= c.maxItem && info.Version != "" {
		c.put(key, cachedObject{version: info.Version, data: b})
	}
	return b, nil
}

func (c *readCache) put(key string, o cachedObject) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.items[key]; ok {
		c.size -= int64(len(old.data))
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
