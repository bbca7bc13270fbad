package npm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage"
)

// The npm part of the garbage collector (docs/gc.md). What it sweeps:
//
//	npm/staging/<id>                              abandoned uploads (and publish markers), older than the grace
//	npm/packages/<name>/tarballs/<sha512 hex>     tarballs no version of the document names, older than the grace
//	npm/packages/<name>/versions/<id>.json        segments the document does not list, older than the grace
//	gc/quarantine/npm/<name>/<sha512 hex>         tarballs being verified, or left by a collection that stopped
//	npm/cache/...                                 the uplink's cache: idle, or beyond the byte budget
//
// Documents, the segments they list, tombstones and their time.<version>
// records always stay.
//
// Storage has no conditional delete, so a tarball is never deleted in
// place: it is moved to quarantine, then the collector looks for anything
// that took a reference since it read the document (a young object in
// npm/staging, a new version of the document) and moves it back if so.
// A publish that finds its tarball stored already writes a marker under
// npm/staging before it moves the tarball and deletes it only after its
// document's compare-and-swap (publish.go); reads fall back to the
// quarantine key (reads.go).

const (
	stagingKey         = "npm/staging"
	quarantinePrefix   = "gc/quarantine/npm"
	uplinkPackagesKey  = "npm/cache/packages"
	uplinkPulledPrefix = "npm/cache/pulled"
)

// quarantineKey is where the collector holds a tarball while it verifies
// that nothing took a reference to it.
func quarantineKey(name, sha512hex string) string {
	return quarantinePrefix + "/" + name + "/" + sha512hex
}

// deleteBatch is how many keys one DeleteMany takes (S3's DeleteObjects
// limit).
const deleteBatch = 1000

// GC returns the npm part of the garbage collector (docs/gc.md).
func (h *Handler) GC() gc.Part { return gcPart{h} }

type gcPart struct{ h *Handler }

func (gcPart) Name() string { return "npm" }

// Cached lists the uplink's cached packages that the idle rule keeps, one
// entry a package, for the cache's byte budget.
func (p gcPart) Cached(ctx context.Context, run *gc.Run) ([]gc.CachedEntry, error) {
	var entries []gc.CachedEntry
	_, err := p.h.walkCache(ctx, func(pkg *cachedPackage) error {
		_, kept, lastUsed := pkg.split(run)
		if len(kept) == 0 {
			return nil
		}
		e := gc.CachedEntry{ID: pkg.name, LastUsed: lastUsed}
		for _, o := range kept {
			e.Objects = append(e.Objects, gc.Sized{Key: o.key, Bytes: o.bytes})
		}
		entries = append(entries, e)
		return nil
	})
	return entries, err
}

