// Package registry is unireg as a library: one http.Handler that serves the
// OCI Distribution v1.1 API and the npm registry API over a pluggable
// [storage.Driver], with pluggable authentication and authorisation.
//
// A program builds one with New and mounts it anywhere an http.Handler fits
// (net/http, echo, chi, ...):
//
//	reg, err := registry.New(ctx, registry.Config{Storage: inmemory.New()})
//	...
//	defer reg.Close()
//	http.ListenAndServe(":5000", reg)
//
// By default it serves the OCI API at /v2/ with its token endpoint at
// /token, the npm registry under /npm/, and /healthz, /readyz and /metrics.
// OCI clients need /v2/ at the host root. [Config].OCI and [Config].NPM turn
// a protocol or one of its features off, or move its prefix; a disabled
// protocol or feature answers with its protocol's own error.
//
// # Authentication
//
// [Config].Authenticator turns a request's credentials (HTTP Basic or a
// Bearer token) into an [auth.Identity]; [Config].Authorizer decides each
// [auth.Access] (protocol, resource, action) of that identity. Both are small
// interfaces of package auth, so a program can back them by its own user
// database, OIDC or an API call. [auth.TokenStore] and [auth.ScopeAuthorizer]
// are the built-in implementations, not special cases.
//
// # Storage
//
// [Config].Storage is a [storage.Driver]: a small interface over opaque
// objects that knows nothing about OCI or npm. Packages storage/filesystem and
// storage/s3 implement it for production, storage/inmemory for tests and
// examples.
//
// # Parts and hooks
//
// [Registry.Storage], [Registry.Auth], [Registry.OCI] and [Registry.NPM]
// return what New assembled, for programs that mount one protocol handler
// themselves or protect routes of their own with the same auth.
// [Config].OnEvent reports every successful write (image pushed, tag moved,
// package published, token created, ...) with the identity that made it.
//
// cmd/registry is one user of this package: its flags and config file map
// onto Config through package registry/config. docs/library.md in the
// repository is the longer guide.
package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/internal/pullthrough"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/npm"
	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage"
)

// Config is everything a Registry needs. Only Storage is required; every
// other zero value works.
type Config struct {
	// Storage holds all content and metadata.
	Storage storage.Driver

	// Authenticator checks presented credentials (HTTP Basic password or
	// Bearer token). nil refuses every credential, leaving only anonymous
	// access. *auth.TokenStore is the built-in implementation.
	Authenticator auth.Authenticator
	// Authorizer decides each access; nil grants what the identity's scopes
	// allow (auth.ScopeAuthorizer).
	Authorizer auth.Authorizer
	// AnonymousScopes are granted to every request, e.g. "oci:repository:*:pull".
	AnonymousScopes []string
	// DisableAuth turns every check off: all requests may do everything.
	DisableAuth bool

	// JWTKey signs the short-lived JWTs of the Docker token flow (HS256, at
	// least 32 bytes). Replicas must share it. nil picks a random key, valid
	// for this process only.
	JWTKey []byte
	// JWTKeys, when set, replace JWTKey: the signing key and the previous
	// keys that still verify, which may change while the registry runs (a
	// rotation; see auth.JWTKeyFile).
	JWTKeys *auth.JWTKeys
	// TokenService is the `service` of Bearer challenges (default "unireg").
	TokenService string
	// TokenTTL is the lifetime of issued JWTs (default 5 minutes).
	TokenTTL time.Duration
	// PublicURL is the registry's external base URL (scheme and host, e.g.
	// "https://registry.example.com"); empty derives it from each request.
	PublicURL string
	// TrustedProxies are the peers whose forwarded headers are believed:
	// X-Forwarded-For and X-Real-IP for the client address in the request
	// log, X-Forwarded-Host and X-Forwarded-Proto for the base URL (when
	// PublicURL is empty). From any other peer they are ignored. nil trusts
	// DefaultTrustedProxies (loopback and the private ranges, where ingress
	// controllers and sidecars run); an empty, non-nil slice trusts no peer.
	TrustedProxies []netip.Prefix

	// OCI configures the OCI Distribution API.
	OCI OCIConfig
	// NPM configures the npm registry.
	NPM NPMConfig

	// Logger receives one line per request and background messages; nil
	// discards them.
	Logger *slog.Logger
	// Metrics is where the registry's Prometheus metrics are registered;
	// nil creates a private registry. Either way /metrics serves them.
	Metrics *prometheus.Registry
	// ReadyChecks are extra checks of /readyz, besides storage.
	ReadyChecks []ReadyCheck
	// OnEvent is called after every successful write, with the identity.
	OnEvent func(ctx context.Context, e Event)

	// Limits bound what one client can hold of the server.
	Limits Limits

	// Cache configures what the pull-through caches share (the upstreams
	// themselves are OCI.Upstreams; docs/cache.md).
	Cache CacheConfig

	// GC configures the garbage collector.
	GC GCConfig
}

