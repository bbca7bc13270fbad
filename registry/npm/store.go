package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/unireg/unireg/registry/storage"
)

// The npm side's storage layout (docs/storage-layout.md):
//
//	npm/packages/<name>/packument.json          the package document, or the tombstone of a
//	                                            deleted one (keeping every version's publish time)
//	npm/packages/<name>/tarballs/<sha512 hex>   tarballs, by content
//	npm/staging/<id>                            a tarball being received
//
// npm/tokens/, npm/token-ids/ and npm/revoked/ hold the tokens made with
// `npm token create` and the revocations; auth.UserTokens owns them
// (registry/auth/usertokens.go).
//
// A scoped name takes two segments (@scope/name). Tarballs are stored by
// content so that two racing publishes of one version can never overwrite the
// tarball the winning packument points at.

func packageKey(name string) string   { return "npm/packages/" + name }
func packumentKey(name string) string { return packageKey(name) + "/packument.json" }
func tarballKey(name, sha512hex string) string {
	return packageKey(name) + "/tarballs/" + sha512hex
}

const packagesKey = "npm/packages"

// maxUpdateAttempts bounds the compare-and-swap loop of one write.
const maxUpdateAttempts = 64

// packages reads and writes packuments: cached reads, serialised writes.
type packages struct {
	store storage.Driver
	locks sync.Map // name -> *sync.Mutex
	cache *docCache
	// signing signs the versions of our documents as they are rendered.
	signing *SigningKeys
}

// load returns the package's document and its storage version. A package
// that does not exist has a nil document, and the version of its tombstone
// when it was deleted (else "").
func (ps *packages) load(ctx context.Context, name string) (packument, string, error) {
	p, version, err := ps.loadStored(ctx, name)
	if p.deleted() {
		p = nil
	}
	return p, version, err
}

// loadStored is load that returns a deleted package's tombstone too.
func (ps *packages) loadStored(ctx context.Context, name string) (packument, string, error) {
	return ps.loadKey(ctx, name, packumentKey(name))
}

// loadKey reads the document of name stored at key.
func (ps *packages) loadKey(ctx context.Context, name, key string) (packument, string, error) {
	b, info, err := storage.ReadAll(ctx, ps.store, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	p, err := decodePackument(b)
	if err != nil {
		return nil, "", fmt.Errorf("decode packument of %s: %w", name, err)
	}
	return p, info.Version, nil
}

func (p packument) deleted() bool {
	d, _ := p["_deleted"].(bool)
	return d
}

// tombstone replaces a deleted package's document. Storage has no
// conditional delete, so deleting is a compare-and-swap write too: a publish
// racing the deletion in another process then either lands before it (and
// the deletion retries) or after it, on top of the tombstone; never lost.
//
// The tombstone keeps the publish time of every version the package ever
// had (the document's time map, which the publish of a version writes in
// the same compare-and-swap as the version and nothing removes): a
// name@version is never reused, not even after the whole package went.
func tombstone(name string, last packument) packument {
	times := map[string]any{"unpublished": now()}
	for v, ts := range last.times() {
		if validVersion(v) {
			times[v] = ts
		}
	}
	return packument{"_id": name, "name": name, "_deleted": true, "time": times}
}

// revive carries a tombstone's version history into the document that
// brings its package back, refusing any version the package had before.
func revive(next, tomb packument) error {
	times := next.times()
	for v := range next.versions() {
		if _, ok := tomb.times()[v]; ok {
			return errVersionUsed(v, true)
		}
	}
	for v, ts := range tomb.times() {
		if _, ok := times[v]; !ok && validVersion(v) {
			times[v] = ts
		}
	}
	return nil
}

// cached returns the package's current cache entry, re-reading the document
// only when its storage version changed (also by another process), or nil
// when the package does not exist.
func (ps *packages) cached(ctx context.Context, name string) (*cachedDoc, error) {
	return ps.cachedAt(ctx, name, packumentKey(name))
}

// cachedAt is cached for the document stored at key, kept in the cache
// under cacheKey (the uplink's documents have keys of their own).
func (ps *packages) cachedAt(ctx context.Context, cacheKey, key string) (*cachedDoc, error) {
	info, err := ps.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		ps.cache.drop(cacheKey)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	prev := ps.cache.get(cacheKey)
	if prev != nil && prev.version == info.Version {
		return prev, nil
	}
	p, version, err := ps.loadKey(ctx, cacheKey, key)
	if p.deleted() {
		p = nil
	}
	if err != nil || p == nil {
		ps.cache.drop(cacheKey)
		return nil, err
	}
	c := newCachedDoc(p, version)
	c.abbreviatedAlready = strings.HasSuffix(key, "/abbreviated.json")
	if key == packumentKey(cacheKey) { // a package of ours, not the upstream's
		c.signing = ps.signing
		c.signatures = prev.signaturesFor(ps.signing) // unchanged versions are not signed again
	}
	ps.cache.put(cacheKey, c)
	return c, nil
}

// update applies change to the package's document under a per-package lock
// and a compare-and-swap write, retrying when another writer (another
// process on the same storage) got in between. change receives nil for a new
// package and returns the new document, or nil to delete the package.
func (ps *packages) update(ctx context.Context, name string, change func(cur packument) (packument, error)) (packument, error) {
	mu, _ := ps.locks.LoadOrStore(name, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	for range maxUpdateAttempts {
		stored, version, err := ps.loadStored(ctx, name)
		if err != nil {
			return nil, err
		}
		cur := stored
		if stored.deleted() {
			cur = nil
		}
		next, err := change(cur)
		if err != nil {
			return nil, err
		}
		if next == nil && cur == nil {
			return nil, nil
		}
		doc := next
		switch {
		case doc == nil:
			doc = tombstone(name, cur)
		case cur == nil && stored != nil:
			if err := revive(doc, stored); err != nil {
				return nil, err
			}
		}
		body, err := json.Marshal(doc)
		if err != nil {
			return nil, err
		}
		cond := storage.Condition{IfMatch: version}
		if version == "" {
			cond = storage.Condition{IfNoneMatch: true}
		}
		_, err = ps.store.Put(ctx, packumentKey(name), bytes.NewReader(body), cond)
		if errors.Is(err, storage.ErrPreconditionFailed) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("write packument of %s: %w", name, err)
		}
		return next, nil // nil after a deletion
	}
	return nil, newError(503, "too many concurrent changes to %s; try again", name)
}
