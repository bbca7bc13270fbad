package npm

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/unireg/unireg/registry/storage"
)

// A package's versions live in segments (store.go has the layout): objects
// that each hold the manifests and publish times of some versions, written
// once under a name of their own and never rewritten. The document lists
// them in order; every version the package has or had is in exactly one
// listed segment. A publish writes its version as a segment of one, then
// merges the last segments binary-counter style (while the last holds at
// least as many versions as the one before), so a package of n versions
// has at most about log2(n)+1 segments and a publish writes O(log n)
// versions amortized. A change to versions already published (deprecate,
// unpublish of one version) writes new copies of the segments that hold
// them.
//
// Segments are named at random, not by their content: an index only ever
// lists segments its predecessor listed or that its writer just wrote, so
// a segment no current index lists is never listed again, and the
// collector may delete one older than the grace without a check (one
// content addressed could be written again by a later identical merge
// while the collector deletes it).

// segmentsField is the document's list of segments, oldest first: objects
// {"id": <32 hex>, "versions": <how many versions it holds>}.
const segmentsField = "_segments"

func segmentsKey(name string) string    { return packageKey(name) + "/versions" }
func segmentKey(name, id string) string { return segmentsKey(name) + "/" + id + ".json" }

// segmentID reports whether id can name a segment.
func segmentID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// A segment is some versions of a package. Once built it is shared (the
// segment cache, the documents assembled from it) and never changed.
type segment struct {
	id       string                    // "" until written
	versions map[string]map[string]any // version -> manifest, read-only
	times    map[string]any            // version -> publish time, kept after an unpublish
	n        int                       // how many versions the segment names (seal)
}

func newSegment() *segment {
	return &segment{versions: map[string]map[string]any{}, times: map[string]any{}}
}

// seal counts the versions the segment names, when it is built.
func (s *segment) seal() *segment {
	s.n = len(s.times)
	for v := range s.versions {
		if _, ok := s.times[v]; !ok {
			s.n++
		}
	}
	return s
}

// has reports whether the segment names version v.
func (s *segment) has(v string) bool {
	if _, ok := s.times[v]; ok {
		return true
	}
	_, ok := s.versions[v]
	return ok
}

func (s *segment) encode() ([]byte, error) {
	return json.Marshal(map[string]any{"versions": s.versions, "time": s.times})
}

func decodeSegment(id string, b []byte) (*segment, error) {
	p, err := decodePackument(b)
	if err != nil {
		return nil, err
	}
	s := newSegment()
	s.id = id
	for v, m := range obj(p["versions"]) {
		if vm := obj(m); vm != nil {
			s.versions[v] = vm
		}
	}
	for v, t := range obj(p["time"]) {
		s.times[v] = t
	}
	return s.seal(), nil
}

// union is a and then b in one new segment.
func union(a, b *segment) *segment {
	s := newSegment()
	for _, from := range []*segment{a, b} {
		for v, m := range from.versions {
			s.versions[v] = m
		}
		for v, t := range from.times {
			s.times[v] = t
		}
	}
	return s.seal()
}

// mergeTail merges the last segments while the last holds at least as
// many versions as the one before it.
func mergeTail(segs []*segment) []*segment {
	for n := len(segs); n >= 2 && segs[n-1].n >= segs[n-2].n; n = len(segs) {
		segs = append(segs[:n-2], union(segs[n-2], segs[n-1]))
	}
	return segs
}

// planSegments returns the segments of the document that follows one with
// segments base, once changed into d: the segments d left alone, new
// copies of those holding a version d edited or removed or a time it
// changed, then one segment of what d added, and merges of the last ones.
func planSegments(base []*segment, d *draft) []*segment {
	dirty := make([]bool, len(base))
	times := d.times()
	for i, s := range base {
		for v, m := range s.versions {
			if !sameObject(d.vs[v], m) {
				dirty[i] = true // edited or removed
				break
			}
		}
		for v, t := range s.times {
			if dirty[i] {
				break
			}
			dirty[i] = !sameValue(times[v], t)
		}
	}
	// A version the draft did not add or edit is a stored one: only the
	// others need looking for in the segments.
	added := newSegment()
	for v := range d.owned {
		if !named(base, v) {
			added.versions[v] = d.vs[v]
		}
	}
	for v, t := range times {
		if _, stored := d.vs[v]; stored && !d.owned[v] {
			continue
		}
		if validVersion(v) && !named(base, v) {
			added.times[v] = t
		}
	}
	var out []*segment
	for i, s := range base {
		if dirty[i] || s.id == "" {
			if s = rebuild(s, d); s.n == 0 {
				continue
			}
		}
		out = append(out, s)
	}
	if added.seal().n > 0 {
		out = append(out, added)
	}
	return mergeTail(out)
}