// CacheConfig configures the pull-through caches' downloads.
type CacheConfig struct {
	// SpoolDir holds the blobs being downloaded from upstreams, which
	// every client asking for one reads as it arrives (default
	// os.TempDir()).
	SpoolDir string
	// SpoolBytes bounds the bytes being downloaded at once (default
	// 8 GiB); a cold pull that does not fit gets 503 with Retry-After.
	SpoolBytes int64
	// MemoryBytes bounds the memory the downloads together may hold, of
	// content received and not yet in their spool files, beyond the 16 MiB
	// each always has: while it lasts a cold pull is served at the
	// upstream's pace rather than the disk's (default
	// DefaultCacheMemoryBytes; negative: only each download's own 16 MiB).
	MemoryBytes int64
	// MaxIdle evicts cached content not pulled for that long, at the
	// garbage collector's runs; zero never evicts by age (the server's
	// flag defaults to DefaultCacheMaxIdle).
	MaxIdle time.Duration
	// MaxBytes bounds the cached content of both protocols together; the
	// garbage collector evicts the least recently pulled beyond it. Zero:
	// no bound.
	MaxBytes int64
}

// GCConfig configures the garbage collector (docs/gc.md).
type GCConfig struct {
	// Interval runs a collection that often inside the server; zero never
	// does (the server's flag defaults to gc.DefaultInterval). Replicas on
	// one storage take turns through a lease in it. With the collector on,
	// it purges abandoned uploads too, in place of the upload purger.
	Interval time.Duration
	// Grace protects blobs, tarballs and staging objects uploaded, linked
	// or mounted within it (zero: gc.DefaultGrace).
	Grace time.Duration
	// LeaseTTL is how long the storage lease of a collecting replica
	// lasts unrenewed (zero: gc.DefaultLeaseTTL): after a replica dies in
	// the middle of a collection, the others wait that long.
	LeaseTTL time.Duration
}

// Limits bound what one client can hold of the server. The size limits of
// each protocol are in OCIConfig and NPMConfig.
type Limits struct {
	// BodyRate bounds how slowly a request body may arrive (by default a
	// pause of at most a minute, and 1 KiB/s on average after the first
	// minute); a slower body fails with 408 and nothing of it is kept.
	BodyRate limit.BodyRate
	// ResponseRate bounds how slowly a client may take a response (by
	// default every 64 KiB within about a minute: 1 KiB/s); a client that
	// stops reading is disconnected, so it holds no connection, goroutine
	// or open file beyond that.
	ResponseRate limit.ResponseRate
	// UploadsPerIdentity is how many blob uploads and npm publishes one
	// identity (one subject; all anonymous callers together) may stream at
	// once (default 128); more answer 429. Negative: no bound.
	UploadsPerIdentity int
	// CacheFillsPerIdentity is how many upstream requests and downloads
	// of the pull-through caches one identity may start at once (default
	// 16); more answer 429. Clients joining one already under way do not
	// count. Negative: no bound.
	CacheFillsPerIdentity int
}

// OCIConfig configures the OCI side: the handler's own oci.Settings (their
// defaults are oci.Default*, applied by oci.New) and what the registry does
// around the handler.
type OCIConfig struct {
	oci.Settings
	// Disabled turns the OCI API off; requests under Prefix then get
	// 404 UNSUPPORTED in the OCI error JSON.
	Disabled bool
	// UploadPurgeInterval is how often abandoned uploads are looked for
	// (zero: DefaultUploadPurgeInterval); negative disables the purger.
	UploadPurgeInterval time.Duration
}

