package config

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/auth/k8ssecret"
	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/npm"
	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/s3"
)

// File names inside --data-dir.
const (
	StorageDirName     = "storage"
	AdminTokenFileName = "admin-token"
	AuthStoreFileName  = authstore.SecretKey
	JWTKeyFileName     = "jwt.key"
	NPMSigningKeyName  = "npm-signing-key.pem"
)

// NewLogger builds the slog logger the options ask for.
func (o *Options) NewLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	format := o.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "text"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json, text or auto", o.LogFormat)
}

// Built is a registry.Config assembled from Options, with what must be closed.
type Built struct {
	Config registry.Config
	// TokenStore is the watched auth store, nil when none is used.
	TokenStore *auth.TokenStore
	// JWTKeyFile is the watched JWT key file.
	JWTKeyFile *auth.JWTKeyFile
}

// NewRegistry builds the registry from Config. A field registry.New refuses
// is reported under its flag (--anonymous: ...), since that is what the
// operator of the command line wrote.
func (b *Built) NewRegistry(ctx context.Context) (*registry.Registry, error) {
	reg, err := registry.New(ctx, b.Config)
	var field *registry.ConfigError
	if errors.As(err, &field) {
		if flag, ok := flagOfField[field.Field]; ok {
			return nil, fmt.Errorf("--%s: %w", flag, field.Err)
		}
	}
	return reg, err
}

// flagOfField names the flag that sets each registry.Config field New
// validates.
var flagOfField = map[string]string{
	"AnonymousScopes": "anonymous",
	"PublicURL":       "public-url",
	"OCI.Upstreams":   "oci-upstream",
	"NPM.Upstream":    "npm-upstream",
}

// Close stops the auth-store and key-file watchers.
func (b *Built) Close() error {
	if b.JWTKeyFile != nil {
		b.JWTKeyFile.Close()
	}
	if b.TokenStore != nil {
		return b.TokenStore.Close()
	}
	return nil
}

// Build prepares the data directory (storage, JWT key, first-run admin
// token) and assembles the registry configuration.
func (o *Options) Build(ctx context.Context, log *slog.Logger) (*Built, error) {
	if o.DataDir == "" {
		return nil, errNoDataDir
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	store, err := o.storage(ctx, log)
	if err != nil {
		return nil, err
	}
	keyFile, err := o.jwtKeyFile(log)
	if err != nil {
		return nil, err
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := o.Registry
	cfg.Storage, cfg.JWTKeys, cfg.Logger, cfg.Metrics = store, keyFile.Keys(), log, metrics
	cfg.OCI.Upstreams = append([]oci.Upstream(nil), cfg.OCI.Upstreams...)
	if err := attachUpstreamCredentials(cfg.OCI.Upstreams, o.UpstreamCredentials); err != nil {
		keyFile.Close()
		return nil, err
	}
	if !cfg.NPM.Disabled {
		if cfg.NPM.Signing, err = o.npmSigningKeys(log); err != nil {
			keyFile.Close()
			return nil, err
		}
	}
	if o.NPMUpstreamCredentials != "" {
		if cfg.NPM.Upstream.URL == "" {
			keyFile.Close()
			return nil, errors.New("--npm-upstream-credentials: there is no --npm-upstream")
		}
		if _, err := readToken(o.NPMUpstreamCredentials); err != nil {
			keyFile.Close()
			return nil, fmt.Errorf("--npm-upstream-credentials: %w", err)
		}
		path := o.NPMUpstreamCredentials
		cfg.NPM.Upstream.Token = func() (string, error) { return readToken(path) }
	}
	if (len(cfg.OCI.Upstreams) > 0 || cfg.NPM.Upstream.URL != "") && cfg.Cache.SpoolDir == "" {
		cfg.Cache.SpoolDir = filepath.Join(o.DataDir, "cache-spool")
		if err := os.MkdirAll(cfg.Cache.SpoolDir, 0o700); err != nil {
			keyFile.Close()
			return nil, fmt.Errorf("cache spool: %w", err)
		}
	}
	b := &Built{Config: cfg, JWTKeyFile: keyFile}
	ts, err := o.tokenStore(ctx, log, metrics, len(b.Config.AnonymousScopes) > 0)
	if err != nil {
		b.Close()
		return nil, err
	}
	if ts != nil {
		b.TokenStore = ts
		b.Config.Authenticator = ts
		b.Config.ReadyChecks = append(b.Config.ReadyChecks, authStoreChecks(ts)...)
	}
	return b, nil
}

// tokenStore opens the auth store the options name: the Secret of
// --auth-store-secret, the file of --auth-store, or (with neither, and no
// --anonymous) the first-run admin store in the data dir. It is nil when
// only anonymous scopes apply.
func (o *Options) tokenStore(ctx context.Context, log *slog.Logger, metrics *prometheus.Registry, anonymous bool) (*auth.TokenStore, error) {
	onReload := authStoreMetrics(metrics)
	if o.AuthStoreSecret != "" {
		return o.watchAuthSecret(ctx, log, onReload)
	}
	path := o.AuthStore
	if path == "" && !anonymous {
		var err error
		if path, err = o.bootstrapAdmin(log); err != nil {
			return nil, err
		}
	}
	if path == "" {
		return nil, nil
	}
	ts, err := auth.OpenTokenStore(path, auth.TokenStoreOptions{Logger: log, Watch: true, OnReload: onReload.loaded})
	if err != nil {
		return nil, fmt.Errorf("--auth-store: %w", err)
	}
	onReload.store = ts
	return ts, nil
}

// storeMetrics are the auth store's Prometheus series.
type storeMetrics struct {
	store        *auth.TokenStore
	reloadErrors prometheus.Counter
}

func (m *storeMetrics) loaded(err error) {
	if err != nil {
		m.reloadErrors.Inc()
	}
}

func authStoreMetrics(metrics *prometheus.Registry) *storeMetrics {
	m := &storeMetrics{reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "unireg_auth_store_reload_errors_total", Help: "Failed loads of the auth store.",
	})}
	metrics.MustRegister(m.reloadErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "unireg_auth_store_healthy", Help: "1 when the last load of the auth store succeeded.",
		}, func() float64 {
			if m.store != nil && m.store.Err() == nil {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "unireg_auth_store_tokens", Help: "Tokens in force from the auth store.",
		}, func() float64 {
			if m.store == nil {
				return 0
			}
			return float64(m.store.Len())
		}))
	return m
}