// named reports whether one of segs names version v.
func named(segs []*segment, v string) bool {
	for _, s := range segs {
		if s.has(v) {
			return true
		}
	}
	return false
}

// rebuild is a new segment of the versions s names, as d has them.
func rebuild(s *segment, d *draft) *segment {
	next := newSegment()
	times := d.times()
	for _, vs := range []map[string]any{s.times, anyMap(s.versions)} {
		for v := range vs {
			if m := d.vs[v]; m != nil {
				next.versions[v] = m
			}
			if t, ok := times[v]; ok {
				next.times[v] = t
			}
		}
	}
	return next.seal()
}

func anyMap(m map[string]map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sameValue reports whether a and b are equal JSON values; publish times
// are strings, compared as such.
func sameValue(a, b any) bool {
	if sa, ok := a.(string); ok {
		sb, ok := b.(string)
		return ok && sa == sb
	}
	return reflect.DeepEqual(a, b)
}

// sameObject reports whether a and b are the same map, not only equal.
func sameObject(a, b map[string]any) bool {
	return a != nil && b != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// errSegmentGone means a segment the document listed is gone: the
// document changed since it was read (its writer deletes the segments it
// no longer lists), so it is read again.
var errSegmentGone = errors.New("a listed segment is gone")

// readSegment returns the segment id of name, from the cache when this
// process read or wrote it before (segments never change).
func (ps *packages) readSegment(ctx context.Context, name, id string) (*segment, error) {
	key := segmentKey(name, id)
	if s := ps.segments.get(key); s != nil {
		return s, nil
	}
	b, _, err := storage.ReadAll(ctx, ps.store, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errSegmentGone
	}
	if err != nil {
		return nil, fmt.Errorf("read segment %s of %s: %w", id, name, err)
	}
	s, err := decodeSegment(id, b)
	if err != nil {
		return nil, fmt.Errorf("%w: segment %s of %s: %v", errCorrupt, id, name, err)
	}
	ps.segments.put(key, s)
	return s, nil
}

// writeSegments names and writes the segments of segs not written yet,
// returning the keys it wrote.
func (ps *packages) writeSegments(ctx context.Context, name string, segs []*segment) ([]string, error) {
	var written []string
	for _, s := range segs {
		if s.id != "" {
			continue
		}
		body, err := s.encode()
		if err != nil {
			return written, err
		}
		id := make([]byte, 16)
		rand.Read(id)
		s.id = hex.EncodeToString(id)
		key := segmentKey(name, s.id)
		if _, err := ps.store.Put(ctx, key, bytes.NewReader(body), storage.Condition{IfNoneMatch: true}); err != nil {
			return written, fmt.Errorf("write segment of %s: %w", name, err)
		}
		written = append(written, key)
	}
	return written, nil
}

// segmentRefs is the document's list of segs.
func segmentRefs(segs []*segment) []any {
	refs := make([]any, len(segs))
	for i, s := range segs {
		refs[i] = map[string]any{"id": s.id, "versions": s.n}
	}
	return refs
}

// segmentCache keeps decoded segments by storage key within a budget of
// bytes, least recently used first out. A segment never changes, so an
// entry is right whichever process wrote it; nothing ever writes into one.
// A nil cache keeps nothing.
type segmentCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	lru     list.List // of *segmentEntry, most recently used first
	entries map[string]*list.Element
}

type segmentEntry struct {
	key  string
	seg  *segment
	size int64
}

func newSegmentCache(max int64) *segmentCache {
	return &segmentCache{max: max, entries: map[string]*list.Element{}}
}

func (c *segmentCache) get(key string) *segment {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if e == nil {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*segmentEntry).seg
}

func (c *segmentCache) put(key string, s *segment) {
	if c == nil {
		return
	}
	c.mu.Lock()
	_, ok := c.entries[key]
	c.mu.Unlock()
	if ok {
		return // every commit puts the segments it lists: most are cached
	}
	size := decodedSize(anyMap(s.versions)) + decodedSize(s.times)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; ok || size > c.max {
		return
	}
	c.entries[key] = c.lru.PushFront(&segmentEntry{key, s, size})
	c.size += size
	for c.size > c.max {
		old := c.lru.Remove(c.lru.Back()).(*segmentEntry)
		delete(c.entries, old.key)
		c.size -= old.size
	}
}

func (c *segmentCache) drop(key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		c.lru.Remove(e)
		delete(c.entries, key)
		c.size -= e.Value.(*segmentEntry).size
	}
}