// NPMConfig configures the npm side: the handler's own npm.Settings (their
// defaults are npm.Default*, applied by npm.New) and whether it is served.
type NPMConfig struct {
	npm.Settings
	// Disabled turns the npm registry off; requests under Prefix then get
	// 404 with {"error": "the npm registry is disabled on this server"}.
	Disabled bool
}

// Event describes a successful write.
type Event struct {
	// Protocol is "oci" or "npm".
	Protocol string
	// Action names the write: for OCI "blob.pushed", "blob.mounted",
	// "blob.deleted", "manifest.pushed", "manifest.deleted", "tag.moved",
	// "tag.deleted" (also one per tag a manifest deletion removes); for npm
	// "package.published" (followed by "dist-tag.set" for each tag the
	// publish moved), "package.unpublished", "version.unpublished",
	// "package.changed", "dist-tag.set", "dist-tag.removed",
	// "token.created", "token.revoked".
	Action string
	// Repository is the OCI repository or the npm package.
	Repository string
	Digest     string
	// Tag is the OCI tag or the npm dist-tag; for package.published, the
	// dist-tag the publish set ("latest", or `npm publish --tag`).
	Tag       string
	MediaType string
	// Version is the npm version.
	Version  string
	Identity *auth.Identity
}

// ReadyCheck is one check of /readyz.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
	// WarnOnly reports a failure in the /readyz body without failing it: an
	// auth store that failed to reload keeps the previous tokens, and taking
	// every replica out of service for it would turn a typo into an outage.
	WarnOnly bool
}

// Registry is the assembled registry: an http.Handler with its parts.
type Registry struct {
	cfg     Config
	echo    *echo.Echo
	tokens  *auth.UserTokens
	auth    *auth.Service
	oci     *oci.Handler
	npm     *npm.Handler
	metrics *metrics
	uploads *limit.Uploads
	proxies *proxies

	cache   *pullthrough.Shared // made by the first protocol with an upstream
	gc      *gc.Collector
	handler http.Handler
	cancel  context.CancelFunc
	done    chan struct{}
}

// New assembles a registry and starts its background work (the upload
// purger), which Close stops.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	if cfg.Storage == nil {
		return nil, errors.New("registry: Config.Storage is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.TokenService == "" {
		cfg.TokenService = DefaultTokenService
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, &ConfigError{Field: "PublicURL", Err: fmt.Errorf("%q must be an absolute URL", cfg.PublicURL)}
		}
		cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	}
	if cfg.Limits.UploadsPerIdentity == 0 {
		cfg.Limits.UploadsPerIdentity = DefaultUploadsPerIdentity
	}
	if cfg.Cache.SpoolBytes == 0 {
		cfg.Cache.SpoolBytes = DefaultCacheSpoolBytes
	}
	if cfg.Cache.MemoryBytes == 0 {
		cfg.Cache.MemoryBytes = DefaultCacheMemoryBytes
	}
	if cfg.Limits.CacheFillsPerIdentity == 0 {
		cfg.Limits.CacheFillsPerIdentity = DefaultCacheFillsPerIdentity
	}
	r := &Registry{cfg: cfg, done: make(chan struct{}), uploads: limit.NewUploads(cfg.Limits.UploadsPerIdentity)}
	r.proxies = newProxies(cfg.TrustedProxies)
	// Tokens -> authenticator -> gate -> protocols, in that order: each is
	// built from the one before.
	r.tokens = r.newUserTokens()
	gate, err := newGate(r.cfg, r.authenticator())
	if err != nil {
		return nil, err
	}
	r.auth = gate
	if !cfg.NPM.Disabled {
		if r.npm, err = r.newNPM(); err != nil {
			return nil, &ConfigError{Field: "NPM.Upstream", Err: err}
		}
	}
	r.metrics = newMetrics(cfg.Metrics)
	if !cfg.OCI.Disabled {
		if r.oci, err = r.newOCI(); err != nil {
			return nil, &ConfigError{Field: "OCI.Upstreams", Err: err}
		}
	}
	r.metrics.watchUploads(r.uploadsInProgress)
	r.gc = r.newCollector()
	r.echo = r.routes()
	r.handler = limit.SlowResponses(limit.SlowBodies(r.echo, cfg.Limits.BodyRate), cfg.Limits.ResponseRate)

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	go func() {
		defer close(r.done)
		var refresh sync.WaitGroup
		defer refresh.Wait()
		if r.tokens != nil {
			// User tokens and revocations are checked from memory; this
			// keeps that view current (see auth.UserTokens).
			refresh.Go(func() { r.tokens.RunRefresh(bg, cfg.Logger) })
		}
		if cfg.GC.Interval > 0 {
			r.gc.Run(bg, cfg.GC.Interval) // its OCI part purges uploads too
			return
		}
		if r.oci != nil && cfg.OCI.UploadPurgeInterval >= 0 {
			every := cfg.OCI.UploadPurgeInterval
			if every == 0 {
				every = DefaultUploadPurgeInterval
			}
			r.oci.RunUploadPurger(bg, every)
		}
	}()
	return r, nil
}

