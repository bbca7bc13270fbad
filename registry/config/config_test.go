package config

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/npm"
	"github.com/unireg/unireg/registry/storage/s3"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestPrecedenceIsFlagThenEnvThenFileThenDefault(t *testing.T) {
	file := filepath.Join(t.TempDir(), "unireg.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:7000\ndata-dir: /from/file\ntoken-ttl: 2m\nanonymous:\n  - oci:repository:*:pull\n  - npm:package:*:read\nmax-manifest-size: 1048576\n"), 0o600)
	o, err := Load([]string{"--config", file, "--listen", "127.0.0.1:9000"},
		env(map[string]string{"UNIREG_DATA_DIR": "/from/env", "UNIREG_LISTEN": "127.0.0.1:8000"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:9000" {
		t.Errorf("listen = %s, want the flag's", o.Listen)
	}
	if o.DataDir != "/from/env" {
		t.Errorf("data-dir = %s, want the environment's", o.DataDir)
	}
	if o.Registry.TokenTTL != 2*time.Minute || o.Registry.OCI.MaxManifestSize != 1<<20 {
		t.Errorf("file values not applied: ttl %s, max manifest %d", o.Registry.TokenTTL, o.Registry.OCI.MaxManifestSize)
	}
	if got := strings.Join(o.AnonymousScopes(), " "); got != "oci:repository:*:pull npm:package:*:read" {
		t.Errorf("anonymous from a YAML list = %q", got)
	}
	if o.Registry.TokenService != "unireg" || o.Registry.OCI.UploadMaxAge != 24*time.Hour {
		t.Errorf("defaults lost: service %q, upload age %s", o.Registry.TokenService, o.Registry.OCI.UploadMaxAge)
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("public-url: https://r.example.com\n"), 0o600)
	o, err := Load(nil, env(map[string]string{"UNIREG_CONFIG": file}), io.Discard)
	if err != nil || o.Registry.PublicURL != "https://r.example.com" {
		t.Fatalf("UNIREG_CONFIG not read: %+v, %v", o, err)
	}
}

func TestLoadRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("lisen: :5000\n"), 0o600)
	badValue := filepath.Join(dir, "bad.yaml")
	os.WriteFile(badValue, []byte("token-ttl: soon\n"), 0o600)
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown file key", []string{"--config", unknown}, nil, `unknown setting "lisen"`},
		{"bad file value", []string{"--config", badValue}, nil, "token-ttl"},
		{"bad env value", nil, map[string]string{"UNIREG_TOKEN_TTL": "soon"}, "UNIREG_TOKEN_TTL"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, nil, "config file"},
		{"stray argument", []string{"serve"}, nil, "unexpected argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.args, env(c.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestBuildRejectsInvalidAnonymousScope(t *testing.T) {
	o, _ := Load([]string{"--data-dir", t.TempDir(), "--anonymous", "oci:repo:*:pull"}, env(nil), io.Discard)
	b, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.NewRegistry(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "--anonymous: ") {
		t.Fatalf("error %v", err)
	}
}

func TestBuildBootstrapsAdminTokenOnce(t *testing.T) {
	dir := t.TempDir()
	o, _ := Load([]string{"--data-dir", dir}, env(nil), io.Discard)
	b, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	raw, _ := os.ReadFile(filepath.Join(dir, AdminTokenFileName))
	token := strings.TrimSpace(string(raw))
	id, err := b.TokenStore.Authenticate(context.Background(), auth.Credentials{Password: token})
	if err != nil || !id.Scopes.Allows(auth.Access{Protocol: "npm", Type: "package", Name: "@x/y", Action: "delete"}) {
		t.Fatalf("admin token: %+v, %v", id, err)
	}
	store, _ := os.ReadFile(filepath.Join(dir, AuthStoreFileName))
	if strings.Contains(string(store), token) {
		t.Fatal("the auth store holds the raw token, not its hash")
	}
	b2, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if b2.TokenStore.Len() != 1 {
		t.Fatalf("second start: %d tokens, want the same single admin token", b2.TokenStore.Len())
	}
}

