package oci

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/internal/pullthrough"
	"github.com/unireg/unireg/registry/storage"
)

// The pull-through cache of the OCI side (docs/cache.md). Repositories
// under an upstream's Name are read-only copies of the upstream's: a
// manifest or blob asked for and not yet here is fetched from the upstream,
// stored, and served; a tag is revalidated at most every UpstreamTagTTL.
// What both protocols share (breaker, negative caching, coalescing,
// spooled downloads) is package pullthrough; this file maps the OCI routes
// onto it.

// An Upstream is a registry whose repositories are served under Name.
type Upstream struct {
	// Name is the namespace of the cache: repository "<Name>/x" is the
	// upstream's "x" (for Name "docker.io", a one-part "x" is
	// "library/x", Docker Hub's rule). It is also the `ns` containerd
	// sends to a mirror.
	Name string
	// URL is the upstream's base URL, e.g. https://registry-1.docker.io
	// (http:// only for registries on a trusted network).
	URL string
	// Credentials, if set, returns the username and password to log in to
	// the upstream with (Basic, or the Docker token flow); it is called
	// whenever a login is needed, so a mounted Secret may change.
	Credentials func() (username, password string, err error)
}

// dockerHub is the upstream name that gets Docker Hub's "library/" rule.
const dockerHub = "docker.io"

// upstreamTimeout bounds the answer of an upstream to one request for a
// manifest, and the wait for the headers of a blob.
const upstreamTimeout = pullthrough.DefaultFetchTimeout

// revalidateWait is how long a pull of a cached tag waits for the upstream
// before it is served from the cache; the revalidation goes on and
// updates the tag for the next pull.
const revalidateWait = time.Second

// maxTransports bounds the per-repository upstream clients kept.
const maxTransports = 512

// cache is the pull-through state of one upstream.
type cache struct {
	up     Upstream
	reg    name.Registry
	base   string // scheme://host
	health *pullthrough.Upstream
	docs   pullthrough.Documents
	inner  http.RoundTripper

	mu         sync.Mutex
	transports map[string]http.RoundTripper // by upstream repository
	checked    map[string]time.Time         // tag key -> last confirmed upstream
}

// CacheOptions are what the caches of a registry share (the spool, the
// metrics, the per-identity bound, the transport).
type CacheOptions = pullthrough.Shared

