package registry_test

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// These tests use unireg the way issue 9 promises a Go program can: built
// only through the public API, on the in-memory backend, with the host
// program's own users instead of the built-in token store, and driven by the
// real OCI conformance suite and the real npm client.

// account is one user of the host program's own user database.
type account struct {
	secret string
	// grants are "protocol:action" pairs, e.g. "oci:push" or "npm:read".
	grants []string
}

// accounts is both the Authenticator and the Authorizer: it knows its users
// by their secret (a password for Basic, a token for Bearer) and decides
// from its own grants, ignoring auth.Identity.Scopes.
type accounts map[string]account

func (a accounts) Authenticate(_ context.Context, c auth.Credentials) (*auth.Identity, error) {
	secret := c.Password
	if secret == "" {
		secret = c.Bearer
	}
	for name, acc := range a {
		if subtle.ConstantTimeCompare([]byte(secret), []byte(acc.secret)) == 1 && (c.Username == "" || c.Username == name) {
			return &auth.Identity{Subject: name}, nil
		}
	}
	return nil, auth.ErrInvalidCredentials
}

func (a accounts) Authorize(_ context.Context, id *auth.Identity, x auth.Access) bool {
	return slices.Contains(a[id.Subject].grants, x.Protocol+":"+x.Action)
}

var users = accounts{
	"ci":     {secret: "ci-secret-0123456789", grants: []string{"oci:pull", "oci:push", "oci:delete", "npm:read", "npm:write", "npm:delete"}},
	"reader": {secret: "reader-secret-0123456789", grants: []string{"oci:pull", "npm:read"}},
}

// libraryServer is a registry built through the public API, served over
// HTTP, recording the events it emits.
type libraryServer struct {
	url    string
	mu     sync.Mutex
	events []registry.Event
}

func startLibraryServer(t *testing.T) *libraryServer {
	t.Helper()
	s := &libraryServer{}
	reg, err := registry.New(context.Background(), registry.Config{
		Storage:       inmemory.New(),
		Authenticator: users,
		Authorizer:    users,
		// The conformance suite's sparse-manifest tests push image
		// manifests without their layers.
		OCI: registry.OCIConfig{Settings: oci.Settings{AllowSparse: true}},
		OnEvent: func(_ context.Context, e registry.Event) {
			s.mu.Lock()
			s.events = append(s.events, e)
			s.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(func() {
		srv.Close()
		reg.Close()
	})
	s.url = srv.URL
	return s
}

// writesBy returns the events of action, and the subjects that made them.
func (s *libraryServer) writesBy(action string) (events []registry.Event, subjects []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.Action != action {
			continue
		}
		events = append(events, e)
		subject := "<nil identity>"
		if e.Identity != nil {
			subject = e.Identity.Subject
		}
		if !slices.Contains(subjects, subject) {
			subjects = append(subjects, subject)
		}
	}
	return events, subjects
}

// conformanceTool finds bin/oci-conformance at the repository root.
func conformanceTool(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "bin", "oci-conformance"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skip("bin/oci-conformance is missing: run make conformance-tool (make test does)")
	}
	return p
}

// conformanceCount reads one of the suite's summary lines ("Pass....: 74").
func conformanceCount(log, label string) int {
	m := regexp.MustCompile(`(?m)^\s*` + label + `\.+:\s*(\d+)\s*$`).FindStringSubmatch(log)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestLibraryRegistryPassesOCIConformance(t *testing.T) {
	tool := conformanceTool(t)
	s := startLibraryServer(t)

	// Every toggle on, as hack/run-conformance.sh runs it against the binary.
	cmd := exec.Command(tool)
	cmd.Dir = t.TempDir() // the suite writes its reports into the working directory
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+strings.TrimPrefix(s.url, "http://"), "OCI_TLS=disabled", "OCI_VERSION=1.1",
		"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2", "OCI_RESULTS_DIR="+cmd.Dir,
		"OCI_API_BLOBS_UPLOAD_CANCEL=true", "OCI_API_MANIFESTS_TAG_PARAM=true", "OCI_DATA_SPARSE=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true", "OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_USERNAME=ci", "OCI_PASSWORD="+users["ci"].secret,
	)
	out, err := cmd.CombinedOutput()
	log := string(out)
	pass, fail, skip := conformanceCount(log, "Pass"), conformanceCount(log, "FAIL"), conformanceCount(log, "Skip")
	t.Logf("OCI conformance (library, in-memory storage, custom auth, every toggle on): pass=%d fail=%d skip=%d", pass, fail, skip)
	if err != nil || fail != 0 || skip != 0 || pass == 0 {
		t.Fatalf("conformance suite: %v, pass=%d fail=%d skip=%d\n%s", err, pass, fail, skip, failedTests(log))
	}

	for _, action := range []string{"blob.pushed", "manifest.pushed", "tag.moved"} {
		events, subjects := s.writesBy(action)
		if len(events) == 0 || !slices.Equal(subjects, []string{"ci"}) {
			t.Errorf("%s: %d events by %v, want some, all by ci", action, len(events), subjects)
		}
	}
	if events, _ := s.writesBy("manifest.pushed"); len(events) > 0 && !strings.HasPrefix(events[0].Repository, "conformance/") {
		t.Errorf("manifest.pushed for %q, want a conformance/ repository", events[0].Repository)
	}
}

// failedTests keeps the suite's failure lines, or its whole output when it
// failed before reporting any.
func failedTests(log string) string {
	var lines []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "failed test") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return log
	}
	return strings.Join(lines[:min(len(lines), 40)], "\n")
}

