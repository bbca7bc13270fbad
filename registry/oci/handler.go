// Package oci implements the OCI Distribution v1.1 API (images, indexes,
// artifacts, referrers) over a storage.Driver. It is a plain http.Handler,
// mounted at /v2 by the registry.
package oci

import (
	"context"
	_ "crypto/sha256" // digest algorithms must be linked in for go-digest
	_ "crypto/sha512"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/internal/pullthrough"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/storage"
)

// Gate identifies requests and decides accesses; *auth.Service is one.
type Gate = auth.Gate

// Event describes a successful write, for audit hooks.
type Event struct {
	// Action is one of "blob.pushed", "blob.mounted", "blob.deleted",
	// "manifest.pushed", "manifest.deleted", "tag.moved", "tag.deleted".
	Action     string
	Repository string
	Digest     string
	Tag        string
	MediaType  string
	Identity   *auth.Identity
}

// Settings are what an operator chooses about the OCI API: the part of
// Options that registry.OCIConfig embeds, so that each is named once. The
// zero value of every field works; New gives it the default its comment names.
type Settings struct {
	// Prefix is the path the handler is mounted at (default DefaultPrefix;
	// OCI clients need "/v2" at the host root, so change it only behind a
	// rewriting proxy).
	Prefix string
	// MaxManifestSize bounds manifest bodies, in bytes (0 or negative:
	// DefaultMaxManifestSize).
	MaxManifestSize int64
	// MaxBlobSize bounds blobs, in bytes; 0 (or negative): no bound. An
	// upload that would exceed it gets 413 SIZE_INVALID, before its bytes
	// are stored when it declares its length, cut as it crosses the bound
	// when it does not; either way it is ended: its session and the data
	// it had are removed.
	MaxBlobSize int64
	// UploadMaxAge is how long an untouched upload session lives (0 or
	// negative: DefaultUploadMaxAge).
	UploadMaxAge time.Duration
	// AllowSparse accepts image manifests whose layers are not (yet) in the
	// repository, as indexes always are; the config blob is still required.
	AllowSparse bool
	// RedirectBlobs answers blob GETs with a redirect to the storage (307 to
	// a presigned URL) when the backend is a storage.Redirector.
	RedirectBlobs bool
	// DisableDelete answers deletion of manifests, tags and blobs with
	// UNSUPPORTED. Cancelling an upload (DELETE of an upload session) still
	// works: it removes nothing that was pushed.
	DisableDelete bool
	// DisableReferrers answers the referrers API with UNSUPPORTED, and
	// manifest pushes with a subject omit the OCI-Subject header, so that
	// clients fall back to the referrers tag schema.
	DisableReferrers bool
	// Upstreams are the registries served through the pull-through cache,
	// each under its Name (cache.go, docs/cache.md). Their namespaces are
	// read-only.
	Upstreams []Upstream
	// UpstreamTagTTL is how long a cached tag is served before the
	// upstream is asked whether it moved (0 or negative:
	// DefaultUpstreamTagTTL). Manifests by digest are never revalidated.
	UpstreamTagTTL time.Duration
	// Retention are the rules by which the garbage collector deletes
	// tags and untagged manifests of local repositories (cached ones are
	// evicted by the cache's own rules instead).
	Retention []Retention
}

// Options configure a Handler: its Settings and the parts it is wired to.
// The zero value of every field but Storage works.
type Options struct {
	Settings
	Storage storage.Driver
	// Gate decides who may do what; nil allows everything.
	Gate Gate
	// Realm returns the token endpoint URL for a request's Bearer challenge;
	// nil challenges with Basic instead.
	Realm func(r *http.Request) string
	// Service is the `service` of the Bearer challenge.
	Service string
	// Uploads bounds the upload bodies one identity streams at once (nil:
	// no bound); share one with the npm handler to bound both together.
	Uploads *limit.Uploads
	// OnEvent is called after every successful write.
	OnEvent func(ctx context.Context, e Event)
	// Logger receives background messages (upload purges, upstream
	// failures).
	Logger *slog.Logger
	// Cache holds what the pull-through caches of the Upstreams share.
	Cache CacheOptions
	// GCGrace is the garbage collector's grace (zero: gc.DefaultGrace): a
	// pusher's HEAD of a blob it then relies on renews the blob's ref at
	// most every quarter of it (gcwriters.go).
	GCGrace time.Duration
}

// Handler serves the distribution API.
type Handler struct {
	opts    Options
	store   storage.Driver
	reads   *readCache // tags, revision links and manifests for GETs
	guard   protocol.Guard
	uploads *protocol.Uploads

	caches map[string]*cache // by upstream Name
	pulled *pullthrough.Pulled
	refs   *pullthrough.Pulled // blob refs renewed by pushers' HEADs
	gcDocs *manifestRefsMemo   // what each manifest references, for the collector

	catalog catalogIndex // the repositories' markers (catalogindex.go)
}

