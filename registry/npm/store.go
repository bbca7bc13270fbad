package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/unireg/unireg/registry/storage"
)

// The npm side's storage layout (docs/storage-layout.md):
//
//	npm/packages/<name>/packument.json          the package's index: its top-level fields (name,
//	                                            dist-tags, readme, maintainers, users, _rev, the
//	                                            time map but for version times) and the list of
//	                                            its segments; or the tombstone of a deleted one
//	                                            (keeping every version's publish time)
//	npm/packages/<name>/versions/<id>.json      a segment: some versions' manifests and publish
//	                                            times, written once (segments.go)
//	npm/packages/<name>/tarballs/<sha512 hex>   tarballs, by content
//	npm/staging/<id>                            a tarball being received
//
// npm/tokens/, npm/token-ids/ and npm/revoked/ hold the tokens made with
// `npm token create` and the revocations; auth.UserTokens owns them
// (registry/auth/usertokens.go).
//
// The index is the commit point: an update writes the segments it needs
// first, then swaps the index, so a crash in between leaves only a segment
// no index lists, which the collector sweeps after the grace (gc.go). A
// publish thus writes its one version, the index (which no longer grows
// with the versions: no manifests, no version times) and amortized
// O(log n) versions of merges, where it rewrote the whole document before.
// A document of the older layout (the whole packument, versions included,
// no segments) is read as one unwritten segment and written in the new
// layout by its next update; tombstones are written whole, in that layout.
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

// maxReadAttempts bounds the reads of one document whose listed segments
// keep going (each time because the document changed meanwhile).
const maxReadAttempts = 8

// errCorrupt means a stored document or segment is not what this package
// writes; callers that must not guess (the collector) tell it apart.
var errCorrupt = errors.New("corrupt npm document")

// packages reads and writes packuments: cached reads, serialised writes.
type packages struct {
	store    storage.Driver
	locks    sync.Map // name -> *sync.Mutex
	cache    *docCache
	segments *segmentCache
	// signing signs the versions of our documents as they are rendered.
	signing *SigningKeys
	// written, when set, is told of every write update made: the
	// package's new document (nil when deleted) and its index's Info.
	written func(name string, doc packument, info storage.Info)
}

// A stored is a package's document as read: the index's top-level fields
// and its segments.
type stored struct {
	top     packument // nil when the package never existed; a tombstone's fields when deleted
	segs    []*segment
	version string // the index's storage version, "" when there is none
}

// assemble returns the whole document: the top-level fields, every
// version of the segments, and the time map with the version times. The
// manifests are shared with the segments: read-only.
func (st *stored) assemble() packument {
	if st.top == nil {
		return nil
	}
	p := maps.Clone(st.top)
	versions := map[string]any{}
	times := maps.Clone(obj(st.top["time"]))
	if times == nil {
		times = map[string]any{}
	}
	for _, s := range st.segs {
		for v, m := range s.versions {
			versions[v] = m
		}
		for v, t := range s.times {
			times[v] = t
		}
	}
	p["versions"], p["time"] = versions, times
	return p
}

// draft returns the document for a change: nil when there is none or it
// was deleted.
func (st *stored) draft() *draft {
	if st.top == nil || st.top.deleted() {
		return nil
	}
	d := newDraft(st.top) // decoded for this update alone: the draft's own
	n := 0
	for _, s := range st.segs {
		n += s.n
	}
	d.vs = make(map[string]map[string]any, n+1)
	times := make(map[string]any, n+8)
	for k, t := range obj(st.top["time"]) {
		times[k] = t
	}
	for _, s := range st.segs {
		for v, m := range s.versions {
			d.vs[v] = m
		}
		for v, t := range s.times {
			times[v] = t
		}
	}
	d.packument["time"] = times
	return d
}

// load returns the package's document and its storage version. A package
// that does not exist has a nil document, and the version of its tombstone
// when it was deleted (else "").
func (ps *packages) load(ctx context.Context, name string) (packument, string, error) {
	st, err := ps.loadStored(ctx, name)
	if err != nil {
		return nil, "", err
	}
	if st.top.deleted() {
		return nil, st.version, nil
	}
	return st.assemble(), st.version, nil
}