// npmUser is one machine running the npm CLI with a user's token.
type npmUser struct {
	t    *testing.T
	npm  string
	home string
	env  []string
}

func newNPMUser(t *testing.T, npm string, s *libraryServer, token string) *npmUser {
	t.Helper()
	home := t.TempDir()
	host := strings.TrimPrefix(s.url, "http://")
	npmrc := "registry=" + s.url + "/npm/\n//" + host + "/npm/:_authToken=" + token + "\n"
	if err := os.WriteFile(filepath.Join(home, ".npmrc"), []byte(npmrc), 0o600); err != nil {
		t.Fatal(err)
	}
	return &npmUser{t: t, npm: npm, home: home, env: append(os.Environ(),
		"HOME="+home, "npm_config_userconfig="+filepath.Join(home, ".npmrc"),
		"npm_config_cache="+filepath.Join(home, ".npm"), "npm_config_update_notifier=false",
		"npm_config_fund=false", "npm_config_audit=false")}
}

// dir creates a folder in the user's home holding files.
func (u *npmUser) dir(name string, files map[string]string) string {
	u.t.Helper()
	dir := filepath.Join(u.home, name)
	for rel, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(content), 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
	return dir
}

func (u *npmUser) npmIn(dir string, args ...string) (string, error) {
	c := exec.Command(u.npm, args...)
	c.Dir, c.Env = dir, u.env
	out, err := c.CombinedOutput()
	return string(out), err
}

func packageFiles(name, version, greeting string) map[string]string {
	manifest, _ := json.Marshal(map[string]string{"name": name, "version": version, "main": "index.js", "license": "MIT"})
	return map[string]string{"package.json": string(manifest), "index.js": fmt.Sprintf("module.exports = %q;\n", greeting)}
}

func TestLibraryRegistryServesTheNPMClient(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm (Node.js) is not installed")
	}
	s := startLibraryServer(t)

	ci := newNPMUser(t, npm, s, users["ci"].secret)
	if out, err := ci.npmIn(ci.dir("lib", packageFiles("@acme/greeting", "1.0.0", "hello from 1.0.0")), "publish"); err != nil {
		t.Fatalf("npm publish as ci: %v\n%s", err, out)
	}

	reader := newNPMUser(t, npm, s, users["reader"].secret)
	app := reader.dir("app", map[string]string{"package.json": `{"name":"app","version":"1.0.0","private":true}`})
	if out, err := reader.npmIn(app, "install", "@acme/greeting"); err != nil {
		t.Fatalf("npm install as reader: %v\n%s", err, out)
	}
	installed, err := os.ReadFile(filepath.Join(app, "node_modules", "@acme", "greeting", "index.js"))
	if err != nil || !strings.Contains(string(installed), "hello from 1.0.0") {
		t.Fatalf("installed index.js: %q, %v", installed, err)
	}

	out, err := reader.npmIn(reader.dir("lib", packageFiles("@acme/greeting", "1.0.1", "hello from the reader")), "publish")
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("npm publish as reader, who may only read: %v, want a 403 refusal\n%s", err, out)
	}
	stranger := newNPMUser(t, npm, s, "not-a-user-of-this-program")
	if out, err := stranger.npmIn(stranger.dir("app", map[string]string{"package.json": `{"name":"app","version":"1.0.0","private":true}`}), "install", "@acme/greeting"); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("npm install with an unknown token: %v, want a 401 refusal\n%s", err, out)
	}

	events, subjects := s.writesBy("package.published")
	if len(events) != 1 || !slices.Equal(subjects, []string{"ci"}) || events[0].Repository != "@acme/greeting" || events[0].Version != "1.0.0" || events[0].Protocol != "npm" {
		t.Fatalf("package.published events %+v by %v, want one for @acme/greeting@1.0.0 by ci", events, subjects)
	}
}