// readCacheBudget bounds the memory the manifest read cache keeps.
const readCacheBudget = 64 << 20

// MountPrefix is the path a handler configured with prefix is mounted at:
// DefaultPrefix when empty, without a trailing slash ("" for the root).
func MountPrefix(prefix string) string {
	if prefix == "" {
		return DefaultPrefix
	}
	return strings.TrimSuffix(prefix, "/")
}

// New returns a Handler, or an error naming an Upstream it cannot use.
func New(o Options) (*Handler, error) {
	o.Prefix = MountPrefix(o.Prefix)
	if o.MaxManifestSize <= 0 {
		o.MaxManifestSize = DefaultMaxManifestSize
	}
	if o.UploadMaxAge <= 0 {
		o.UploadMaxAge = DefaultUploadMaxAge
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{opts: o, store: o.Storage, reads: newReadCache(o.Storage, readCacheBudget), uploads: protocol.NewUploads(o.Uploads)}
	h.guard = protocol.Guard{Gate: o.Gate, Protocol: auth.ProtocolOCI, Type: auth.TypeRepository, Refuse: h.refuse}
	caches, err := newCaches(o)
	if err != nil {
		return nil, err
	}
	h.caches, h.pulled = caches, &pullthrough.Pulled{Store: o.Storage}
	grace := o.GCGrace
	if grace <= 0 {
		grace = gc.DefaultGrace
	}
	h.refs = &pullthrough.Pulled{Store: o.Storage, Interval: min(grace/4, 10*time.Minute)}
	h.gcDocs = newManifestRefsMemo()
	return h, nil
}

// UploadsInProgress returns how many upload request bodies are streaming now.
func (h *Handler) UploadsInProgress() int64 { return h.uploads.InProgress() }

// Prefix returns the path the handler serves under.
func (h *Handler) Prefix() string { return h.opts.Prefix }

// request is one API call: the exchange, the caller and the parsed route.
type request struct {
	protocol.Call
	route route
	// cache is the upstream of a cached repository (route.name is then
	// the canonical name), nil for a local one.
	cache *cache
}

// A mirror request names its repository as containerd does when it pulls
// through a mirror: the path without the upstream's namespace, which is in
// ?ns=. The request's context carries it to the challenge.
type mirror struct{ ns, requested string }

type mirrorKey struct{}

// withQuery adds one query parameter to a URL.
func withQuery(u, key, value string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + url.QueryEscape(key) + "=" + url.QueryEscape(value)
}

// withContext is the request with another context: a cache fill runs on
// for the other clients when the one that started it goes away.
func (q *request) withContext(ctx context.Context) *request {
	c := *q
	c.R = q.R.WithContext(ctx)
	return &c
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := strings.CutPrefix(r.URL.Path, h.opts.Prefix)
	if !ok {
		writeError(w, r, newError(http.StatusNotFound, CodeNameUnknown, "not an OCI API path"))
		return
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt := parsePath(p)
	h.guard.ReportRoute(r, rt.kind)
	if rt.kind != RouteBase && rt.kind != RouteCatalog && rt.kind != RouteUnknown && !ValidName(rt.name) {
		writeError(w, r, newError(http.StatusBadRequest, CodeNameInvalid, "invalid repository name %q", truncate(rt.name)))
		return
	}
	var cached *cache
	if rt.name != "" && len(h.caches) > 0 {
		ns, requested := r.URL.Query().Get("ns"), rt.name
		rt.name, cached = h.cachedName(requested, ns)
		if cached != nil && ns == cached.up.Name {
			r = r.WithContext(context.WithValue(r.Context(), mirrorKey{}, mirror{ns: ns, requested: requested}))
		}
	}
	req := &request{Call: h.guard.Call(w, r), route: rt, cache: cached}
	if err := h.dispatch(req); err != nil && err != errServed {
		writeError(w, r, err)
	}
}

// writes are the methods that change a repository.
func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead
}

func (h *Handler) dispatch(q *request) error {
	m := q.R.Method
	if q.cache != nil && isWrite(m) {
		return refuseCachedWrite(q.cache, q.route.name)
	}
	switch q.route.kind {
	case RouteBase:
		return h.serveBase(q)
	case RouteCatalog:
		if m == http.MethodGet {
			return h.serveCatalog(q)
		}
	case RouteTags:
		if m == http.MethodGet {
			return h.serveTags(q)
		}
	case RouteReferrers:
		if m == http.MethodGet {
			return h.serveReferrers(q)
		}
	case RouteManifest:
		switch m {
		case http.MethodGet, http.MethodHead:
			return h.getManifest(q)
		case http.MethodPut:
			return h.putManifest(q)
		case http.MethodDelete:
			return h.deleteManifest(q)
		}
	case RouteBlob:
		switch m {
		case http.MethodGet, http.MethodHead:
			return h.getBlob(q)
		case http.MethodDelete:
			return h.deleteBlob(q)
		}
	case RouteUploadStart:
		if m == http.MethodPost {
			return h.startUpload(q)
		}
	case RouteUpload:
		switch m {
		case http.MethodGet:
			return h.uploadStatus(q)
		case http.MethodPatch:
			return h.patchUpload(q)
		case http.MethodPut:
			return h.finishUpload(q)
		case http.MethodDelete:
			return h.cancelUpload(q)
		}
	default:
		return newError(http.StatusNotFound, CodeNameUnknown, "no such API route")
	}
	return newError(http.StatusMethodNotAllowed, CodeUnsupported, "method %s not allowed here", m)
}

// refuse writes the guard's refusals: wrong credentials and anonymous
// callers get 401 with a challenge, and so does a JWT of the Docker token
// flow that lacks an action, so that the client asks the realm for that
// scope; other callers get 403 DENIED.
func (h *Handler) refuse(c *protocol.Call, d protocol.Denial) error {
	if d.BadCredentials {
		return h.challenge(c, nil, "authentication failed")
	}
	scopeName := d.Name
	if m, ok := c.R.Context().Value(mirrorKey{}).(mirror); ok {
		scopeName = m.requested // the realm carries ?ns= (challenge)
	}
	scope := []string{auth.DockerScope{Type: auth.TypeRepository, Name: scopeName, Actions: d.Actions}.String()}
	switch {
	case c.Caller.Anonymous:
		return h.challenge(c, scope, "authentication required")
	case c.Caller.Issued():
		return h.challenge(c, scope, "insufficient_scope")
	}
	return newError(http.StatusForbidden, CodeDenied, "%s may not %s %s", c.Subject(), d.Action, d.Name)
}

// challenge answers 401 with the Docker token flow's WWW-Authenticate.
func (h *Handler) challenge(c *protocol.Call, scopes []string, msg string) error {
	if h.opts.Realm == nil {
		c.W.Header().Set("WWW-Authenticate", `Basic realm="unireg"`)
	} else {
		realm := h.opts.Realm(c.R)
		if m, ok := c.R.Context().Value(mirrorKey{}).(mirror); ok {
			// containerd asks the realm for the name it pulls, without
			// the namespace; the realm maps it back (CanonicalName).
			realm = withQuery(realm, "ns", m.ns)
		}
		v := `Bearer realm=` + quoteParam(realm) + `,service=` + quoteParam(h.opts.Service)
		if len(scopes) > 0 {
			v += `,scope=` + quoteParam(strings.Join(scopes, " "))
		}
		if msg == "insufficient_scope" {
			v += `,error="insufficient_scope"`
		}
		c.W.Header().Set("WWW-Authenticate", v)
	}
	return newError(http.StatusUnauthorized, CodeUnauthorized, "%s", msg)
}

// quoteParam renders an auth-param value as an RFC 7235 quoted-string: the
// realm echoes X-Forwarded-Host, where a bare quote would let a client add
// parameters of its own to the challenge.
func quoteParam(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (h *Handler) serveBase(q *request) error {
	if q.R.Method != http.MethodGet && q.R.Method != http.MethodHead {
		return newError(http.StatusMethodNotAllowed, CodeUnsupported, "method not allowed")
	}
	if err := q.Identify(); err != nil {
		return err
	}
	// Like Distribution with token auth, the base endpoint asks anonymous
	// callers to authenticate, so `docker login` checks the credentials. A
	// JWT the token flow issued anonymously is a valid credential here, as
	// in Distribution: a client that checks /v2/ with it must not loop.
	if q.Caller.Anonymous && !q.Caller.Issued() && q.Gated() {
		return h.challenge(&q.Call, nil, "authentication required")
	}
	q.W.Header().Set("Content-Type", "application/json")
	q.W.WriteHeader(http.StatusOK)
	_, _ = q.W.Write([]byte("{}"))
	return nil
}

func (h *Handler) emit(q *request, e Event) {
	e.Identity = q.Caller
	protocol.Emit(q.R.Context(), h.opts.OnEvent, e)
}

// truncate shortens client input quoted in a message.
func truncate(s string) string { return protocol.Truncate(s, 128) }
