package npm

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/internal/pullthrough"
	"github.com/unireg/unireg/registry/storage"
)

// The uplink: packages this registry does not hold are served from an
// upstream npm registry, cached (docs/cache.md). What both protocols share
// (breaker, negative caching, coalescing, spooled downloads) is package
// pullthrough; this file maps the npm routes onto it.
//
// Local wins whole: a package that exists here, or ever did (its tombstone
// keeps the name), or whose scope is one of LocalScopes, is never looked up
// upstream and never merged with the upstream's. That is the rule against
// dependency confusion.

// An Upstream is the npm registry packages not held here come from.
type Upstream struct {
	// URL is the upstream registry's root, e.g. https://registry.npmjs.org.
	URL string
	// Token, if set, returns the bearer token to send upstream; it is
	// called for every request, so a mounted Secret may change.
	Token func() (string, error)
}

// The uplink's storage layout, beside the local packages (store.go):
//
//	npm/cache/packages/<name>/packument.json          the upstream's full document, tarball URLs relative
//	npm/cache/packages/<name>/abbreviated.json        the upstream's abbreviated document
//	npm/cache/packages/<name>/tarballs/<alg>-<hex>    tarballs, by the digest the document gives
//	npm/cache/pulled/<name>/<alg>-<hex>               last pull of a cached tarball (empty; its time)
func uplinkPackageKey(name string) string { return "npm/cache/packages/" + name }
func uplinkDocKey(name string, abbreviated bool) string {
	if abbreviated {
		return uplinkPackageKey(name) + "/abbreviated.json"
	}
	return uplinkPackageKey(name) + "/packument.json"
}
func uplinkTarballKey(name, sum string) string { return uplinkPackageKey(name) + "/tarballs/" + sum }
func uplinkPulledKey(name, sum string) string  { return "npm/cache/pulled/" + name + "/" + sum }

// maxUplinkDocument bounds a document the upstream sends (the largest
// public packuments are tens of MiB).
const maxUplinkDocument = 64 << 20

// revalidateWait is how long a read of a cached document waits for the
// upstream before the cached one is served; the fetch goes on and updates
// it for the next read.
const revalidateWait = time.Second

type uplink struct {
	base   string // URL without a trailing slash
	token  func() (string, error)
	health *pullthrough.Upstream
	docs   pullthrough.Documents
	client *http.Client
	maxAge time.Duration
	scopes []string // local scopes, "@acme"

	mu      sync.Mutex
	checked map[string]time.Time // document key -> last fetched by this process
	signing []byte               // the upstream's /-/npm/v1/keys
	signed  time.Time            // when signing was fetched
}

// keys returns the upstream's signing keys document, fetched at most once
// per max age, the last one kept when the upstream fails.
func (u *uplink) keys(ctx context.Context) ([]byte, error) {
	u.mu.Lock()
	b, at := u.signing, u.signed
	u.mu.Unlock()
	if b != nil && time.Since(at) < u.maxAge {
		return b, nil
	}
	got, err := pullthrough.Fetch(&u.docs, ctx, "keys", func(ctx context.Context) ([]byte, error) {
		var out []byte
		err := u.health.Ask(ctx, "keys", func(ctx context.Context) error {
			resp, err := u.get(ctx, "/-/npm/v1/keys", http.Header{"Accept": {"application/json"}})
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20+1))
			var doc struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if err != nil || len(raw) > 1<<20 || json.Unmarshal(raw, &doc) != nil {
				return pullthrough.Failed(u.health.Name, "sent a keys document that is not bounded JSON", err)
			}
			if doc.Keys == nil {
				doc.Keys = []json.RawMessage{}
			}
			out, _ = json.Marshal(map[string]any{"keys": doc.Keys})
			return nil
		})
		return out, err
	})
	if err != nil {
		if b != nil {
			return b, nil // stale-if-error
		}
		if errors.Is(err, pullthrough.ErrNotFound) {
			return []byte(`{"keys":[]}`), nil
		}
		return nil, err
	}
	u.mu.Lock()
	u.signing, u.signed = got, time.Now()
	u.mu.Unlock()
	return got, nil
}

func newUplink(o Options) (*uplink, error) {
	if o.Upstream.URL == "" {
		return nil, nil
	}
	u, err := url.Parse(o.Upstream.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("npm upstream URL %q must be http(s)://host[/path], without user or query", o.Upstream.URL)
	}
	for _, s := range o.LocalScopes {
		if !strings.HasPrefix(s, "@") || strings.Contains(s, "/") || ValidName(s+"/x") != nil {
			return nil, fmt.Errorf("npm local scope %q must look like @acme", s)
		}
	}
	maxAge := o.UpstreamMaxAge
	if maxAge <= 0 {
		maxAge = DefaultUpstreamMaxAge
	}
	return &uplink{
		base: strings.TrimSuffix(o.Upstream.URL, "/"), token: o.Upstream.Token,
		health: pullthrough.NewUpstream("npm", u.Host, o.Cache.Metrics, o.Logger),
		docs:   pullthrough.Documents{Timeout: pullthrough.DefaultFetchTimeout},
		client: &http.Client{Transport: o.Cache.RoundTripper()},
		maxAge: maxAge, scopes: o.LocalScopes, checked: map[string]time.Time{},
	}, nil
}