func newCaches(o Options) (map[string]*cache, error) {
	if len(o.Upstreams) == 0 {
		return nil, nil
	}
	inner := o.Cache.RoundTripper()
	caches := map[string]*cache{}
	for _, up := range o.Upstreams {
		if !ValidName(up.Name) || strings.Contains(up.Name, "/") {
			return nil, fmt.Errorf("oci upstream %q: the name must be one repository name component, e.g. docker.io", up.Name)
		}
		if caches[up.Name] != nil {
			return nil, fmt.Errorf("oci upstream %q named twice", up.Name)
		}
		u, err := url.Parse(up.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.User != nil || u.RawQuery != "" {
			return nil, fmt.Errorf("oci upstream %s: URL %q must be http(s)://host[:port], without path, user or query", up.Name, up.URL)
		}
		var opts []name.Option
		if u.Scheme == "http" {
			opts = append(opts, name.Insecure)
		}
		reg, err := name.NewRegistry(u.Host, opts...)
		if err != nil {
			return nil, fmt.Errorf("oci upstream %s: %w", up.Name, err)
		}
		caches[up.Name] = &cache{
			up: up, reg: reg, base: u.Scheme + "://" + u.Host, inner: inner,
			health:     pullthrough.NewUpstream("oci", up.Name, o.Cache.Metrics, o.Logger),
			docs:       pullthrough.Documents{Timeout: upstreamTimeout},
			transports: map[string]http.RoundTripper{},
			checked:    map[string]time.Time{},
		}
	}
	return caches, nil
}

// cachedName maps a requested repository name onto the cache: with ns (the
// `?ns=` containerd sends a mirror) naming an upstream, name is that
// upstream's repository; a name under an upstream's Name is too. It returns
// the canonical name, used for storage and authorisation, and the cache,
// nil for a local repository.
func (h *Handler) cachedName(requested, ns string) (string, *cache) {
	if len(h.caches) == 0 {
		return requested, nil
	}
	full := requested
	if ns != "" && h.caches[ns] != nil {
		full = ns + "/" + requested
	}
	first, rest, ok := strings.Cut(full, "/")
	c := h.caches[first]
	if !ok || c == nil {
		return requested, nil
	}
	if first == dockerHub && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return first + "/" + rest, c
}

// CanonicalName is the repository a name asked for with the mirror
// parameter ns stands for: the token endpoint grants scopes for it, since
// containerd asks the realm for "repository:library/nginx:pull" when it
// pulls docker.io/library/nginx through a mirror.
func (h *Handler) CanonicalName(ns, requested string) string {
	n, _ := h.cachedName(requested, ns)
	return n
}

// upstreamRepo is the upstream's name of a canonical cached repository.
func (c *cache) upstreamRepo(canonical string) string {
	return strings.TrimPrefix(canonical, c.up.Name+"/")
}

// Authorization implements authn.Authenticator over Credentials.
func (c *cache) Authorization() (*authn.AuthConfig, error) {
	if c.up.Credentials == nil {
		return &authn.AuthConfig{}, nil
	}
	user, pass, err := c.up.Credentials()
	if err != nil {
		return nil, fmt.Errorf("credentials of upstream %s: %w", c.up.Name, err)
	}
	return &authn.AuthConfig{Username: user, Password: pass}, nil
}

// client returns the upstream client for one repository: go-containerregistry's
// transport answers the upstream's Basic or Bearer challenge (the Docker
// token flow of Docker Hub and GHCR) and renews its token.
func (c *cache) client(ctx context.Context, repo string) (*http.Client, error) {
	c.mu.Lock()
	rt := c.transports[repo]
	c.mu.Unlock()
	if rt == nil {
		var auth authn.Authenticator = authn.Anonymous
		if c.up.Credentials != nil {
			auth = c
		}
		var err error
		rt, err = transport.NewWithContext(ctx, c.reg, auth, c.inner, []string{c.reg.Repo(repo).Scope(transport.PullScope)})
		var te *transport.Error
		if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
			return nil, pullthrough.Failed(c.up.Name, "refused the login (check its credentials)", err)
		}
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if len(c.transports) >= maxTransports {
			clear(c.transports)
		}
		c.transports[repo] = rt
		c.mu.Unlock()
	}
	return &http.Client{Transport: rt}, nil
}

// do sends one request for a path of the upstream repository and returns
// the response when its status is 200; 404 is pullthrough.ErrNotFound.
func (c *cache) do(ctx context.Context, method, repo, path string, header http.Header) (*http.Response, error) {
	cl, err := c.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/v2/"+repo+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	return c.health.Answer(resp, method+" "+path)
}

// manifestAccept is what the cache asks an upstream for: every manifest
// type it stores.
var manifestAccept = strings.Join([]string{MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerV2, MediaTypeDockerV2List}, ", ")

// fetched is a manifest an upstream sent.
type fetched struct {
	digest    digest.Digest
	mediaType string
}

// fillManifest makes the manifest the request names present and current
// in the cached repository: by digest it is fetched once and never again;
// by tag it is revalidated when its last confirmation is older than the
// TTL, and served stale when the upstream fails or is slow.
func (h *Handler) fillManifest(q *request, c *cache, name string, ref reference) error {
	ctx := q.R.Context()
	if ref.digest != "" {
		if _, err := h.revisionMediaType(q, name, ref.digest); err == nil {
			c.health.Count(pullthrough.Hit)
			return nil
		}
		_, err := h.fetchManifest(q, c, name, ref.digest.String())
		return err
	}
	local, err := h.resolve(q, name, ref)
	if err != nil && !isCode(err, CodeManifestUnknown) {
		return err
	}
	tagKey := name + ":" + ref.tag
	if local != "" && c.fresh(tagKey, h.tagTTL()) {
		c.health.Count(pullthrough.Hit)
		return nil
	}
	wait := upstreamTimeout + time.Second // the fetch's own timeout answers first
	if local != "" {
		wait = revalidateWait
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	got, err := h.fetchManifest(q.withContext(wctx), c, name, ref.tag)
	switch {
	case err == nil:
		if got.digest == local {
			c.health.Count(pullthrough.Revalidated)
		}
		return nil
	case local != "":
		// Stale-if-error: the cached tag stands until the upstream answers.
		c.health.Count(pullthrough.Stale)
		return nil
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return pullthrough.Failed(c.up.Name, "no answer in time", err)
	}
	return err
}

// fresh reports whether a tag was confirmed by the upstream within ttl.
func (c *cache) fresh(tagKey string, ttl time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.checked[tagKey]
	return ok && time.Since(t) < ttl
}

func (c *cache) confirm(tagKey string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.checked) >= 100000 {
		clear(c.checked)
	}
	c.checked[tagKey] = time.Now()
}

