// Package npm implements the npm registry API (what the npm, pnpm and yarn
// clients use) over a storage.Driver. It is a plain http.Handler, mounted
// under a path prefix (/npm by default) by the registry.
package npm

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/internal/pullthrough"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/storage"
)

// Gate identifies requests and decides accesses; *auth.Service is one.
type Gate = auth.Gate

// Event describes a successful write, for audit hooks.
type Event struct {
	// Action is one of "package.published", "package.unpublished",
	// "version.unpublished", "package.changed", "dist-tag.set",
	// "dist-tag.removed", "token.created", "token.revoked". A publish
	// reports package.published, then dist-tag.set for each tag it moved.
	Action  string
	Package string
	Version string
	// Tag is the dist-tag set or removed; for package.published, the tags
	// the publish moved to the new version ("latest", or `npm publish
	// --tag`), comma-separated in the rare publish that sets several.
	Tag      string
	Identity *auth.Identity
}

// Settings are what an operator chooses about the npm registry: the part
// of Options that registry.NPMConfig embeds, so that each is named once. The
// zero value of every field works; New gives it the default its comment names.
type Settings struct {
	// Prefix is the path the handler is mounted at (default DefaultPrefix).
	Prefix string
	// MaxDocumentSize bounds a publish body without its tarball, in bytes
	// (0 or negative: DefaultMaxDocumentSize).
	MaxDocumentSize int
	// MaxTarballSize bounds one tarball, in bytes (0 or negative:
	// DefaultMaxTarballSize).
	MaxTarballSize int64
	// DocumentCacheSize bounds the memory of the document cache, in bytes:
	// the decoded documents and their rendered copies, least recently used
	// evicted first (0 or negative: DefaultDocumentCacheSize).
	DocumentCacheSize int64
	// DisablePublish, DisableUnpublish, DisableSearch and DisableTokenAPI
	// answer those endpoints with an npm error instead. Without the token
	// API, `npm logout` revokes nothing and says so in an npm-notice
	// header, answering 200 so that npm still forgets the token locally.
	DisablePublish, DisableUnpublish, DisableSearch, DisableTokenAPI bool
	// Upstream is the npm registry packages not held here are served from,
	// cached (uplink.go, docs/cache.md); its URL empty: none.
	Upstream Upstream
	// UpstreamMaxAge is how long a cached upstream document is served
	// without asking the upstream (0 or negative: DefaultUpstreamMaxAge).
	UpstreamMaxAge time.Duration
	// LocalScopes are scopes ("@acme") whose packages are never looked up
	// upstream, whether or not they exist here.
	LocalScopes []string
	// AllowCaseVariants lets a new package take a name that differs from a
	// package held here only by case (jsonstream beside JSONStream), for
	// migrations of trees that hold both. Without it such a publish is
	// refused, as the public registry refuses it.
	AllowCaseVariants bool
	// Signing signs every version held here in the documents served, and
	// its public keys are served at /-/npm/v1/keys (signing.go); nil:
	// versions are served without registry signatures.
	Signing *SigningKeys
}

// Options configure a Handler: its Settings and the parts it is wired to.
// Only Storage is required.
type Options struct {
	Settings
	Storage storage.Driver
	// Gate decides who may do what; nil allows everything.
	Gate Gate
	// Tokens keeps the tokens of the token API (`npm token create`) and the
	// revocations of `npm logout` and `npm token revoke`. For them to
	// authenticate and be honoured, the Gate's Authenticator must include
	// it (registry.New builds it so). nil: tokens over Storage that nothing
	// else asks.
	Tokens *auth.UserTokens
	// BaseURL returns the externally visible scheme and host for a request
	// (tarball URLs are absolute); nil uses the request's Host.
	BaseURL func(r *http.Request) string
	// Uploads bounds the publish bodies one identity streams at once (nil:
	// no bound); share one with the OCI handler to bound both together.
	Uploads *limit.Uploads
	// OnEvent is called after every successful write.
	OnEvent func(ctx context.Context, e Event)
	// Logger receives background messages.
	Logger *slog.Logger
	// Cache holds what the pull-through caches of a registry share.
	Cache pullthrough.Shared
}

