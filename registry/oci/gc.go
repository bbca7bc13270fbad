package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage"
)

// The OCI part of the garbage collector (docs/gc.md; the safety argument
// is in docs/storage-layout.md).
//
// Mark: every revision a repository holds is a root, except manifests that
// retention deletes (its tags first, then untagged manifests past
// untagged-after), referrers whose subject is gone, and cached manifests
// that the cache evicts. A root marks its content, config and layers, its
// children (an index's manifests, recursively) and, through their subject,
// its referrers. Sweep: a blob nothing marks, whose content, ref and links
// are all older than the grace, is moved to quarantine; then the
// collector looks again (the ref of each, and every revision written
// since the mark) and moves back what gained a reference, and deletes the
// rest with its ref and links.

// GC returns the OCI part of the garbage collector.
func (h *Handler) GC() gc.Part { return &gcPart{h: h} }

type gcPart struct {
	h *Handler

	mu      sync.Mutex
	scanRun *gc.Run // the run scan belongs to
	scan    *gcScan
}

func (*gcPart) Name() string { return "oci" }

// gcIdentity is who the collector's events name.
var gcIdentity = &auth.Identity{Subject: "unireg-gc"}

// gcWorkers is how many storage requests the collector has in flight.
const gcWorkers = 16

// What one walk of the store saw.
type gcScan struct {
	repos map[string]*gcRepo
	blobs map[digest.Digest]*gcBlob
	// revisionKeys are the revision links the mark read; the
	// verification reads every other one.
	revisionKeys map[string]bool
	// pulled are the pull records of cached content, by key below
	// cachePulledKey.
	pulled map[string]time.Time
}

type gcRepo struct {
	name      string
	cached    bool
	tags      map[string]gcTag
	revisions map[digest.Digest]time.Time
	links     map[digest.Digest]time.Time
	referrers map[string]bool // referrer entry keys
}

type gcTag struct {
	digest  digest.Digest
	modTime time.Time
}

type gcBlob struct {
	size    int64
	modTime time.Time
	data    bool      // content exists
	ref     time.Time // last upload, link or mount; zero without a ref
	links   []string  // repositories linking it
}

func (s *gcScan) blob(d digest.Digest) *gcBlob {
	b := s.blobs[d]
	if b == nil {
		b = &gcBlob{}
		s.blobs[d] = b
	}
	return b
}

func (s *gcScan) repo(name string) *gcRepo {
	r := s.repos[name]
	if r == nil {
		r = &gcRepo{name: name, tags: map[string]gcTag{}, revisions: map[digest.Digest]time.Time{},
			links: map[digest.Digest]time.Time{}, referrers: map[string]bool{}}
		s.repos[name] = r
	}
	return r
}

// scanFor walks the store once per run; Cached and Collect share it.
func (p *gcPart) scanFor(ctx context.Context, run *gc.Run) (*gcScan, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.scanRun == run && p.scan != nil {
		return p.scan, nil
	}
	s, err := p.h.scanStore(ctx)
	if err != nil {
		return nil, err
	}
	p.scanRun, p.scan = run, s
	return s, nil
}

// parseDigest joins an algorithm and an encoded part from a key.
func keyDigest(alg, enc string) (digest.Digest, bool) {
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	return d, d.Validate() == nil
}