// exists reports whether the package exists (and was not deleted),
// reading its index alone.
func (ps *packages) exists(ctx context.Context, name string) (bool, error) {
	b, _, err := storage.ReadAll(ctx, ps.store, packumentKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	p, err := decodePackument(b)
	if err != nil {
		return false, fmt.Errorf("%w: packument of %s: %v", errCorrupt, name, err)
	}
	return !p.deleted(), nil
}

// loadStored reads the package's index and its segments, the tombstone of
// a deleted package too.
func (ps *packages) loadStored(ctx context.Context, name string) (*stored, error) {
	for range maxReadAttempts {
		b, info, err := storage.ReadAll(ctx, ps.store, packumentKey(name))
		if errors.Is(err, storage.ErrNotFound) {
			return &stored{}, nil
		}
		if err != nil {
			return nil, err
		}
		p, err := decodePackument(b)
		if err != nil {
			return nil, fmt.Errorf("%w: packument of %s: %v", errCorrupt, name, err)
		}
		st, err := ps.open(ctx, name, p)
		if errors.Is(err, errSegmentGone) {
			continue
		}
		if err != nil {
			return nil, err
		}
		st.version = info.Version
		return st, nil
	}
	return nil, newError(503, "too many concurrent changes to %s; try again", name)
}

// open reads the segments a decoded index lists; a document of the older
// layout becomes one segment, not written yet.
func (ps *packages) open(ctx context.Context, name string, p packument) (*stored, error) {
	refs, indexed := p[segmentsField].([]any)
	if !indexed {
		return &stored{top: p, segs: splitWhole(p)}, nil
	}
	delete(p, segmentsField)
	st := &stored{top: p}
	for _, r := range refs {
		id := str(obj(r)["id"])
		if !segmentID(id) {
			return nil, fmt.Errorf("%w: packument of %s lists segment %q", errCorrupt, name, truncate(id))
		}
		s, err := ps.readSegment(ctx, name, id)
		if err != nil {
			return nil, err
		}
		st.segs = append(st.segs, s)
	}
	return st, nil
}

// splitWhole moves a whole document's versions and version times into one
// segment, not written yet, and keeps the readme once, at the top level,
// as documents of this layout do (it followed the latest version before).
func splitWhole(p packument) []*segment {
	s := newSegment()
	versions := obj(p["versions"])
	if _, ok := p["readme"]; !ok {
		if latest := obj(versions[str(obj(p["dist-tags"])["latest"])]); latest != nil {
			if r, ok := latest["readme"]; ok {
				p["readme"] = r
			}
		}
	}
	for v, m := range versions {
		if vm := obj(m); vm != nil {
			delete(vm, "readme")
			delete(vm, "readmeFilename")
			s.versions[v] = vm
		}
	}
	delete(p, "versions")
	times := obj(p["time"])
	for v, t := range times {
		if validVersion(v) {
			s.times[v] = t
			delete(times, v)
		}
	}
	if s.seal().n == 0 {
		return nil
	}
	return []*segment{s}
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
// It is written whole, without segments: the deleted package's segments
// go once it is written.
func tombstone(name string, last *draft) packument {
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
func revive(next *draft, tomb packument) error {
	times, tombTimes := next.times(), tomb.times()
	for v := range next.versions() {
		if _, ok := tombTimes[v]; ok {
			return errVersionUsed(v, true)
		}
	}
	for v, ts := range tombTimes {
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
// under cacheKey (the uplink's documents have keys of their own, and are
// stored whole, as the upstream sent them).
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
	ours := key == packumentKey(cacheKey) // a package of ours, not the upstream's
	var p packument
	var version string
	if ours {
		p, version, err = ps.load(ctx, cacheKey)
	} else {
		p, version, err = ps.loadWhole(ctx, cacheKey, key)
	}
	if err != nil || p == nil {
		ps.cache.drop(cacheKey)
		return nil, err
	}
	c := newCachedDoc(p, version)
	c.abbreviatedAlready = strings.HasSuffix(key, "/abbreviated.json")
	if ours {
		c.signing = ps.signing
		c.signatures = prev.signaturesFor(ps.signing) // unchanged versions are not signed again
	}
	ps.cache.put(cacheKey, c)
	return c, nil
}

// loadWhole reads a document stored whole at key (the uplink's), nil when
// it is absent or a tombstone.
func (ps *packages) loadWhole(ctx context.Context, name, key string) (packument, string, error) {
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
	if p.deleted() {
		return nil, info.Version, nil
	}
	return p, info.Version, nil
}

// update applies change to the package's document under a per-package lock
// and a compare-and-swap write of its index, retrying when another writer
// (another process on the same storage) got in between: change runs again
// on the document that writer left. change receives nil for a new package
// and returns the new document, or nil to delete the package.
func (ps *packages) update(ctx context.Context, name string, change func(cur *draft) (*draft, error)) (*draft, error) {
	mu, _ := ps.locks.LoadOrStore(name, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	for range maxUpdateAttempts {
		st, err := ps.loadStored(ctx, name)
		if err != nil {
			return nil, err
		}
		cur := st.draft()
		next, err := change(cur)
		if err != nil {
			return nil, err
		}
		if next == nil && cur == nil {
			return nil, nil
		}
		var segs []*segment
		index := func() packument { return indexDoc(next, segs) } // once segs are named
		switch {
		case next == nil:
			tomb := tombstone(name, cur)
			index = func() packument { return tomb }
		default:
			if cur == nil && st.top != nil {
				if err := revive(next, st.assemble()); err != nil {
					return nil, err
				}
			}
			segs = planSegments(st.segs, next)
		}
		info, err := ps.commit(ctx, name, st, segs, index)
		if errors.Is(err, storage.ErrPreconditionFailed) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ps.written != nil { // under the package's lock: in the order of the writes
			var doc packument
			if next != nil {
				doc = next.doc()
			}
			ps.written(name, doc, info)
		}
		return next, nil // nil after a deletion
	}
	return nil, newError(503, "too many concurrent changes to %s; try again", name)
}

// indexDoc is the index of d with segments segs: its top-level fields, the
// time map without the version times (they are in the segments).
func indexDoc(d *draft, segs []*segment) packument {
	doc := maps.Clone(d.packument)
	delete(doc, "versions")
	times := map[string]any{}
	for k, t := range d.times() {
		if _, isVersion := d.vs[k]; !isVersion && !named(segs, k) { // created, modified: planSegments put every version's in a segment
			times[k] = t
		}
	}
	doc["time"] = times
	doc[segmentsField] = segmentRefs(segs)
	return doc
}

// commit writes the segments of segs not written yet, then swaps the index
// for the one index returns (once they are named) if it is still at st's
// version. The segments st listed and doc
// does not are deleted once it is in place; the segments written for an
// index that did not land, at once. It returns the Info of the index written.
func (ps *packages) commit(ctx context.Context, name string, st *stored, segs []*segment, index func() packument) (storage.Info, error) {
	var info storage.Info
	written, err := ps.writeSegments(ctx, name, segs)
	if err == nil {
		info, err = ps.swapIndex(ctx, name, st.version, index())
	}
	cleanup := context.WithoutCancel(ctx)
	if err != nil {
		if len(written) > 0 {
			storage.DeleteMany(cleanup, ps.store, written)
		}
		if errors.Is(err, storage.ErrPreconditionFailed) {
			return info, err
		}
		return info, fmt.Errorf("write packument of %s: %w", name, err)
	}
	kept := map[string]bool{}
	for _, s := range segs {
		kept[s.id] = true
		ps.segments.put(segmentKey(name, s.id), s)
	}
	var gone []string
	for _, s := range st.segs {
		if s.id != "" && !kept[s.id] {
			gone = append(gone, segmentKey(name, s.id))
			ps.segments.drop(segmentKey(name, s.id))
		}
	}
	// Readers of the index before this one read it again when a segment
	// it listed is gone; none is listed ever again (segments.go).
	if len(gone) > 0 {
		storage.DeleteMany(cleanup, ps.store, gone)
	}
	return info, nil
}

// swapIndex writes the index doc over the one at version ("" when none).
func (ps *packages) swapIndex(ctx context.Context, name, version string, doc packument) (storage.Info, error) {
	body, err := json.Marshal(doc)
	if err != nil {
		return storage.Info{}, err
	}
	cond := storage.Condition{IfMatch: version}
	if version == "" {
		cond = storage.Condition{IfNoneMatch: true}
	}
	return ps.store.Put(ctx, packumentKey(name), bytes.NewReader(body), cond)
}