func (h *Handler) tagTTL() time.Duration {
	if h.opts.UpstreamTagTTL > 0 {
		return h.opts.UpstreamTagTTL
	}
	return DefaultUpstreamTagTTL
}

// fetchManifest gets a manifest (by tag or digest) from the upstream once
// for all concurrent callers, verifies it, and stores it in the cached
// repository (with the tag moved, for a tag). A tag whose digest the
// upstream's HEAD shows is already here costs no GET.
func (h *Handler) fetchManifest(q *request, c *cache, name, ref string) (fetched, error) {
	key := name + "@" + ref
	if c.health.Negative.Missing(key) {
		c.health.Count(pullthrough.NegativeHit)
		return fetched{}, newError(http.StatusNotFound, CodeManifestUnknown, "manifest %s unknown in repository %s (upstream %s, remembered)", truncate(ref), name, c.up.Name)
	}
	// The store writes run with the fetch's context, detached from this
	// caller, so one client giving up does not spoil the fill for others.
	got, err := pullthrough.Fetch(&c.docs, q.R.Context(), key, func(ctx context.Context) (fetched, error) {
		// The upstream request counts against the fills of the caller that
		// starts it (not of those who join it), so that one identity asking
		// for random names holds a bounded share of the upstream.
		fq := q.withContext(ctx)
		var got fetched
		err := h.opts.Cache.Ask(ctx, q.Subject(), c.health, "manifest "+c.upstreamRepo(name)+":"+ref, func(ctx context.Context) error {
			var err error
			got, err = h.fetchManifestOnce(fq, c, name, ref)
			return err
		})
		return got, err
	})
	if errors.Is(err, pullthrough.ErrNotFound) {
		c.health.Negative.Remember(key)
		return fetched{}, newError(http.StatusNotFound, CodeManifestUnknown, "manifest %s unknown in repository %s (upstream %s)", truncate(ref), name, c.up.Name)
	}
	if err != nil {
		return fetched{}, err
	}
	c.health.Count(pullthrough.Miss)
	return got, nil
}

