// Package config turns command-line flags, UNIREG_* environment variables and
// a YAML file into a registry.Config. Precedence: flag, then environment, then
// file, then default. The file's keys are the flag names (docs/config.md).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/npm"
	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage/s3"
)

// DefaultPort is the port --listen binds by default (":5000").
const DefaultPort = 5000

// Options are the settings of cmd/registry.
type Options struct {
	// Registry holds the library's settings: their flags set its fields
	// directly, with the library's defaults (registry.Default*, oci.Default*,
	// npm.Default*, limit.Default*). Build completes a copy with what needs
	// I/O: storage, JWT keys, the auth store, logger and metrics. A program
	// may set more of it (Authorizer, OnEvent) before Build.
	Registry registry.Config

	// UpstreamCredentials name the credential file of each upstream
	// (--oci-upstream-credentials); Build attaches them.
	UpstreamCredentials []upstreamCredentials
	// NPMUpstreamCredentials is the token file of --npm-upstream.
	NPMUpstreamCredentials string

	ConfigFile      string
	Listen          string
	DataDir         string
	AuthStore       string
	AuthStoreSecret string
	JWTKeyFile      string
	// NPMSigningKeyFile is the PEM file of the npm registry's signing keys
	// (npm.ParseSigningKeys); empty: DATA_DIR/npm-signing-key.pem.
	NPMSigningKeyFile string

	S3Endpoint           string
	S3Bucket             string
	S3Region             string
	S3Prefix             string
	S3VirtualHost        bool
	S3InsecureSkipVerify bool
	S3AccessKeyFile      string
	S3SecretKeyFile      string
	S3PartSize           uint64
	// S3AccessKey, S3SecretKey and S3SessionToken come from the standard
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
	// variables (never from flags, which other users of the machine see).
	S3AccessKey, S3SecretKey, S3SessionToken string

	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
	// PprofListen, when set, serves net/http/pprof on this address (off by
	// default: profiles reveal internals; bind it to loopback).
	PprofListen       string
	ReadHeaderTimeout time.Duration
	MaxHeaderBytes    int

	// TLSCertFile and TLSKeyFile, both or neither, make the server serve
	// HTTPS with that pair, read again when the files change
	// (cmd/registry/tls.go).
	TLSCertFile, TLSKeyFile string
}