func TestJWTKeyFileMustBeLongEnough(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	os.WriteFile(key, []byte("short\n"), 0o600)
	o, _ := Load([]string{"--data-dir", dir, "--jwt-key-file", key}, env(nil), io.Discard)
	if _, err := o.Build(context.Background(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("short key accepted: %v", err)
	}
}

func TestS3FlagsSelectTheS3BackendLazily(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "access"), []byte("AKIAFROMFILE\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "secret"), []byte("secret-from-file\n"), 0o600)
	// Nothing listens on port 9 of loopback: the server must start anyway,
	// with the problem reported by readiness (Ping).
	o, err := Load([]string{"--data-dir", dir, "--s3-bucket", "reg", "--s3-endpoint", "http://127.0.0.1:9",
		"--s3-access-key-file", filepath.Join(dir, "access"), "--s3-secret-key-file", filepath.Join(dir, "secret")}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Build with an unreachable S3 endpoint: %v", err)
	}
	defer b.Close()
	if _, ok := b.Config.Storage.(*s3.Driver); !ok {
		t.Fatalf("storage is %T, want the S3 driver", b.Config.Storage)
	}
	err = b.Config.Storage.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:9") || strings.Contains(err.Error(), "secret-from-file") {
		t.Fatalf("Ping = %v; want an error naming the endpoint and no secret", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StorageDirName)); err == nil {
		t.Fatal("DATA_DIR/storage was created although S3 is the storage")
	}

	o2, _ := Load([]string{"--data-dir", dir, "--s3-bucket", "reg"}, env(nil), io.Discard)
	if _, err := o2.Build(context.Background(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--s3-endpoint") {
		t.Fatalf("--s3-bucket without --s3-endpoint: %v", err)
	}
}

func TestAWSCredentialsComeFromTheEnvironment(t *testing.T) {
	o, err := Load(nil, env(map[string]string{"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "ST"}), io.Discard)
	if err != nil || o.S3AccessKey != "AK" || o.S3SecretKey != "SK" || o.S3SessionToken != "ST" {
		t.Fatalf("credentials from AWS_*: %+v, %v", o, err)
	}
}

// Every switch a Go user has in registry.Config has a flag too, and each
// flag reaches its field: by default everything is on.
func TestFeatureFlagsReachTheConfig(t *testing.T) {
	build := func(t *testing.T, args ...string) registry.Config {
		t.Helper()
		o, err := Load(append([]string{"--data-dir", t.TempDir()}, args...), env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		b, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b.Config
	}
	def := build(t)
	if def.OCI.Prefix != "/v2" || def.NPM.DisablePublish || def.NPM.DisableUnpublish || def.NPM.DisableSearch || def.NPM.DisableTokenAPI {
		t.Fatalf("defaults: OCI %+v, NPM %+v", def.OCI, def.NPM)
	}
	got := build(t, "--oci-prefix", "/registry/v2", "--npm-publish=false", "--npm-unpublish=false", "--npm-search=false", "--npm-token-api=false")
	want := registry.NPMConfig{Settings: npm.Settings{Prefix: "/npm", MaxDocumentSize: def.NPM.MaxDocumentSize, MaxTarballSize: def.NPM.MaxTarballSize,
		DisablePublish: true, DisableUnpublish: true, DisableSearch: true, DisableTokenAPI: true, UpstreamMaxAge: def.NPM.UpstreamMaxAge}}
	want.Signing = got.NPM.Signing // generated in the data dir (npmsigning_test.go)
	if got.OCI.Prefix != "/registry/v2" || !reflect.DeepEqual(got.NPM, want) {
		t.Fatalf("flags: OCI prefix %q, NPM %+v", got.OCI.Prefix, got.NPM)
	}
}

// A flag that names what is on sets the library's Disable field, from every
// layer; left alone, the field keeps its zero value (on).
func TestEnableFlagsSetTheLibrarysDisableFields(t *testing.T) {
	file := writeConfig(t, "oci-delete: false\nnpm-publish: true\n")
	o, err := Load([]string{"--config", file, "--oci-referrers=false", "--npm-enabled"},
		env(map[string]string{"UNIREG_NPM_SEARCH": "false", "UNIREG_NPM_PUBLISH": "false"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	oc, nc := o.Registry.OCI, o.Registry.NPM
	if !oc.DisableDelete || !oc.DisableReferrers || oc.Disabled || nc.Disabled || !nc.DisableSearch || !nc.DisablePublish || nc.DisableUnpublish || nc.DisableTokenAPI {
		t.Fatalf("OCI %+v, NPM %+v", oc, nc)
	}
	if _, err := Load([]string{"--oci-delete=maybe"}, env(nil), io.Discard); err == nil {
		t.Fatal("--oci-delete=maybe accepted")
	}
}

func TestOCIUpstreamFlagsAndCredentials(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hub")
	os.WriteFile(file, []byte("bob:s3cret,with=comma\n"), 0o600)
	secret := filepath.Join(dir, "ghcr")
	os.Mkdir(secret, 0o700)
	os.WriteFile(filepath.Join(secret, "username"), []byte("carol"), 0o600)
	os.WriteFile(filepath.Join(secret, "password"), []byte("pw\n"), 0o600)
	o, err := Load([]string{"--data-dir", dir,
		"--oci-upstream", "docker.io=https://registry-1.docker.io", "--oci-upstream", "ghcr.io=https://ghcr.io",
		"--oci-upstream-credentials", "docker.io=" + file, "--oci-upstream-credentials", "ghcr.io=" + secret,
		"--anonymous", "oci:repository:docker.io/*:pull"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ups := b.Config.OCI.Upstreams
	if len(ups) != 2 || ups[0].Name != "docker.io" || ups[0].URL != "https://registry-1.docker.io" || ups[1].Name != "ghcr.io" {
		t.Fatalf("upstreams %+v", ups)
	}
	if u, p, err := ups[0].Credentials(); u != "bob" || p != "s3cret,with=comma" || err != nil {
		t.Fatalf("file credentials %q %q %v", u, p, err)
	}
	if u, p, err := ups[1].Credentials(); u != "carol" || p != "pw" || err != nil {
		t.Fatalf("directory credentials %q %q %v", u, p, err)
	}
	if fi, err := os.Stat(b.Config.Cache.SpoolDir); err != nil || !fi.IsDir() {
		t.Fatalf("spool dir %q: %v", b.Config.Cache.SpoolDir, err)
	}
	if o.Registry.OCI.Upstreams[0].Credentials != nil {
		t.Fatal("Build changed the options' upstreams")
	}

	// Credentials for an upstream that is not configured, and a bad file.
	o, _ = Load([]string{"--data-dir", dir, "--oci-upstream-credentials", "quay.io=" + file}, env(nil), io.Discard)
	if _, err := o.Build(context.Background(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "quay.io") {
		t.Fatalf("credentials of an unknown upstream: %v", err)
	}
	os.WriteFile(file, []byte("no-colon-here"), 0o600)
	o, _ = Load([]string{"--data-dir", dir, "--oci-upstream", "docker.io=https://x", "--oci-upstream-credentials", "docker.io=" + file}, env(nil), io.Discard)
	_, err = o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err == nil || strings.Contains(err.Error(), "no-colon-here") {
		t.Fatalf("bad credentials file: %v (must not quote the file)", err)
	}
	// A bad URL is refused by name, under its flag.
	o, _ = Load([]string{"--data-dir", t.TempDir(), "--oci-upstream", "docker.io=ftp://x"}, env(nil), io.Discard)
	b, err = o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.NewRegistry(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "--oci-upstream: ") {
		t.Fatalf("bad upstream URL: %v", err)
	}
}

func TestNPMUpstreamFlags(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("npm_abc\n"), 0o600)
	o, err := Load([]string{"--data-dir", dir, "--npm-upstream", "https://registry.npmjs.org/",
		"--npm-upstream-credentials", tok, "--npm-upstream-max-age", "5m",
		"--npm-local-scope", "@acme", "--npm-local-scope", "@corp"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	npmc := b.Config.NPM
	if npmc.Upstream.URL != "https://registry.npmjs.org/" || npmc.UpstreamMaxAge != 5*time.Minute || strings.Join(npmc.LocalScopes, ",") != "@acme,@corp" {
		t.Fatalf("npm settings %+v", npmc)
	}
	if got, err := npmc.Upstream.Token(); got != "npm_abc" || err != nil {
		t.Fatalf("token %q %v", got, err)
	}
	if _, err := b.NewRegistry(context.Background()); err != nil {
		t.Fatal(err)
	}
	o, _ = Load([]string{"--data-dir", t.TempDir(), "--npm-upstream", "https://x", "--npm-local-scope", "acme"}, env(nil), io.Discard)
	b2, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if _, err := b2.NewRegistry(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "--npm-upstream: ") {
		t.Fatalf("a scope without @: %v", err)
	}
}