func (h *Handler) scanStore(ctx context.Context) (*gcScan, error) {
	s := &gcScan{repos: map[string]*gcRepo{}, blobs: map[digest.Digest]*gcBlob{},
		revisionKeys: map[string]bool{}, pulled: map[string]time.Time{}}
	err := storage.Walk(ctx, h.store, "repositories", func(info storage.Info) error {
		name, tail, ok := splitRepoKey(info.Key)
		if !ok {
			return nil
		}
		r := s.repo(name)
		parts := strings.Split(tail, "/")
		switch {
		case len(parts) == 3 && parts[0] == "_layers":
			if d, ok := keyDigest(parts[1], parts[2]); ok {
				r.links[d] = info.ModTime
				b := s.blob(d)
				b.links = append(b.links, name)
			}
		case len(parts) == 4 && parts[0] == "_manifests" && parts[1] == "revisions":
			if d, ok := keyDigest(parts[2], parts[3]); ok {
				r.revisions[d] = info.ModTime
				s.revisionKeys[info.Key] = true
			}
		case len(parts) == 3 && parts[0] == "_manifests" && parts[1] == "tags":
			r.tags[parts[2]] = gcTag{modTime: info.ModTime}
		case len(parts) == 4 && parts[0] == "_referrers":
			r.referrers[info.Key] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk repositories: %w", err)
	}
	err = storage.Walk(ctx, h.store, "blobs", func(info storage.Info) error {
		parts := strings.Split(strings.TrimPrefix(info.Key, "blobs/"), "/")
		if len(parts) != 4 {
			return nil
		}
		d, ok := keyDigest(parts[0], parts[2])
		if !ok {
			return nil
		}
		b := s.blob(d)
		switch parts[3] {
		case "data":
			b.data, b.size, b.modTime = true, info.Size, info.ModTime
		case "ref":
			b.ref = info.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk blobs: %w", err)
	}
	err = storage.Walk(ctx, h.store, cachePulledKey, func(info storage.Info) error {
		s.pulled[strings.TrimPrefix(info.Key, cachePulledKey+"/")] = info.ModTime
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk pull records: %w", err)
	}
	for name, r := range s.repos {
		r.cached = h.isCachedRepo(name)
	}
	// Tags hold their digest: read them all, gcWorkers at a time.
	type tagRef struct{ repo, tag string }
	var refs []tagRef
	for name, r := range s.repos {
		for t := range r.tags {
			refs = append(refs, tagRef{name, t})
		}
	}
	var mu sync.Mutex
	err = parallel(ctx, len(refs), func(i int) error {
		ref := refs[i]
		b, _, err := storage.ReadAll(ctx, h.store, tagKey(ref.repo, ref.tag))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		d, err := digest.Parse(string(bytes.TrimSpace(b)))
		mu.Lock()
		defer mu.Unlock()
		r := s.repos[ref.repo]
		if err != nil {
			delete(r.tags, ref.tag)
			return nil
		}
		t := r.tags[ref.tag]
		t.digest = d
		r.tags[ref.tag] = t
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read tags: %w", err)
	}
	return s, nil
}

// splitRepoKey splits repositories/<name>/_<rest> into the name and
// "_<rest>": name components never start with "_".
func splitRepoKey(key string) (name, tail string, ok bool) {
	rest, ok := strings.CutPrefix(key, "repositories/")
	if !ok {
		return "", "", false
	}
	i := strings.Index(rest, "/_")
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// isCachedRepo reports whether the repository is in an upstream's namespace.
func (h *Handler) isCachedRepo(name string) bool {
	for ns := range h.caches {
		if strings.HasPrefix(name, ns+"/") {
			return true
		}
	}
	return false
}

// parallel calls fn(0..n-1) with gcWorkers at a time and returns the first
// error.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(gcWorkers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// manifestRefs is what a manifest references, as the collector needs it.
type manifestRefs struct {
	blobs    []digest.Digest // config and layers (foreign layers aside)
	children []digest.Digest // an index's manifests
	subject  digest.Digest
}

// manifestRefsMemo remembers what manifests reference: content is
// immutable, so a digest read once is never read again by this process.
type manifestRefsMemo struct {
	mu sync.Mutex
	m  map[digest.Digest]*manifestRefs
}

const maxManifestRefsMemo = 500000

func newManifestRefsMemo() *manifestRefsMemo {
	return &manifestRefsMemo{m: map[digest.Digest]*manifestRefs{}}
}

// refsOf reads what the manifest d references; nil when its content is
// missing or is no manifest.
func (h *Handler) refsOf(ctx context.Context, d digest.Digest) (*manifestRefs, error) {
	memo := h.gcDocs
	memo.mu.Lock()
	r, ok := memo.m[d]
	memo.mu.Unlock()
	if ok {
		return r, nil
	}
	b, _, err := storage.ReadAll(ctx, h.store, blobKey(d))
	if errors.Is(err, storage.ErrNotFound) {
		b, _, err = storage.ReadAll(ctx, h.store, quarantineKey(d))
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var doc manifestDoc
	if json.Unmarshal(b, &doc) != nil {
		return nil, nil
	}
	r = &manifestRefs{}
	if doc.Config != nil && len(doc.Config.URLs) == 0 {
		r.blobs = append(r.blobs, doc.Config.Digest)
	}
	for _, l := range doc.Layers {
		if len(l.URLs) == 0 {
			r.blobs = append(r.blobs, l.Digest)
		}
	}
	for _, m := range doc.Manifests {
		r.children = append(r.children, m.Digest)
	}
	if doc.Subject != nil {
		r.subject = doc.Subject.Digest
	}
	memo.mu.Lock()
	if len(memo.m) >= maxManifestRefsMemo {
		memo.m = map[digest.Digest]*manifestRefs{}
	}
	memo.m[d] = r
	memo.mu.Unlock()
	return r, nil
}

// readRefs reads what every manifest in ds references, in parallel.
func (h *Handler) readRefs(ctx context.Context, ds []digest.Digest) (map[digest.Digest]*manifestRefs, error) {
	out := make(map[digest.Digest]*manifestRefs, len(ds))
	var mu sync.Mutex
	err := parallel(ctx, len(ds), func(i int) error {
		r, err := h.refsOf(ctx, ds[i])
		if err != nil {
			return err
		}
		mu.Lock()
		out[ds[i]] = r
		mu.Unlock()
		return nil
	})
	return out, err
}