// EnvName is the environment variable of a flag: UNIREG_ and the flag name in
// upper case with dashes as underscores.
func EnvName(flagName string) string {
	return "UNIREG_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (o *Options) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("registry", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.ConfigFile, "config", "", "YAML file with settings (keys are the flag names)")
	fs.StringVar(&o.Listen, "listen", fmt.Sprintf(":%d", DefaultPort), "address to listen on")
	fs.StringVar(&o.DataDir, "data-dir", "./data", "directory for content (DATA_DIR/storage) and local state (admin token, JWT key)")
	fs.StringVar(&o.AuthStore, "auth-store", "", "auth-store file listing tokens by hash (docs/auth-store.md); reloaded on change. Default: DATA_DIR/auth-store.yaml with a generated admin token, unless --anonymous is set")
	fs.StringVar(&o.AuthStoreSecret, "auth-store-secret", "", "NAMESPACE/NAME of a Kubernetes Secret holding the auth store (key auth-store.yaml), watched through the API so changes apply within seconds; needs get, list and watch on it")
	fs.Var(commaList(&o.Registry.AnonymousScopes, stringValue, nil), "anonymous", "`scopes` granted to unauthenticated requests, e.g. 'oci:repository:*:pull'; comma-separated, or the flag repeated (default none)")
	fs.StringVar(&o.JWTKeyFile, "jwt-key-file", "", "file holding the HS256 key of the token flow (at least 32 bytes). Default: DATA_DIR/jwt.key, generated when absent")
	fs.StringVar(&o.Registry.TokenService, "token-service", registry.DefaultTokenService, "service name of the Docker token flow (the JWT audience)")
	fs.DurationVar(&o.Registry.TokenTTL, "token-ttl", registry.DefaultTokenTTL, "lifetime of issued JWTs")
	fs.StringVar(&o.Registry.PublicURL, "public-url", "", "external base URL, e.g. https://registry.example.com (default: from each request's Host)")
	fs.Var(trustedProxies(&o.Registry.TrustedProxies), "trusted-proxies", trustedProxiesUsage())
	fs.Var(negated{&o.Registry.OCI.Disabled}, "oci-enabled", "serve the OCI Distribution API under --oci-prefix")
	fs.StringVar(&o.Registry.OCI.Prefix, "oci-prefix", oci.DefaultPrefix, "path prefix of the OCI API; OCI clients need /v2 at the host root, so change it only behind a proxy that rewrites paths")
	fs.Var(negated{&o.Registry.OCI.DisableDelete}, "oci-delete", "allow deleting manifests, tags and blobs")
	fs.Var(negated{&o.Registry.OCI.DisableReferrers}, "oci-referrers", "serve the OCI referrers API")
	fs.BoolVar(&o.Registry.OCI.AllowSparse, "oci-allow-sparse", false, "accept image manifests whose layers are not in the repository (the config blob must be)")
	fs.Int64Var(&o.Registry.OCI.MaxManifestSize, "max-manifest-size", oci.DefaultMaxManifestSize, "largest manifest accepted, in bytes")
	fs.Int64Var(&o.Registry.OCI.MaxBlobSize, "max-blob-size", 0, "largest blob accepted, in bytes (413 SIZE_INVALID above it, and the upload is removed); 0: no bound")
	fs.Var(negated{&o.Registry.NPM.Disabled}, "npm-enabled", "serve the npm registry under --npm-prefix")
	fs.StringVar(&o.Registry.NPM.Prefix, "npm-prefix", npm.DefaultPrefix, "path prefix of the npm registry (clients use http://HOST/npm/ as registry URL)")
	fs.Var(negated{&o.Registry.NPM.DisablePublish}, "npm-publish", "accept npm publish (else an npm error)")
	fs.Var(negated{&o.Registry.NPM.DisableUnpublish}, "npm-unpublish", "accept npm unpublish (else an npm error)")
	fs.Var(negated{&o.Registry.NPM.DisableSearch}, "npm-search", "serve npm search (else an npm error)")
	fs.Var(negated{&o.Registry.NPM.DisableTokenAPI}, "npm-token-api", "serve npm token create/list/revoke and let npm logout revoke its token")
	fs.IntVar(&o.Registry.NPM.MaxDocumentSize, "npm-max-document-size", npm.DefaultMaxDocumentSize, "largest npm publish document without its tarball, in bytes")
	fs.Int64Var(&o.Registry.NPM.MaxTarballSize, "npm-max-tarball-size", npm.DefaultMaxTarballSize, "largest npm tarball, in bytes")
	fs.DurationVar(&o.Registry.OCI.UploadMaxAge, "upload-max-age", oci.DefaultUploadMaxAge, "age after which an untouched upload session is purged")
	fs.DurationVar(&o.Registry.OCI.UploadPurgeInterval, "upload-purge-interval", registry.DefaultUploadPurgeInterval, "how often abandoned uploads are purged")
	fs.StringVar(&o.S3Bucket, "s3-bucket", "", "store content in this S3 bucket instead of DATA_DIR/storage (credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or the key files)")
	fs.StringVar(&o.S3Endpoint, "s3-endpoint", "", "S3 API URL, http:// or https:// (e.g. http://minio:9000); required with --s3-bucket")
	fs.StringVar(&o.S3Region, "s3-region", s3.DefaultRegion, "S3 region")
	fs.StringVar(&o.S3Prefix, "s3-prefix", "", "key prefix inside the bucket, so several registries can share one")
	fs.BoolVar(&o.S3VirtualHost, "s3-virtual-host", false, "address the bucket as BUCKET.host instead of path-style host/BUCKET")
	fs.BoolVar(&o.S3InsecureSkipVerify, "s3-insecure-skip-verify", false, "accept any TLS certificate from the S3 endpoint")
	fs.StringVar(&o.S3AccessKeyFile, "s3-access-key-file", "", "file holding the S3 access key (e.g. a mounted Secret)")
	fs.StringVar(&o.S3SecretKeyFile, "s3-secret-key-file", "", "file holding the S3 secret key")
	fs.Uint64Var(&o.S3PartSize, "s3-part-size", s3.DefaultPartSize, "multipart part size in bytes (at least 5 MiB); each streaming upload buffers one part")
	fs.BoolVar(&o.Registry.OCI.RedirectBlobs, "s3-redirect", false, "answer blob downloads with a 307 to a presigned S3 URL (clients must reach the S3 endpoint)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "auto", "json, text, or auto (JSON unless stderr is a terminal)")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	fs.StringVar(&o.PprofListen, "pprof-listen", "", "serve Go profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off when empty")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", "", "`PATH` of the PEM certificate chain to serve HTTPS with (with --tls-key-file); read again when it changes, e.g. a mounted kubernetes.io/tls Secret")
	fs.StringVar(&o.TLSKeyFile, "tls-key-file", "", "`PATH` of the PEM private key of --tls-cert-file")
	fs.DurationVar(&o.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time a client has to send its request headers")
	fs.IntVar(&o.MaxHeaderBytes, "max-header-bytes", 64<<10, "largest request line and headers, in bytes; larger requests get 431")
	fs.DurationVar(&o.Registry.Limits.BodyRate.Idle, "body-idle-timeout", limit.DefaultIdle, "longest pause in a request body; a body that stops longer gets 408 and nothing of it is kept")
	fs.Int64Var(&o.Registry.Limits.BodyRate.MinBytesPerSecond, "body-min-rate", limit.DefaultMinBytesPerSecond, "slowest average rate of a request body after its first minute, in bytes per second (408 below it); negative: no minimum")
	fs.DurationVar(&o.Registry.Limits.ResponseRate.Idle, "response-idle-timeout", limit.DefaultIdle, "least time a client has to take each part of a response (Idle x --response-min-rate bytes, 64 KiB to 4 MiB); a client that takes longer is disconnected")
	fs.Int64Var(&o.Registry.Limits.ResponseRate.MinBytesPerSecond, "response-min-rate", limit.DefaultMinBytesPerSecond, "slowest rate a client may take a response at, in bytes per second (disconnected below it); negative: no minimum, only --response-idle-timeout per 64 KiB")
	fs.IntVar(&o.Registry.Limits.UploadsPerIdentity, "uploads-per-identity", registry.DefaultUploadsPerIdentity, "blob uploads and npm publishes one identity may stream at once (429 beyond); negative: no bound")
	fs.Var(repeatable(&o.Registry.OCI.Upstreams, parseOCIUpstream, formatOCIUpstream), "oci-upstream", "`NAME=URL` of a registry served through the pull-through cache under NAME/, e.g. docker.io=https://registry-1.docker.io (repeatable; docs/cache.md)")
	fs.Var(repeatable(&o.UpstreamCredentials, parseUpstreamCredentials, formatUpstreamCredentials), "oci-upstream-credentials", "`NAME=PATH` of a file holding user:password, or a directory holding files username and password, to log in to upstream NAME with (repeatable)")
	fs.DurationVar(&o.Registry.OCI.UpstreamTagTTL, "oci-upstream-tag-ttl", oci.DefaultUpstreamTagTTL, "how long a cached tag is served before the upstream is asked whether it moved")
	fs.StringVar(&o.Registry.NPM.Upstream.URL, "npm-upstream", "", "`URL` of the npm registry packages not held here are served from, cached, e.g. https://registry.npmjs.org (docs/cache.md)")
	fs.StringVar(&o.NPMUpstreamCredentials, "npm-upstream-credentials", "", "`PATH` of a file holding the token to send to --npm-upstream")
	fs.DurationVar(&o.Registry.NPM.UpstreamMaxAge, "npm-upstream-max-age", npm.DefaultUpstreamMaxAge, "how long a cached upstream npm document is served without asking the upstream")
	fs.StringVar(&o.NPMSigningKeyFile, "npm-signing-key-file", "", "`PATH` of the PEM file whose first block is the ECDSA P-256 private key that signs npm versions (PKCS #8 or SEC 1); previous public keys follow, each with an \"Expires: RFC3339\" header. Default: DATA_DIR/npm-signing-key.pem, generated when absent")
	fs.BoolVar(&o.Registry.NPM.AllowCaseVariants, "npm-allow-case-variants", false, "let a new npm package take a name that differs from an existing one only by case (jsonstream beside JSONStream), for migrations of trees that hold both")
	fs.Var(repeatable(&o.Registry.NPM.LocalScopes, stringValue, nil), "npm-local-scope", "`@scope` whose packages are never looked up at --npm-upstream (repeatable)")
	fs.StringVar(&o.Registry.Cache.SpoolDir, "cache-spool-dir", "", "where blobs being downloaded from upstreams are spooled (default DATA_DIR/cache-spool)")
	fs.Int64Var(&o.Registry.Cache.SpoolBytes, "cache-spool-bytes", registry.DefaultCacheSpoolBytes, "bytes the cache may be downloading at once (a cold pull beyond it gets 503 with Retry-After)")
	o.Registry.Cache.MemoryBytes = registry.DefaultCacheMemoryBytes
	fs.Var(byteCount{&o.Registry.Cache.MemoryBytes}, "cache-memory-bytes", "`BYTES` of memory the cache's downloads together may hold ahead of their spool files, beyond 16 MiB each, so that a cold pull runs at the upstream's pace rather than the disk's; 0: only the 16 MiB each")
	o.Registry.GC.Interval, o.Registry.GC.Grace, o.Registry.Cache.MaxIdle = gc.DefaultInterval, gc.DefaultGrace, registry.DefaultCacheMaxIdle
	fs.Var(days{dst: &o.Registry.GC.Interval}, "gc-interval", "how often the garbage collector runs inside the server; 0: never (run `registry gc` instead; docs/gc.md)")
	fs.Var(days{dst: &o.Registry.GC.Grace, positive: true}, "gc-grace", "blobs, tarballs and staging objects uploaded, linked or mounted within this stay, referenced or not (positive)")
	fs.DurationVar(&o.Registry.GC.LeaseTTL, "gc-lease-ttl", gc.DefaultLeaseTTL, "how long a collecting replica's lease lasts unrenewed (renewed every third of it): after a replica dies while collecting, the others wait that long")
	fs.Var(repeatable(&o.Registry.OCI.Retention, parseRetention, formatRetention), "retention", "`PATTERN=RULES`: which tags and untagged manifests the collector deletes in repositories matching PATTERN; RULES: keep-last=N, keep-tags=REGEX, untagged-after=DURATION, comma-separated (repeatable; docs/gc.md)")
	fs.Var(days{dst: &o.Registry.Cache.MaxIdle}, "cache-max-idle", "cached upstream content not pulled for this long is evicted by the collector; 0: never")
	fs.Var(byteCount{&o.Registry.Cache.MaxBytes}, "cache-max-bytes", "`BYTES` of cached upstream content (both protocols) beyond which the collector evicts the least recently pulled; 0: no bound")
	fs.IntVar(&o.Registry.Limits.CacheFillsPerIdentity, "cache-fills-per-identity", registry.DefaultCacheFillsPerIdentity, "downloads from upstreams one identity may start at once (429 beyond); negative: no bound")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: registry [flags]\n\nunireg: an OCI Distribution registry (and npm registry).\n"+
			"Every flag can also be set as environment variable UNIREG_<FLAG> (e.g. UNIREG_DATA_DIR)\n"+
			"or as a key of the --config YAML file (e.g. data-dir: /var/lib/unireg).\n"+
			"Precedence: flag, environment, file, default.\n"+
			"A list setting takes the flag repeated, one value per line of its variable, or a YAML list;\n"+
			"a comma list (--anonymous, --trusted-proxies) also splits each value on commas.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// ErrHelp is returned by Load when -h or --help was asked for.
var ErrHelp = flag.ErrHelp

// Load parses args (without the program name), then fills what they left
// unset from the environment and the config file.
func Load(args []string, getenv func(string) string, usageOut io.Writer) (*Options, error) {
	o := &Options{}
	if err := resolve(o.flagSet(usageOut), args, getenv); err != nil {
		return nil, err
	}
	if o.Registry.Cache.MemoryBytes == 0 {
		o.Registry.Cache.MemoryBytes = -1 // the library's zero is its default
	}
	o.S3AccessKey, o.S3SecretKey, o.S3SessionToken = getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN")
	return o, nil
}

// resolve sets the flags of fs from args, then those still unset from the
// environment, then from the file of its "config" flag.
func resolve(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if err := setFromEnv(f, v); err != nil {
				envErr = fmt.Errorf("%s: %w", EnvName(f.Name), err)
			}
			set[f.Name] = true
		}
	})
	if envErr != nil {
		return envErr
	}
	if file := fs.Lookup("config").Value.String(); file != "" {
		return applyFile(fs, file, set)
	}
	return nil
}