// fromUplink reports whether name is served from the upstream: there is
// one, the name's scope is not local, and no package of that name exists
// here or ever did.
func (h *Handler) fromUplink(ctx context.Context, name string) (bool, error) {
	if h.uplink == nil {
		return false, nil
	}
	for _, s := range h.uplink.scopes {
		if strings.HasPrefix(name, s+"/") {
			return false, nil
		}
	}
	_, err := h.store.Stat(ctx, packumentKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	return false, err
}

// get sends a GET for path below the upstream's root.
func (u *uplink) get(ctx context.Context, path string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if err := u.authorize(req); err != nil {
		return nil, err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, err
	}
	return u.health.Answer(resp, "GET "+path)
}

func (u *uplink) authorize(req *http.Request) error {
	if u.token == nil {
		return nil
	}
	tok, err := u.token()
	if err != nil {
		return fmt.Errorf("npm upstream token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// docPath is a package document's path upstream (scoped names with an
// encoded slash, as the npm CLI asks).
func docPath(name string) string {
	return "/" + strings.Replace(url.PathEscape(name), "%2F", "%2f", 1)
}

func (u *uplink) fresh(key string, modTime time.Time) bool {
	u.mu.Lock()
	t, ok := u.checked[key]
	u.mu.Unlock()
	if !ok || modTime.After(t) {
		t = modTime // another replica fetched it
	}
	return time.Since(t) < u.maxAge
}

func (u *uplink) fetched(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.checked) >= 100000 {
		clear(u.checked)
	}
	u.checked[key] = time.Now()
}

// uplinkDoc returns the upstream's document of name (the abbreviated one
// when asked): the cached one while younger than the max age, else fetched
// again; when the upstream fails or is slow, the cached one (stale). nil
// when neither the cache nor the upstream has it.
func (h *Handler) uplinkDoc(q *request, name string, abbreviated bool) (*cachedDoc, error) {
	u, ctx := h.uplink, q.R.Context()
	key := uplinkDocKey(name, abbreviated)
	info, err := h.store.Stat(ctx, key)
	cached := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if cached && u.fresh(key, info.ModTime) {
		u.health.Count(pullthrough.Hit)
		return h.packages.cachedAt(ctx, "uplink:"+key, key)
	}
	if u.health.Negative.Missing(key) {
		u.health.Count(pullthrough.NegativeHit)
		return nil, nil
	}
	wait := pullthrough.DefaultFetchTimeout + time.Second // the fetch's own timeout answers first
	if cached {
		wait = revalidateWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	_, err = pullthrough.Fetch(&u.docs, wctx, key, func(ctx context.Context) (struct{}, error) {
		// Counted against the fills of the caller that starts the fetch.
		return struct{}{}, h.opts.Cache.Ask(ctx, q.Subject(), u.health, "document "+name, func(ctx context.Context) error {
			return h.fetchUplinkDoc(ctx, name, abbreviated, key)
		})
	})
	switch {
	case err == nil:
		u.health.Count(pullthrough.Miss)
	case errors.Is(err, pullthrough.ErrNotFound):
		u.health.Negative.Remember(key)
		if !cached {
			return nil, nil
		}
		u.health.Count(pullthrough.Stale)
	case cached:
		u.health.Count(pullthrough.Stale) // stale-if-error
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return nil, pullthrough.Failed(u.health.Name, "no answer in time", err)
	default:
		return nil, err
	}
	return h.packages.cachedAt(ctx, "uplink:"+key, key)
}

// fetchUplinkDoc gets one document from the upstream and stores it with
// its tarball URLs made relative (rendering points them here), keeping
// everything else as the upstream wrote it: time, integrity, signatures,
// deprecations, dist-tags.
func (h *Handler) fetchUplinkDoc(ctx context.Context, name string, abbreviated bool, key string) error {
	accept := "application/json"
	if abbreviated {
		accept = mediaTypeAbbreviated
	}
	resp, err := h.uplink.get(ctx, docPath(name), http.Header{"Accept": {accept}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUplinkDocument+1))
	h.uplink.health.CountBytes(len(body))
	if err != nil {
		return fmt.Errorf("reading the document: %w", err)
	}
	if len(body) > maxUplinkDocument {
		return pullthrough.Failed(h.uplink.health.Name, fmt.Sprintf("sent a document of %s larger than %d bytes", name, maxUplinkDocument), nil)
	}
	p, err := decodePackument(body)
	if err != nil || p.name() != name {
		return pullthrough.Failed(h.uplink.health.Name, "sent a document that is not the package "+name, err)
	}
	for v, m := range p.versions() {
		vm := obj(m)
		dist := distOf(vm)
		if vm == nil || dist == nil {
			delete(p.versions(), v)
			continue
		}
		// Tarballs are fetched from the upstream's own path for the file,
		// whatever host the document names: it cannot send us elsewhere.
		file := path.Base(str(dist["tarball"]))
		if file == "" || file == "." || file == "/" || strings.ContainsAny(file, "?#\\") {
			delete(p.versions(), v)
			continue
		}
		dist["tarball"] = name + "/-/" + file
	}
	out, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := h.store.Put(ctx, key, bytes.NewReader(out), storage.Condition{}); err != nil {
		return fmt.Errorf("store the document of %s: %w", name, err)
	}
	h.uplink.fetched(key)
	return nil
}

// tarballSum is what a cached document says a tarball must hash to: its
// sha512 integrity, or the sha1 shasum of versions older than integrity.
func tarballSum(doc packument, file string) (alg string, sum []byte, ok bool) {
	for _, m := range doc.versions() {
		vm := obj(m)
		if tarballFile(vm) != file {
			continue
		}
		dist := distOf(vm)
		if hexSum, ok := sha512HexOfIntegrity(str(dist["integrity"])); ok {
			b, _ := hex.DecodeString(hexSum)
			return "sha512", b, true
		}
		if b, err := hex.DecodeString(str(dist["shasum"])); err == nil && len(b) == sha1.Size {
			return "sha1", b, true
		}
	}
	return "", nil, false
}

// getUplinkTarball serves a tarball of an upstream package: stored once
// fetched (tarballs are immutable), else downloaded once for every client
// asking at the same time, verified against the document before it is
// stored, and streamed to each client as it arrives.
func (h *Handler) getUplinkTarball(q *request) error {
	name, file := q.route.pkg, q.route.arg
	notFound := newError(http.StatusNotFound, "tarball %s of %s not found", file, name)
	// A tarball is immutable: any cached document that names the file says
	// what it must hash to, however old; the upstream is asked for the
	// document only when none does.
	alg, sum, ok := "", []byte(nil), false
	for _, abbreviated := range []bool{true, false} {
		key := uplinkDocKey(name, abbreviated)
		doc, err := h.packages.cachedAt(q.R.Context(), "uplink:"+key, key)
		if err != nil {
			return err
		}
		if doc != nil {
			if alg, sum, ok = tarballSum(doc.doc, file); ok {
				break
			}
		}
	}
	for _, abbreviated := range []bool{true, false} {
		if ok {
			break
		}
		doc, err := h.uplinkDoc(q, name, abbreviated)
		if err != nil {
			return err
		}
		if doc != nil {
			alg, sum, ok = tarballSum(doc.doc, file)
			break
		}
	}
	if !ok {
		return notFound
	}
	sumName := alg + "-" + hex.EncodeToString(sum)
	key := uplinkTarballKey(name, sumName)
	obj := protocol.Object{
		Key:      key,
		Headers:  map[string]string{"ETag": `"` + sumName[:min(len(sumName), 40)] + `"`, "Cache-Control": "public, max-age=31536000, immutable"},
		NotFound: notFound,
	}
	ctx := q.R.Context()
	if _, err := h.store.Stat(ctx, key); err == nil {
		h.pulled.Touch(ctx, uplinkPulledKey(name, sumName))
		h.uplink.health.Count(pullthrough.Hit)
		return q.ServeObject(h.store, obj)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if q.R.Method == http.MethodHead {
		return notFound // not fetched for a HEAD
	}
	newHash := func() hash.Hash { return sha512.New() }
	if alg == "sha1" {
		newHash = sha1.New
	}
	u := h.uplink
	r, size, err := h.opts.Cache.SpoolFills().Join(ctx, "npm/"+key, pullthrough.Download{
		Open: func(ctx context.Context) (pullthrough.Source, error) {
			var src pullthrough.Source
			// No deadline here: it would cut the body. The spool's idle
			// timeout bounds the wait for the answer and every pause in it.
			err := u.health.Ask(ctx, "tarball "+name+"/"+file, func(ctx context.Context) error {
				resp, err := u.get(ctx, "/"+name+"/-/"+url.PathEscape(file), nil)
				if err != nil {
					return err
				}
				src = pullthrough.Source{Body: u.health.Counted(resp.Body), Size: resp.ContentLength}
				return nil
			})
			return src, err
		},
		Hash:     newHash,
		Sum:      sum,
		Upstream: u.health,
		Admit:    h.opts.Cache.Admit(q.Subject()),
		Commit: func(ctx context.Context, spool pullthrough.Spool) error {
			if err := spool.Commit(ctx, h.store, key); err != nil {
				return fmt.Errorf("store tarball %s of %s: %w", file, name, err)
			}
			return nil
		},
	})
	if errors.Is(err, pullthrough.ErrNotFound) {
		return notFound
	}
	if errors.Is(err, pullthrough.ErrSpoolFull) {
		q.W.Header().Set("Retry-After", "10")
		return newError(http.StatusServiceUnavailable, "the cache is downloading as much as its spool holds; retry later")
	}
	if err != nil {
		return err
	}
	defer r.Close()
	return pullthrough.Serve(q.W, r, size, map[string]string{
		"Content-Type": "application/octet-stream", "Cache-Control": "public, max-age=31536000, immutable",
	}, u.health.Name, func() {
		u.health.Count(pullthrough.Miss)
		h.pulled.Touch(ctx, uplinkPulledKey(name, sumName))
	})
}