// Collect sweeps abandoned staging objects, resolves what a stopped
// collection left in quarantine, sweeps unreferenced tarballs and evicts
// cached packages.
func (p gcPart) Collect(ctx context.Context, run *gc.Run) error {
	h := p.h
	s := &sweeper{store: h.store, run: run}
	var errs []error
	for _, step := range []struct {
		name string
		run  func(context.Context, *sweeper) error
	}{
		{"staging", h.sweepStaging},
		{"quarantine", h.resolveQuarantine},
		{"tarballs", h.sweepTarballs},
		{"cache", h.evictCache},
	} {
		// What a failed step decided before it failed goes too.
		err := errors.Join(step.run(ctx, s), s.flush(ctx))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", step.name, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// sweeper deletes in batches and records each deletion once it is done;
// in a dry run it records and deletes nothing, so a dry run takes the path
// of a real one.
type sweeper struct {
	store   storage.Driver
	run     *gc.Run
	keys    []string
	pending []gc.Deletion
}

// drop deletes key, recorded as d.
func (s *sweeper) drop(ctx context.Context, key string, d gc.Deletion) error {
	d.Protocol = "npm"
	s.keys = append(s.keys, key)
	s.pending = append(s.pending, d)
	if len(s.keys) >= deleteBatch {
		return s.flush(ctx)
	}
	return nil
}

func (s *sweeper) flush(ctx context.Context) error {
	keys, pending := s.keys, s.pending
	s.keys, s.pending = nil, nil
	if len(keys) == 0 {
		return nil
	}
	if !s.run.DryRun {
		if err := storage.DeleteMany(ctx, s.store, keys); err != nil {
			return err
		}
	}
	for _, d := range pending {
		s.run.Deleted(d)
	}
	return nil
}

// sweepStaging deletes staging objects older than the grace: uploads and
// markers of publishes that never finished.
func (h *Handler) sweepStaging(ctx context.Context, s *sweeper) error {
	return storage.Walk(ctx, h.store, stagingKey, func(info storage.Info) error {
		if s.run.Young(info.ModTime) {
			return nil
		}
		return s.drop(ctx, info.Key, gc.Deletion{Kind: "staging", Key: info.Key, Bytes: info.Size, Reason: "abandoned"})
	})
}

// A packageObject is an object of one package's tree: sub is its key
// below the package's name.
type packageObject struct {
	sub string
	storage.Info
}

// walkPackages calls fn once for every package below prefix (a tree of
// npm/packages' shape: <name>/..., scoped names in two segments), with its
// objects. The keys of one package share the prefix <name>/, so a walk in
// key order visits them together; fn runs when the walk has passed them.
func walkPackages(ctx context.Context, store storage.Driver, prefix string, fn func(name string, objs []packageObject) error) error {
	var name string
	var objs []packageObject
	err := storage.Walk(ctx, store, prefix, func(info storage.Info) error {
		n, sub, ok := splitPackageKey(strings.TrimPrefix(info.Key, prefix+"/"))
		if !ok {
			return nil
		}
		if n != name && len(objs) > 0 {
			if err := fn(name, objs); err != nil {
				return err
			}
			objs = nil
		}
		name = n
		objs = append(objs, packageObject{sub, info})
		return nil
	})
	if err != nil || len(objs) == 0 {
		return err
	}
	return fn(name, objs)
}

// splitPackageKey splits a key below a packages prefix into the package's
// name (@scope/name takes two segments) and the rest.
func splitPackageKey(rest string) (name, sub string, ok bool) {
	first, after, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	if !strings.HasPrefix(first, "@") {
		return first, after, after != ""
	}
	second, after, ok := strings.Cut(after, "/")
	if !ok || after == "" {
		return "", "", false
	}
	return first + "/" + second, after, true
}

// isSHA512Hex reports whether s can be a tarball's storage name.
func isSHA512Hex(s string) bool {
	if len(s) != 128 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// marked is what the mark read of one package's document found.
type marked struct {
	refs     map[string]bool // sha512 hex of every version's tarball
	segments map[string]bool // the storage keys of the segments the document lists
	version  string          // the document's storage version, "" when there is none
	ok       bool            // false: the document cannot be read; nothing of the package goes
}

// mark reads the package's document and the segments it lists (a
// tombstone names no tarball and lists no segment).
func (h *Handler) mark(ctx context.Context, name string) (marked, error) {
	st, err := h.packages.loadStored(ctx, name)
	if errors.Is(err, errCorrupt) {
		h.opts.Logger.Warn("gc: the document of a package cannot be read; its tarballs and segments stay", "package", name, "error", err)
		return marked{}, nil
	}
	if err != nil {
		return marked{}, err
	}
	m := marked{refs: map[string]bool{}, segments: map[string]bool{}, version: st.version}
	for _, s := range st.segs {
		if s.id != "" {
			m.segments[segmentKey(name, s.id)] = true
		}
	}
	if st.top == nil || st.top.deleted() {
		m.ok = true
		return m, nil
	}
	for v, vm := range st.assemble().versions() {
		sum, ok := sha512HexOfIntegrity(str(distOf(obj(vm))["integrity"]))
		if !ok {
			h.opts.Logger.Warn("gc: a version has no sha512 integrity; the package's tarballs stay", "package", name, "version", v)
			return m, nil
		}
		m.refs[sum] = true
	}
	m.ok = true
	return m, nil
}

// A candidate is a tarball the collector found unreferenced.
type candidate struct {
	sum         string
	bytes       int64
	quarantined bool // found in quarantine, left by an earlier collection
}

// sweepTarballs deletes, through quarantine, the tarballs older than the
// grace that no version of their package's document names.
func (h *Handler) sweepTarballs(ctx context.Context, s *sweeper) error {
	return walkPackages(ctx, h.store, packagesKey, func(name string, objs []packageObject) error {
		var old []candidate
		var segments []storage.Info
		for _, o := range objs {
			if s.run.Young(o.ModTime) {
				continue
			}
			if sum, ok := strings.CutPrefix(o.sub, "tarballs/"); ok && isSHA512Hex(sum) {
				old = append(old, candidate{sum: sum, bytes: o.Size})
			}
			if id, ok := strings.CutPrefix(o.sub, "versions/"); ok && segmentID(strings.TrimSuffix(id, ".json")) {
				segments = append(segments, o.Info)
			}
		}
		if len(old) == 0 && len(segments) == 0 {
			return nil // nothing to judge: the document need not be read
		}
		m, err := h.mark(ctx, name)
		if err != nil || !m.ok {
			return err
		}
		if err := h.sweepSegments(ctx, s, name, m, segments); err != nil {
			return err
		}
		var cands []candidate
		for _, c := range old {
			if !m.refs[c.sum] {
				cands = append(cands, c)
			}
		}
		return h.judge(ctx, s, name, m.version, cands)
	})
}

// sweepSegments deletes the segments older than the grace that the
// document does not list: left by an update that stopped between its
// segments and its index. No later index can list them (segments.go), so
// they go without the tarballs' quarantine; a younger one may be an
// update's in flight, and stays.
func (h *Handler) sweepSegments(ctx context.Context, s *sweeper, name string, m marked, old []storage.Info) error {
	for _, info := range old {
		if m.segments[info.Key] {
			continue
		}
		d := gc.Deletion{Kind: "staging", Key: info.Key, Bytes: info.Size, Repository: name, Reason: "abandoned"}
		if err := s.drop(ctx, info.Key, d); err != nil {
			return err
		}
	}
	return nil
}

// resolveQuarantine settles the tarballs a collection that stopped left in
// quarantine: those the document names now go back, the others are judged
// as candidates.
func (h *Handler) resolveQuarantine(ctx context.Context, s *sweeper) error {
	return walkPackages(ctx, h.store, quarantinePrefix, func(name string, objs []packageObject) error {
		m, err := h.mark(ctx, name)
		if err != nil || !m.ok {
			return err
		}
		var cands []candidate
		for _, o := range objs {
			if !isSHA512Hex(o.sub) {
				continue
			}
			if !m.refs[o.sub] {
				cands = append(cands, candidate{sum: o.sub, bytes: o.Size, quarantined: true})
				continue
			}
			if !s.run.DryRun {
				if err := h.store.Move(ctx, o.Key, tarballKey(name, o.sub)); err != nil && !errors.Is(err, storage.ErrNotFound) {
					return fmt.Errorf("restore tarball %s of %s: %w", o.sub, name, err)
				}
			}
		}
		return h.judge(ctx, s, name, m.version, cands)
	})
}

// judge moves one package's candidates to quarantine, then checks whether
// anything took a reference since the document was read at version: if
// so it moves them back, else it deletes them. A dry run moves nothing and
// records what the checks would let go.
func (h *Handler) judge(ctx context.Context, s *sweeper, name, version string, cands []candidate) error {
	var held []candidate
	for _, c := range cands {
		if !c.quarantined && !s.run.DryRun {
			err := h.store.Move(ctx, tarballKey(name, c.sum), quarantineKey(name, c.sum))
			if errors.Is(err, storage.ErrNotFound) {
				continue // deleted meanwhile (an unpublish's cleanup)
			}
			if err != nil {
				h.release(ctx, s.run, name, held)
				return fmt.Errorf("quarantine tarball %s of %s: %w", c.sum, name, err)
			}
		}
		held = append(held, c)
	}
	if len(held) == 0 {
		return nil
	}
	taken, err := h.takenSince(ctx, s.run, name, version)
	if err != nil || taken {
		h.release(ctx, s.run, name, held)
		return err
	}
	for _, c := range held {
		key := tarballKey(name, c.sum)
		if c.quarantined {
			key = quarantineKey(name, c.sum)
		}
		d := gc.Deletion{Kind: "tarball", Key: key, Bytes: c.bytes, Repository: name, Digest: "sha512:" + c.sum, Reason: "unreferenced"}
		if err := s.drop(ctx, quarantineKey(name, c.sum), d); err != nil {
			return err
		}
	}
	return nil
}

// release moves quarantined tarballs back to their keys.
func (h *Handler) release(ctx context.Context, run *gc.Run, name string, held []candidate) {
	if run.DryRun {
		return
	}
	ctx = context.WithoutCancel(ctx)
	for _, c := range held {
		if err := h.store.Move(ctx, quarantineKey(name, c.sum), tarballKey(name, c.sum)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			// Still in quarantine: reads find it there, the next
			// collection moves it back.
			h.opts.Logger.Warn("gc: could not move a tarball back from quarantine", "package", name, "tarball", c.sum, "error", err)
		}
	}
}

// errYoung stops a walk of npm/staging at its first young object.
var errYoung = errors.New("a young staging object")

// takenSince reports whether a reference to one of name's tarballs may
// have been taken since its document was read at version. Listed after
// the move to quarantine: a publish between its upload and its document's
// compare-and-swap has a young object in npm/staging (the upload, or the
// marker of a publish that found its tarball stored already, whose move
// the quarantine may have taken); one that swapped since changed the
// document's version.
func (h *Handler) takenSince(ctx context.Context, run *gc.Run, name, version string) (bool, error) {
	err := storage.Walk(ctx, h.store, stagingKey, func(info storage.Info) error {
		if run.Young(info.ModTime) {
			return errYoung
		}
		return nil
	})
	if errors.Is(err, errYoung) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("list staging: %w", err)
	}
	info, err := h.store.Stat(ctx, packumentKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return version != "", nil
	}
	if err != nil {
		return false, err
	}
	return info.Version != version, nil
}

// A cachedPackage is what the uplink's cache holds of one package.
type cachedPackage struct {
	name     string
	docs     []storage.Info // packument.json, abbreviated.json
	tarballs []cachedTarball
}

type cachedTarball struct {
	storage.Info
	record   *storage.Info // its pulled record, if any
	lastUsed time.Time     // the last pull, or the download without a record
}

// A cacheObject is one stored object of the cache and its kind.
type cacheObject struct {
	kind  string
	key   string
	bytes int64
}

// split applies the idle rule: a tarball goes with its record when its
// last pull is idle, the documents when they are idle and no tarball of
// the package stays. It returns what goes, what stays and when what stays
// was last used.
func (p *cachedPackage) split(run *gc.Run) (idle, kept []cacheObject, lastUsed time.Time) {
	for _, t := range p.tarballs {
		objs := []cacheObject{{"tarball", t.Key, t.Size}}
		if t.record != nil {
			objs = append(objs, cacheObject{"pulled-record", t.record.Key, 0})
		}
		if run.Idle(t.lastUsed) {
			idle = append(idle, objs...)
			continue
		}
		kept = append(kept, objs...)
		if t.lastUsed.After(lastUsed) {
			lastUsed = t.lastUsed
		}
	}
	tarballKept := len(kept) > 0
	for _, d := range p.docs {
		if !tarballKept && run.Idle(d.ModTime) {
			idle = append(idle, cacheObject{"cached-document", d.Key, d.Size})
			continue
		}
		kept = append(kept, cacheObject{"cached-document", d.Key, d.Size})
		if d.ModTime.After(lastUsed) {
			lastUsed = d.ModTime
		}
	}
	return idle, kept, lastUsed
}

// walkCache calls fn for every cached package, and returns the pulled
// records that belong to no cached tarball.
func (h *Handler) walkCache(ctx context.Context, fn func(*cachedPackage) error) ([]storage.Info, error) {
	pulled := map[string]storage.Info{}
	err := storage.Walk(ctx, h.store, uplinkPulledPrefix, func(info storage.Info) error {
		pulled[info.Key] = info
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = walkPackages(ctx, h.store, uplinkPackagesKey, func(name string, objs []packageObject) error {
		pkg := &cachedPackage{name: name}
		for _, o := range objs {
			if o.sub == "packument.json" || o.sub == "abbreviated.json" {
				pkg.docs = append(pkg.docs, o.Info)
				continue
			}
			sum, ok := strings.CutPrefix(o.sub, "tarballs/")
			if !ok {
				continue
			}
			t := cachedTarball{Info: o.Info, lastUsed: o.ModTime}
			if r, ok := pulled[uplinkPulledKey(name, sum)]; ok {
				delete(pulled, r.Key)
				t.record = &r
				if r.ModTime.After(t.lastUsed) {
					t.lastUsed = r.ModTime
				}
			}
			pkg.tarballs = append(pkg.tarballs, t)
		}
		return fn(pkg)
	})
	if err != nil {
		return nil, err
	}
	var orphans []storage.Info
	for _, r := range pulled {
		orphans = append(orphans, r)
	}
	return orphans, nil
}

// evictCache deletes what the idle rule lets go, every object of the
// packages the byte budget evicts, and idle records of tarballs no longer
// cached. Cached content is fetched again when pulled: no quarantine.
func (h *Handler) evictCache(ctx context.Context, s *sweeper) error {
	orphans, err := h.walkCache(ctx, func(pkg *cachedPackage) error {
		idle, kept, _ := pkg.split(s.run)
		var evicted []cacheObject
		if s.run.Evicted("npm", pkg.name) {
			evicted = kept
		}
		for _, group := range []struct {
			objs   []cacheObject
			reason string
		}{{idle, "cache-idle"}, {evicted, "cache-bytes"}} {
			for _, o := range group.objs {
				d := gc.Deletion{Kind: o.kind, Key: o.key, Bytes: o.bytes, Repository: pkg.name, Reason: group.reason}
				if err := s.drop(ctx, o.key, d); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range orphans {
		if s.run.Idle(r.ModTime) {
			if err := s.drop(ctx, r.Key, gc.Deletion{Kind: "pulled-record", Key: r.Key, Reason: "cache-idle"}); err != nil {
				return err
			}
		}
	}
	return nil
}