// setFromEnv sets a flag from its variable: a list takes one value per line.
func setFromEnv(f *flag.Flag, v string) error {
	if l, ok := f.Value.(listFlag); ok {
		return l.setList(envValues(v))
	}
	return f.Value.Set(v)
}

// applyFile sets every flag not set yet from the YAML file.
func applyFile(fs *flag.FlagSet, path string, set map[string]bool) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for key, v := range values {
		f := fs.Lookup(key)
		if f == nil || key == "config" {
			return fmt.Errorf("config file %s: unknown setting %q (keys are the flag names, see registry --help)", path, key)
		}
		if set[key] {
			continue
		}
		if err := setFromFile(f, v); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, key, err)
		}
	}
	return nil
}

// setFromFile sets a flag from its YAML value: a list flag takes a YAML
// list element by element (or a scalar as one value); any other flag takes
// a scalar.
func setFromFile(f *flag.Flag, v any) error {
	elems, isList := v.([]any)
	l, listValued := f.Value.(listFlag)
	switch {
	case listValued && isList:
		values := make([]string, len(elems))
		for i, e := range elems {
			if _, nested := e.([]any); nested {
				return errors.New("a list element is itself a list")
			}
			values[i] = yamlScalar(e)
		}
		return l.setList(values)
	case listValued:
		return l.setList([]string{yamlScalar(v)})
	case isList:
		return errNotAList
	}
	return f.Value.Set(yamlScalar(v))
}

// yamlScalar renders a YAML scalar as flag text.
func yamlScalar(v any) string {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d", int64(x))
		}
		return fmt.Sprint(x)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// AnonymousScopes returns the --anonymous scopes (Registry.AnonymousScopes).
func (o *Options) AnonymousScopes() []string { return o.Registry.AnonymousScopes }

var errNoDataDir = errors.New("--data-dir is empty")