func (h *Handler) fetchManifestOnce(q *request, c *cache, name, ref string) (fetched, error) {
	ctx := q.R.Context()
	repo := c.upstreamRepo(name)
	accept := http.Header{"Accept": {manifestAccept}}
	tag := ""
	if _, err := ParseDigest(ref); err != nil {
		tag = ref
		// A HEAD first: it does not count against Docker Hub's pull
		// limit, and a tag that has not moved costs nothing more.
		resp, err := c.do(ctx, http.MethodHead, repo, "manifests/"+ref, accept)
		if err != nil {
			return fetched{}, err
		}
		resp.Body.Close()
		if d, err := ParseDigest(resp.Header.Get("Docker-Content-Digest")); err == nil {
			if mt, err := h.revisionMediaType(q, name, d); err == nil {
				if err := h.moveTagIfMoved(q, name, tag, d, mt); err != nil {
					return fetched{}, err
				}
				c.confirm(name + ":" + tag)
				return fetched{digest: d, mediaType: mt}, nil
			}
			ref = d.String() // GET by digest: what we verify is what the HEAD named
		}
	}
	resp, err := c.do(ctx, http.MethodGet, repo, "manifests/"+ref, accept)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, h.opts.MaxManifestSize+1))
	c.health.CountBytes(len(body))
	if err != nil {
		return fetched{}, fmt.Errorf("reading the manifest: %w", err)
	}
	if int64(len(body)) > h.opts.MaxManifestSize {
		return fetched{}, pullthrough.Failed(c.up.Name, fmt.Sprintf("sent a manifest larger than %d bytes", h.opts.MaxManifestSize), nil)
	}
	var d digest.Digest
	if want, err := ParseDigest(ref); err == nil {
		d = want
	} else if hd, err := ParseDigest(resp.Header.Get("Docker-Content-Digest")); err == nil {
		d = hd
	} else {
		d = digest.SHA256.FromBytes(body)
	}
	if d.Algorithm().FromBytes(body) != d {
		return fetched{}, pullthrough.Failed(c.up.Name, "sent a manifest that does not match its digest", nil)
	}
	doc, mt, err := parseManifest(resp.Header.Get("Content-Type"), body)
	if err != nil {
		return fetched{}, pullthrough.Failed(c.up.Name, "sent a manifest the registry does not accept", err)
	}
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	if err := h.storeManifest(q, name, d, mt, body, doc, nil); err != nil {
		return fetched{}, err
	}
	for _, t := range tags {
		if err := h.moveTagIfMoved(q, name, t, d, mt); err != nil {
			return fetched{}, err
		}
		c.confirm(name + ":" + t)
	}
	return fetched{digest: d, mediaType: mt}, nil
}

// moveTagIfMoved points the cached tag at d unless it already does.
func (h *Handler) moveTagIfMoved(q *request, name, tag string, d digest.Digest, mediaType string) error {
	if cur, err := h.resolve(q, name, reference{tag: tag}); err == nil && cur == d {
		return nil
	}
	return h.moveTag(q, name, tag, d, mediaType)
}