// authStoreChecks: never loaded is unready; a failed reload only warns (the
// previous tokens stay in force). /readyz answers anyone, and a load error
// quotes the store (user names, scopes), so the checks say only which state
// the store is in; the token store logs the error itself, once per failure.
func authStoreChecks(ts *auth.TokenStore) []registry.ReadyCheck {
	return []registry.ReadyCheck{
		{Name: "auth store", Check: func(context.Context) error {
			if err := ts.Err(); errors.Is(err, auth.ErrNotLoaded) {
				return auth.ErrNotLoaded
			}
			return nil
		}},
		{Name: "auth store", WarnOnly: true, Check: func(context.Context) error {
			if ts.Err() != nil {
				return errAuthStoreReloadFailed
			}
			return nil
		}},
	}
}

var errAuthStoreReloadFailed = errors.New("last reload failed")

// watchAuthSecret feeds a token store from the Secret NAMESPACE/NAME.
func (o *Options) watchAuthSecret(ctx context.Context, log *slog.Logger, m *storeMetrics) (*auth.TokenStore, error) {
	ns, name, ok := strings.Cut(o.AuthStoreSecret, "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("--auth-store-secret %q: want NAMESPACE/NAME", o.AuthStoreSecret)
	}
	cfg, err := k8ssecret.Config()
	if err != nil {
		return nil, fmt.Errorf("--auth-store-secret: %w", err)
	}
	ts := auth.NewTokenStore(auth.TokenStoreOptions{Logger: log, OnReload: m.loaded})
	m.store = ts
	if err := k8ssecret.Watch(ctx, cfg, ns, name, ts, log); err != nil {
		return nil, err
	}
	return ts, nil
}