// newCollector assembles the garbage collector over the protocols served.
func (r *Registry) newCollector() *gc.Collector {
	c := &gc.Collector{
		Store:    r.cfg.Storage,
		Logger:   r.cfg.Logger,
		Metrics:  gc.NewMetrics(r.cfg.Metrics),
		Options:  gc.Options{Grace: r.cfg.GC.Grace, CacheMaxIdle: r.cfg.Cache.MaxIdle, CacheMaxBytes: r.cfg.Cache.MaxBytes},
		LeaseTTL: r.cfg.GC.LeaseTTL,
	}
	if r.oci != nil {
		c.Parts = append(c.Parts, r.oci.GC())
	}
	if r.npm != nil {
		c.Parts = append(c.Parts, r.npm.GC())
	}
	return c
}

// Collect runs one garbage collection now (docs/gc.md) and reports what it
// deleted, or with dryRun what it would delete. It returns gc.ErrLeaseHeld
// when another process on the same storage is collecting.
func (r *Registry) Collect(ctx context.Context, dryRun bool) (gc.Report, error) {
	return r.gc.Collect(ctx, dryRun)
}

// newUserTokens returns the tokens of the npm token API, nil when that API
// is off. Tokens made with a credential of Config.Authenticator stop working
// with it.
func (r *Registry) newUserTokens() *auth.UserTokens {
	if r.cfg.NPM.Disabled || r.cfg.NPM.DisableTokenAPI {
		return nil
	}
	parents, _ := r.cfg.Authenticator.(auth.TokenLiveness)
	return auth.NewUserTokens(r.cfg.Storage, auth.UserTokensOptions{Parents: parents})
}

// authenticator is Config.Authenticator, followed by the user tokens (those
// made with `npm token create` authenticate too) and checked against their
// revocations (`npm logout` revokes any token), when there are user tokens.
func (r *Registry) authenticator() auth.Authenticator {
	if r.tokens == nil {
		return r.cfg.Authenticator
	}
	return auth.WithRevocations(auth.Chain{r.cfg.Authenticator, r.tokens}, r.tokens)
}

func newGate(cfg Config, authn auth.Authenticator) (*auth.Service, error) {
	if cfg.DisableAuth {
		return nil, nil
	}
	anon, err := auth.ParseScopes(cfg.AnonymousScopes)
	if err != nil {
		return nil, &ConfigError{Field: "AnonymousScopes", Err: err}
	}
	key := cfg.JWTKey
	if key == nil && cfg.JWTKeys == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	issuer, err := auth.NewJWTIssuer(auth.JWTIssuerOptions{Key: key, Keys: cfg.JWTKeys, Service: cfg.TokenService, TTL: cfg.TokenTTL})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	return auth.NewService(auth.ServiceOptions{
		Authenticator: authn, Authorizer: cfg.Authorizer, Anonymous: anon, Issuer: issuer,
	}), nil
}

func (r *Registry) newOCI() (*oci.Handler, error) {
	o := oci.Options{
		Settings: r.cfg.OCI.Settings,
		Storage:  r.cfg.Storage,
		Uploads:  r.uploads,
		Logger:   r.cfg.Logger,
		Service:  r.cfg.TokenService,
		GCGrace:  r.cfg.GC.Grace,
	}
	if len(o.Upstreams) > 0 {
		o.Cache = r.cacheShared()
	}
	if r.auth != nil {
		o.Gate = r.auth
		o.Realm = func(req *http.Request) string { return r.BaseURL(req) + "/token" }
	}
	if r.cfg.OnEvent != nil {
		o.OnEvent = func(ctx context.Context, e oci.Event) {
			r.cfg.OnEvent(ctx, Event{Protocol: "oci", Action: e.Action, Repository: e.Repository,
				Digest: e.Digest, Tag: e.Tag, MediaType: e.MediaType, Identity: e.Identity})
		}
	}
	return oci.New(o)
}