// fillBlob makes a blob the upstream repository holds present in the
// cached repository and serves it: a blob already stored (for another
// repository) is only confirmed with the upstream and linked; otherwise it
// is downloaded once for every client asking at the same time, streamed to
// each while it arrives.
func (h *Handler) fillBlob(q *request, c *cache, name string, d digest.Digest) error {
	ctx := q.R.Context()
	key := name + "@" + d.String()
	if c.health.Negative.Missing(key) {
		c.health.Count(pullthrough.NegativeHit)
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob %s unknown to repository %s (upstream %s, remembered)", d, name, c.up.Name)
	}
	notFound := func() error {
		c.health.Negative.Remember(key)
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob %s unknown to repository %s (upstream %s)", d, name, c.up.Name)
	}
	repo := c.upstreamRepo(name)
	_, statErr := h.store.Stat(ctx, blobKey(d))
	if statErr != nil && !errors.Is(statErr, storage.ErrNotFound) {
		return statErr
	}
	if statErr == nil || q.R.Method == http.MethodHead {
		// The content is here (or only its existence is asked): the
		// upstream need only confirm that this repository holds it; the
		// content never crosses repositories the upstream did not put it in.
		// One HEAD for every client asking at the same time (a rollout
		// pulling an image whose layers another repository holds).
		size, err := pullthrough.Fetch(&c.docs, ctx, "head "+key, func(ctx context.Context) (int64, error) {
			var size int64
			err := h.opts.Cache.Ask(ctx, q.Subject(), c.health, "blob "+repo+"@"+d.String(), func(ctx context.Context) error {
				resp, err := c.do(ctx, http.MethodHead, repo, "blobs/"+d.String(), nil)
				if err != nil {
					return err
				}
				resp.Body.Close()
				size = resp.ContentLength
				return nil
			})
			return size, err
		})
		if errors.Is(err, pullthrough.ErrNotFound) {
			return notFound()
		}
		if err != nil {
			return err
		}
		if statErr == nil {
			if err := h.linkCachedBlob(ctx, name, d); err != nil {
				return err
			}
			c.health.Count(pullthrough.Revalidated)
			return nil // the caller serves it from the store
		}
		hd := q.W.Header()
		hd.Set("Docker-Content-Digest", d.String())
		hd.Set("Content-Type", "application/octet-stream")
		if size >= 0 {
			hd.Set("Content-Length", strconv.FormatInt(size, 10))
		}
		q.W.WriteHeader(http.StatusOK)
		return errServed
	}

	sum, err := hex.DecodeString(d.Encoded())
	if err != nil {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest %s", d)
	}
	r, size, err := h.opts.Cache.SpoolFills().Join(ctx, "oci/"+key, pullthrough.Download{
		Open: func(ctx context.Context) (pullthrough.Source, error) {
			var src pullthrough.Source
			// No deadline here: it would cut the body. The spool's idle
			// timeout bounds the wait for the answer and every pause in it.
			err := c.health.Ask(ctx, "blob "+repo+"@"+d.String(), func(ctx context.Context) error {
				resp, err := c.do(ctx, http.MethodGet, repo, "blobs/"+d.String(), nil)
				if err != nil {
					return err
				}
				if max := h.opts.MaxBlobSize; max > 0 && resp.ContentLength > max {
					resp.Body.Close()
					return errUpstreamBlobTooLarge
				}
				src = pullthrough.Source{Body: c.health.Counted(resp.Body), Size: resp.ContentLength}
				return nil
			})
			return src, err
		},
		Hash:     d.Algorithm().Hash,
		Sum:      sum,
		Upstream: c.health,
		Admit:    h.opts.Cache.Admit(q.Subject()),
		Commit: func(ctx context.Context, spool pullthrough.Spool) error {
			if err := spool.Commit(ctx, h.store, blobKey(d)); err != nil {
				return fmt.Errorf("store blob %s: %w", d, err)
			}
			return h.linkCachedBlob(ctx, name, d)
		},
	})
	if errors.Is(err, pullthrough.ErrNotFound) {
		return notFound()
	}
	if errors.Is(err, errUpstreamBlobTooLarge) {
		return newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "blob %s of upstream %s is larger than the largest blob this registry keeps (%d bytes)", d, c.up.Name, h.opts.MaxBlobSize)
	}
	if errors.Is(err, pullthrough.ErrSpoolFull) {
		q.W.Header().Set("Retry-After", "10")
		return newError(http.StatusServiceUnavailable, CodeUnavailable, "the cache is downloading as much as its spool holds; retry later")
	}
	if err != nil {
		return err
	}
	defer r.Close()
	err = pullthrough.Serve(q.W, r, size, map[string]string{
		"Docker-Content-Digest": d.String(), "Content-Type": "application/octet-stream",
	}, c.up.Name, func() {
		c.health.Count(pullthrough.Miss)
		h.touchCached(ctx, "blobs/"+string(d.Algorithm())+"/"+d.Encoded())
	})
	if err != nil {
		return err
	}
	return errServed
}

// errUpstreamBlobTooLarge refuses an upstream blob above MaxBlobSize.
var errUpstreamBlobTooLarge = fmt.Errorf("%w: the blob is larger than the largest blob kept", pullthrough.ErrRefused)

// errServed tells getBlob that the cache has answered the request.
var errServed = errors.New("served from the upstream")

// linkCachedBlob links a stored blob into a cached repository and records
// it as pulled.
func (h *Handler) linkCachedBlob(ctx context.Context, name string, d digest.Digest) error {
	if err := h.touchRef(ctx, d); err != nil {
		return err
	}
	if ok, err := h.ensureBlob(ctx, d); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("link cached blob %s: the collector swept it meanwhile; ask again", d)
	}
	if err := h.noteRepository(ctx, name); err != nil {
		return err
	}
	if _, err := h.store.Put(ctx, layerLinkKey(name, d), bytes.NewReader(nil), storage.Condition{}); err != nil {
		return fmt.Errorf("link cached blob %s: %w", d, err)
	}
	return nil
}

// touchCached records a pull of cached content, for eviction.
func (h *Handler) touchCached(ctx context.Context, key string) {
	h.pulled.Touch(ctx, cachePulledKey+"/"+key)
}

// refuseCachedWrite answers writes into a cached namespace: its content is
// the upstream's.
func refuseCachedWrite(c *cache, name string) error {
	return newError(http.StatusForbidden, CodeDenied, "repository %s is a read-only cache of upstream %s", name, c.up.Name)
}

// isCode reports whether err is an *Error with code.
func isCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