// Handler serves the npm API.
type Handler struct {
	opts     Options
	store    storage.Driver
	packages *packages
	tokens   *auth.UserTokens
	guard    protocol.Guard
	uploads  *protocol.Uploads
	uplink   *uplink // nil without an Upstream
	pulled   *pullthrough.Pulled
	// searchIndex answers searches without reading documents (searchindex.go).
	searchIndex *searchIndex
}

// MountPrefix is the path a handler configured with prefix is mounted at:
// DefaultPrefix when empty, with one leading slash and none trailing ("/"
// for the root).
func MountPrefix(prefix string) string {
	if prefix == "" {
		return DefaultPrefix
	}
	return "/" + strings.Trim(prefix, "/")
}

// New returns a Handler, or an error naming a setting it cannot use.
func New(o Options) (*Handler, error) {
	o.Prefix = MountPrefix(o.Prefix)
	if o.MaxDocumentSize <= 0 {
		o.MaxDocumentSize = DefaultMaxDocumentSize
	}
	if o.MaxTarballSize <= 0 {
		o.MaxTarballSize = DefaultMaxTarballSize
	}
	if o.DocumentCacheSize <= 0 {
		o.DocumentCacheSize = DefaultDocumentCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tokens == nil {
		o.Tokens = auth.NewUserTokens(o.Storage, auth.UserTokensOptions{})
	}
	h := &Handler{
		opts:     o,
		store:    o.Storage,
		packages: &packages{store: o.Storage, cache: newDocCache(o.DocumentCacheSize), segments: newSegmentCache(o.DocumentCacheSize), signing: o.Signing},
		tokens:   o.Tokens,
		uploads:  protocol.NewUploads(o.Uploads),
	}
	h.searchIndex = newSearchIndex(o.Storage, h.packageNames, h.packages.load)
	h.packages.written = h.searchIndex.written
	h.guard = protocol.Guard{Gate: o.Gate, Protocol: auth.ProtocolNPM, Type: auth.TypePackage, Refuse: refuse}
	var err error
	if h.uplink, err = newUplink(o); err != nil {
		return nil, err
	}
	h.pulled = &pullthrough.Pulled{Store: o.Storage}
	return h, nil
}

// Prefix returns the path the handler serves under.
func (h *Handler) Prefix() string { return h.opts.Prefix }

// Tokens returns the token store of the npm token API (Options.Tokens): an
// Authenticator for the tokens it created, and the list of tokens revoked by
// `npm logout`.
func (h *Handler) Tokens() *auth.UserTokens { return h.tokens }

// UploadsInProgress returns how many publishes hold an upload slot now:
// from the start of their body to their answer.
func (h *Handler) UploadsInProgress() int64 { return h.uploads.InProgress() }

// request is one API call: the exchange, the caller and the parsed route.
type request struct {
	protocol.Call
	route route
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	escaped, ok := strings.CutPrefix(r.URL.EscapedPath(), h.opts.Prefix)
	if !ok || (escaped != "" && escaped[0] != '/') {
		writeError(w, r, newError(http.StatusNotFound, "not found"))
		return
	}
	q := &request{Call: h.guard.Call(w, r), route: parsePath(escaped)}
	h.guard.ReportRoute(r, q.route.kind)
	if q.route.nameErr != nil {
		writeError(w, r, newError(http.StatusBadRequest, "invalid package name: %v", q.route.nameErr))
		return
	}
	if err := h.dispatch(q); err != nil {
		writeError(w, r, err)
	}
}

func (h *Handler) dispatch(q *request) error {
	m := q.R.Method
	get := m == http.MethodGet || m == http.MethodHead
	switch q.route.kind {
	case RoutePing:
		return h.ping(q)
	case RouteWhoami:
		return h.whoami(q)
	case RouteSearch:
		if get {
			return h.search(q)
		}
	case RouteLogin:
		// Web login is not offered: any 4xx makes npm fall back to the
		// legacy login, where the password is a registry token.
		return newError(http.StatusNotFound, "web login is not supported; use a registry token as the password")
	case RouteUser:
		switch m {
		case http.MethodPut:
			return h.login(q)
		case http.MethodGet:
			return h.getUser(q)
		}
	case RouteLogout:
		if m == http.MethodDelete {
			return h.logout(q)
		}
	case RouteTokens:
		switch m {
		case http.MethodGet:
			return h.listTokens(q)
		case http.MethodPost:
			return h.createToken(q)
		}
	case RouteToken:
		if m == http.MethodDelete {
			return h.revokeToken(q)
		}
	case RouteAudit:
		if m == http.MethodPost {
			return h.audit(q)
		}
	case RouteKeys:
		if get {
			return h.keys(q)
		}
	case RouteStars:
		if get {
			return h.starredByUser(q)
		}
	case RouteVisibility:
		if get {
			return h.visibility(q)
		}
	case RouteOrgPackages:
		if get {
			return h.orgPackages(q)
		}
	case RouteUserPackages:
		if get {
			return h.userPackages(q)
		}
	case RouteProfile:
		if get || m == http.MethodPost {
			return h.profile(q)
		}
	case RouteUnsupported:
		return h.unsupportedCommand(q)
	case RouteDistTags:
		if get {
			return h.listDistTags(q)
		}
	case RouteDistTag:
		switch m {
		case http.MethodPut, http.MethodPost:
			return h.setDistTag(q)
		case http.MethodDelete:
			return h.removeDistTag(q)
		}
	case RoutePackument:
		switch {
		case get:
			return h.getPackument(q)
		case m == http.MethodPut:
			return h.putPackage(q)
		}
	case RoutePackageRev:
		switch m {
		case http.MethodPut:
			return h.putPackage(q)
		case http.MethodDelete:
			return h.unpublishPackage(q)
		}
	case RouteTarball:
		if get {
			return h.getTarball(q)
		}
	case RouteTarballRev:
		if m == http.MethodDelete {
			return h.deleteTarball(q)
		}
	case RouteVersion:
		if get {
			return h.getVersion(q)
		}
	default:
		return newError(http.StatusNotFound, "not found")
	}
	return newError(http.StatusMethodNotAllowed, "method %s not allowed here", m)
}

// refuse writes the guard's refusals: 401 for wrong credentials and
// anonymous callers, 403 for authenticated ones lacking the scope. Wrong
// credentials never get a WWW-Authenticate, which would make npm ask for a
// one-time password.
func refuse(c *protocol.Call, d protocol.Denial) error {
	switch {
	case d.BadCredentials:
		return newError(http.StatusUnauthorized, "invalid or revoked token")
	case c.Caller.Anonymous:
		return newError(http.StatusUnauthorized, "authentication required to %s %s", d.Action, d.Name)
	}
	return newError(http.StatusForbidden, "%s may not %s %s (scope npm:package:%s:%s needed)", c.Subject(), d.Action, d.Name, d.Name, d.Action)
}

// requireUser checks that the caller is authenticated.
func (h *Handler) requireUser(q *request) error {
	if err := q.Identify(); err != nil {
		return err
	}
	if q.Caller.Anonymous {
		return newError(http.StatusUnauthorized, "authentication required")
	}
	return nil
}

// npmRoot is the externally visible URL of the npm prefix.
func (h *Handler) npmRoot(r *http.Request) string {
	base := protocol.BaseURL(r, false)
	if h.opts.BaseURL != nil {
		base = h.opts.BaseURL(r)
	}
	return strings.TrimSuffix(base, "/") + h.opts.Prefix
}

func (h *Handler) emit(q *request, e Event) {
	e.Identity = q.Caller
	protocol.Emit(q.R.Context(), h.opts.OnEvent, e)
}

func (h *Handler) ping(q *request) error {
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{})
	return nil
}

func (h *Handler) whoami(q *request) error {
	if err := h.requireUser(q); err != nil {
		return err
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]string{"username": q.Subject()})
	return nil
}