// storage opens the S3 bucket when --s3-bucket is set, else the filesystem
// under DATA_DIR/storage.
func (o *Options) storage(ctx context.Context, log *slog.Logger) (storage.Driver, error) {
	if o.S3Bucket == "" {
		return filesystem.New(filepath.Join(o.DataDir, StorageDirName))
	}
	if o.S3Endpoint == "" {
		return nil, errors.New("--s3-bucket needs --s3-endpoint")
	}
	access, secret := o.S3AccessKey, o.S3SecretKey
	for _, f := range []struct {
		path string
		dst  *string
	}{{o.S3AccessKeyFile, &access}, {o.S3SecretKeyFile, &secret}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("S3 key file: %w", err)
		}
		*f.dst = strings.TrimSpace(string(b))
	}
	d, err := s3.New(ctx, s3.Options{
		Endpoint: o.S3Endpoint, Bucket: o.S3Bucket, Region: o.S3Region, Prefix: o.S3Prefix,
		AccessKey: access, SecretKey: secret, SessionToken: o.S3SessionToken,
		VirtualHost: o.S3VirtualHost, InsecureSkipVerify: o.S3InsecureSkipVerify,
		PartSize: o.S3PartSize, CreateBucket: true, Lazy: true,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 storage: %w", err)
	}
	// A bucket that does not answer yet is not fatal: /readyz says why
	// until it does, and Ping creates it when missing.
	if err := d.Ping(ctx); err != nil {
		log.Warn("S3 storage not reachable yet; /readyz reports it", "error", err)
	}
	return d, nil
}

// jwtKeyFile opens the key file, generating DATA_DIR/jwt.key when no file
// was named and none exists yet, and follows it: a rotation (a new first
// line, the previous key on the next) applies without a restart.
func (o *Options) jwtKeyFile(log *slog.Logger) (*auth.JWTKeyFile, error) {
	path := o.JWTKeyFile
	if path == "" {
		path = filepath.Join(o.DataDir, JWTKeyFileName)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := writeSecretFile(path, randomHex(32)+"\n"); err != nil {
				return nil, fmt.Errorf("generate JWT key: %w", err)
			}
		}
	}
	return auth.OpenJWTKeyFile(path, auth.JWTKeyFileOptions{Logger: log, Watch: true})
}

// npmSigningKeys reads the npm signing keys, generating
// DATA_DIR/npm-signing-key.pem when no file was named and none exists yet.
// Read once: a rotation applies at the next start. Errors name the flag,
// never the key.
func (o *Options) npmSigningKeys(log *slog.Logger) (*npm.SigningKeys, error) {
	path := o.NPMSigningKeyFile
	if path == "" {
		path = filepath.Join(o.DataDir, NPMSigningKeyName)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			key, err := npm.GenerateSigningKey()
			if err == nil {
				err = writeSecretFile(path, string(key))
			}
			if err != nil {
				return nil, fmt.Errorf("generate npm signing key: %w", err)
			}
			log.Info("created the npm signing key", "path", path)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--npm-signing-key-file: %w", err)
	}
	keys, err := npm.ParseSigningKeys(raw)
	if err != nil {
		return nil, fmt.Errorf("--npm-signing-key-file: %w", err)
	}
	log.Info("npm versions are signed", "keyid", keys.KeyID())
	return keys, nil
}

// bootstrapAdmin makes the first run private and usable at once: it creates
// an admin token with scope `*` (reused on later starts), writes it to
// DATA_DIR/admin-token and makes sure DATA_DIR/auth-store.yaml lists its hash.
func (o *Options) bootstrapAdmin(log *slog.Logger) (string, error) {
	tokenPath := filepath.Join(o.DataDir, AdminTokenFileName)
	storePath := filepath.Join(o.DataDir, AuthStoreFileName)
	raw, err := os.ReadFile(tokenPath)
	token := strings.TrimSpace(string(raw))
	if errors.Is(err, fs.ErrNotExist) || token == "" {
		if token, err = auth.NewToken(); err != nil {
			return "", err
		}
		if err := writeSecretFile(tokenPath, token+"\n"); err != nil {
			return "", fmt.Errorf("write admin token: %w", err)
		}
		log.Info("created an admin token with scope *", "path", tokenPath)
	} else if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	hash := auth.HashToken(token)
	f := &authstore.File{Version: authstore.Version}
	if raw, err := os.ReadFile(storePath); err == nil {
		if f, err = authstore.Parse(raw); err != nil {
			return "", err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	for _, t := range f.Tokens {
		if t.Hash == hash {
			log.Info("admin token in use", "path", tokenPath)
			return storePath, nil
		}
	}
	f.Tokens = append(f.Tokens, authstore.Token{Hash: hash, User: "admin", Scopes: []string{"*"}})
	out, err := authstore.Marshal(f)
	if err != nil {
		return "", err
	}
	if err := writeSecretFile(storePath, string(out)); err != nil {
		return "", fmt.Errorf("write auth store: %w", err)
	}
	log.Info("admin token in use", "path", tokenPath)
	return storePath, nil
}

// writeSecretFile writes a 0600 file atomically.
func writeSecretFile(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