// cacheShared is what the caches of both protocols share: one spool and
// its budget, one set of metrics, one bound of fills per identity.
func (r *Registry) cacheShared() pullthrough.Shared {
	if r.cache == nil {
		r.cache = &pullthrough.Shared{
			Fills:            &pullthrough.Fills{Dir: r.cfg.Cache.SpoolDir, Budget: r.cfg.Cache.SpoolBytes, MemoryWindow: r.cfg.Cache.MemoryBytes},
			Metrics:          pullthrough.NewMetrics(r.cfg.Metrics),
			FillsPerIdentity: limit.NewUploads(r.cfg.Limits.CacheFillsPerIdentity),
			Transport:        pullthrough.DefaultTransport(),
		}
	}
	return *r.cache
}

func (r *Registry) newNPM() (*npm.Handler, error) {
	o := npm.Options{
		Settings: r.cfg.NPM.Settings,
		Storage:  r.cfg.Storage,
		BaseURL:  r.BaseURL,
		Tokens:   r.tokens,
		Uploads:  r.uploads,
		Logger:   r.cfg.Logger,
	}
	if r.auth != nil {
		o.Gate = r.auth
	}
	if r.cfg.OnEvent != nil {
		o.OnEvent = func(ctx context.Context, e npm.Event) {
			r.cfg.OnEvent(ctx, Event{Protocol: "npm", Action: e.Action, Repository: e.Package,
				Version: e.Version, Tag: e.Tag, Identity: e.Identity})
		}
	}
	if o.Upstream.URL != "" {
		o.Cache = r.cacheShared()
	}
	return npm.New(o)
}

func (r *Registry) uploadsInProgress() int64 {
	var n int64
	if r.oci != nil {
		n += r.oci.UploadsInProgress()
	}
	if r.npm != nil {
		n += r.npm.UploadsInProgress()
	}
	return n
}

// BaseURL is the registry's external base URL for a request: PublicURL when
// set, else the request's scheme and Host, where X-Forwarded-Proto and
// X-Forwarded-Host count only from a peer in Config.TrustedProxies.
func (r *Registry) BaseURL(req *http.Request) string {
	if r.cfg.PublicURL != "" {
		return r.cfg.PublicURL
	}
	return protocol.BaseURL(req, r.proxies.trustsPeer(req))
}

// ServeHTTP implements http.Handler.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.handler.ServeHTTP(w, req) }

// Storage returns the storage driver.
func (r *Registry) Storage() storage.Driver { return r.cfg.Storage }

// Auth returns the auth gate, nil when auth is disabled.
func (r *Registry) Auth() *auth.Service { return r.auth }

// OCI returns the OCI API handler, nil when the OCI side is disabled.
func (r *Registry) OCI() *oci.Handler { return r.oci }

// NPM returns the npm registry handler, nil when the npm side is disabled.
func (r *Registry) NPM() *npm.Handler { return r.npm }

// Metrics returns the Prometheus registry the metrics live in.
func (r *Registry) Metrics() *prometheus.Registry { return r.cfg.Metrics }

// Ready runs the readiness checks: storage reachable, then ReadyChecks. It
// returns the failure that makes the registry unready, and the warnings of
// checks that only warn.
func (r *Registry) Ready(ctx context.Context) (warnings []string, err error) {
	if err := r.cfg.Storage.Ping(ctx); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	for _, c := range r.cfg.ReadyChecks {
		if err := c.Check(ctx); err != nil {
			if !c.WarnOnly {
				return warnings, fmt.Errorf("%s: %w", c.Name, err)
			}
			warnings = append(warnings, c.Name+": "+err.Error())
		}
	}
	return warnings, nil
}

// Close stops background work. It does not close the storage.
func (r *Registry) Close() error {
	r.cancel()
	<-r.done
	return nil
}
