package npm

import (
	"bytes"
	"compress/gzip"
	"container/list"
	"encoding/json"
	"fmt"
	"sync"
)

// maxRenderedCopies bounds the rendered copies one document keeps: one per
// npm root (Options.BaseURL: one, or a few behind several host names) and
// format (full, abbreviated).
const maxRenderedCopies = 8

// docCache keeps decoded packuments and their rendered forms within a
// budget of bytes, evicting the least recently used document first. A
// document is charged an estimate of its decoded size (decodedSize) plus
// each rendered copy, plain and gzipped. Rendered copies are keyed only by
// the npm root the handler computed and the format, so no client header
// can make a document hold more than maxRenderedCopies, nor the cache more
// than its budget: a document alone above the budget is served, not kept.
type docCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	lru     list.List // of *cachedDoc, most recently used first
	entries map[string]*list.Element
}

func newDocCache(max int64) *docCache {
	return &docCache{max: max, entries: map[string]*list.Element{}}
}

func (c *docCache) get(name string) *cachedDoc {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[name]
	if e == nil {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cachedDoc)
}

// put makes d, fresh from newCachedDoc (nothing rendered yet, and not yet
// seen by another request), the entry for name, replacing any other.
func (c *docCache) put(name string, d *cachedDoc) {
	size := decodedSize(map[string]any(d.doc))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(name)
	d.cache, d.name, d.charged = c, name, size
	if d.charged > c.max {
		return
	}
	d.elem = c.lru.PushFront(d)
	c.entries[name] = d.elem
	c.size += d.charged
	c.evict()
}

func (c *docCache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(name)
}

// charge adds delta bytes of rendered copies to d, if d is still cached.
func (c *docCache) charge(d *cachedDoc, delta int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d.elem == nil {
		return
	}
	d.charged += delta
	c.size += delta
	c.evict()
}

// bytes returns what the cache is charged now.
func (c *docCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *docCache) remove(name string) {
	e := c.entries[name]
	if e == nil {
		return
	}
	d := e.Value.(*cachedDoc)
	c.lru.Remove(e)
	delete(c.entries, name)
	c.size -= d.charged
	d.elem = nil
}

func (c *docCache) evict() {
	for c.size > c.max && c.lru.Len() > 0 {
		c.remove(c.lru.Back().Value.(*cachedDoc).name)
	}
}

// decodedSize estimates the memory a decoded JSON value takes (within a
// tenth of what the Go runtime reports for real packuments): map slots,
// interface and string headers, and the bytes of names and strings.
func decodedSize(v any) int64 {
	switch x := v.(type) {
	case map[string]any:
		n := int64(48)
		if len(x) > 0 {
			n += 40 * int64(max(len(x), 8)) // a map allocates slots in groups of 8
		}
		for k, e := range x {
			n += int64(len(k)) + decodedSize(e)
		}
		return n
	case []any:
		n := int64(24 + 16*len(x))
		for _, e := range x {
			n += decodedSize(e)
		}
		return n
	case string:
		return 16 + int64(len(x))
	case json.Number:
		return 16 + int64(len(x))
	}
	return 0 // booleans and null are not allocated
}

// cachedDoc is one version of a packument with what is derived from it.
type cachedDoc struct {
	version string
	doc     packument
	files   map[string]string // tarball file name -> sha512 hex of its content
	// abbreviatedAlready is set for an upstream's abbreviated document,
	// which is rendered as it is.
	abbreviatedAlready bool
	// signing signs the versions when rendered; nil for an upstream's
	// document, whose signatures are the upstream's and stay as they are.
	signing *SigningKeys

	// Set by the cache that holds it, under the cache's lock.
	cache   *docCache
	name    string
	elem    *list.Element
	charged int64

	mu         sync.Mutex
	rendered   map[renderKey]*rendered
	signatures map[string][]Signature // by signed message, shared by the renders
}

type renderKey struct {
	base        string // the npm root (Handler.npmRoot), nothing else of the request
	abbreviated bool
}

// rendered is a document serialised once, plain and gzipped.
type rendered struct {
	plain, gzipped []byte
	etag           string
}

func (r *rendered) size() int64 { return int64(len(r.plain) + len(r.gzipped)) }

func newCachedDoc(p packument, version string) *cachedDoc {
	c := &cachedDoc{version: version, doc: p, files: map[string]string{}, rendered: map[renderKey]*rendered{}}
	for _, v := range p.versions() {
		vm := obj(v)
		if hexSum, ok := sha512HexOfIntegrity(str(distOf(vm)["integrity"])); ok {
			c.files[tarballFile(vm)] = hexSum
		}
	}
	return c
}

// signerLocked signs versions of c with the signatures it made before
// (each version is signed once per process); c.mu must be held.
func (c *cachedDoc) signerLocked() signFunc {
	if c.signing != nil && c.signatures == nil {
		c.signatures = map[string][]Signature{}
	}
	return c.signing.signer(c.signatures)
}

// versionAt returns one version's manifest with absolute tarball URLs under
// base and, for a package of ours, its signatures: those the document's
// renders made, so a GET of one version signs nothing again.
func (c *cachedDoc) versionAt(vm map[string]any, base string) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return versionWithURL(vm, base, c.signerLocked())
}

// render returns the document for a base URL, serialising it once.
func (c *cachedDoc) render(base string, abbreviated bool) (*rendered, error) {
	k := renderKey{base, abbreviated}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.rendered[k]; r != nil {
		return r, nil
	}
	sign := c.signerLocked()
	var v any
	if abbreviated && !c.abbreviatedAlready {
		v = abbreviate(c.doc, base, sign)
	} else {
		v = withTarballURLs(c.doc, base, sign)
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	zw.Write(plain)
	zw.Close()
	kind := "full"
	if abbreviated {
		kind = "abbr"
	}
	r := &rendered{plain: plain, gzipped: gz.Bytes(), etag: fmt.Sprintf(`"%s-%s-%x"`, c.version, kind, fnv32([]byte(base)))}
	delta := r.size()
	if len(c.rendered) >= maxRenderedCopies {
		for _, old := range c.rendered {
			delta -= old.size()
		}
		clear(c.rendered)
	}
	c.rendered[k] = r
	if c.cache != nil {
		c.cache.charge(c, delta)
	}
	return r, nil
}
