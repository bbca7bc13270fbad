package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The npm client suite: the real npm, pnpm, yarn classic and yarn berry
// against the real server, configured the way their users configure them.
// The clients other than npm come from tools/npm-clients
// (hack/install-npm-clients.sh, which `make test` runs).

func npmClient(t *testing.T, name string) []string {
	t.Helper()
	c, err := findNPMClient(name)
	if err != nil {
		t.Skip(err)
	}
	return c
}

// findNPMClient returns the command line that runs a client, or why it
// cannot be run here.
func findNPMClient(name string) ([]string, error) {
	if name == "npm" {
		p, err := exec.LookPath("npm")
		if err != nil {
			return nil, fmt.Errorf("npm (Node.js) is not installed")
		}
		return []string{p}, nil
	}
	rel := map[string]string{
		"pnpm":       "pnpm/bin/pnpm.cjs",
		"yarn":       "yarn/bin/yarn.js",
		"yarn-berry": "@yarnpkg/cli-dist/bin/yarn.js",
	}[name]
	p, _ := filepath.Abs(filepath.Join("..", "..", "tools", "npm-clients", "node_modules", rel))
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("%s not installed: run hack/install-npm-clients.sh (make test does)", name)
	}
	return []string{"node", p}, nil
}

// npmWorld is one user's machine: a HOME with the client configuration and
// project folders inside it.
type npmWorld struct {
	t    *testing.T
	s    *server
	home string
	env  []string
}

func newNPMWorld(t *testing.T, s *server, token string) *npmWorld {
	t.Helper()
	home := t.TempDir()
	// CI=true (as CI sets it) makes yarn berry refuse to write lockfiles;
	// each world sets what it needs instead.
	var inherited []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CI=") {
			inherited = append(inherited, kv)
		}
	}
	w := &npmWorld{t: t, s: s, home: home, env: append(inherited,
		"HOME="+home, "npm_config_cache="+filepath.Join(home, ".npm"), "npm_config_update_notifier=false",
		"npm_config_fund=false", "YARN_ENABLE_TELEMETRY=0", "YARN_ENABLE_GLOBAL_CACHE=false",
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "XDG_DATA_HOME="+filepath.Join(home, ".local"),
		"COREPACK_ENABLE_STRICT=0", "YARN_ENABLE_IMMUTABLE_INSTALLS=false")}
	host := strings.TrimPrefix(s.url, "http://")
	npmrc := "registry=" + s.url + "/npm/\n"
	if token != "" {
		npmrc += "//" + host + "/npm/:_authToken=" + token + "\n"
	}
	if token != "" {
		// yarn classic sends credentials on reads only with always-auth.
		npmrc += "//" + host + "/npm/:always-auth=true\n"
	}
	w.write(".npmrc", npmrc)
	// yarn classic takes its own registry (audit, and more) from .yarnrc.
	w.write(".yarnrc", fmt.Sprintf("registry %q\n", s.url+"/npm/"))
	yarnrc := fmt.Sprintf("npmRegistryServer: %q\nunsafeHttpWhitelist:\n  - %q\nnodeLinker: node-modules\nenableTelemetry: false\nenableGlobalCache: false\nnpmMinimalAgeGate: 0\n", s.url+"/npm", strings.Split(host, ":")[0])
	if token != "" {
		yarnrc += fmt.Sprintf("npmAuthToken: %q\nnpmAlwaysAuth: true\n", token)
	}
	w.write(".yarnrc.yml", yarnrc)
	return w
}

func (w *npmWorld) write(rel, content string) {
	w.t.Helper()
	p := filepath.Join(w.home, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// pkg writes a publishable package into dir and returns its path.
func (w *npmWorld) pkg(dir, name, version string, extra map[string]any) string {
	w.t.Helper()
	m := map[string]any{"name": name, "version": version, "main": "index.js", "description": "test package " + name, "license": "MIT"}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	w.write(filepath.Join(dir, "package.json"), string(b))
	w.write(filepath.Join(dir, "index.js"), fmt.Sprintf("module.exports = %q;\n", name+"@"+version))
	return filepath.Join(w.home, dir)
}

func (w *npmWorld) cmd(dir string, client []string, args ...string) *exec.Cmd {
	all := append(append([]string{}, client[1:]...), args...)
	c := exec.Command(client[0], all...)
	c.Dir = dir
	c.Env = w.env
	return c
}

// run runs a client, fails the test when it fails, and returns its standard
// output (warnings on standard error do not disturb the checks).
func (w *npmWorld) run(dir string, client []string, args ...string) string {
	w.t.Helper()
	c := w.cmd(dir, client, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		w.t.Fatalf("%s %s (in %s): %v\n%s%s\nserver log tail:\n%s", filepath.Base(client[len(client)-1]), strings.Join(args, " "), dir, err, out, stderr.String(), tail(w.s.logs.String(), 15))
	}
	return string(out)
}

// fail runs a client that must fail, and returns its output.
func (w *npmWorld) fail(dir string, client []string, args ...string) string {
	w.t.Helper()
	out, err := w.cmd(dir, client, args...).CombinedOutput()
	if err == nil {
		w.t.Fatalf("%s %s succeeded, want a failure:\n%s", filepath.Base(client[len(client)-1]), strings.Join(args, " "), out)
	}
	return string(out)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (w *npmWorld) project(dir string) string {
	w.t.Helper()
	w.write(filepath.Join(dir, "package.json"), `{"name":"consumer","version":"1.0.0","private":true}`)
	return filepath.Join(w.home, dir)
}

func expectFile(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), want) {
		t.Fatalf("%s: %q, %v; want it to contain %q", path, b, err, want)
	}
}

func TestNPMClientFullWorkflow(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())

	lib := w.pkg("lib", "@acme/lib", "1.0.0", map[string]any{"keywords": []string{"unireg-greeting"}})
	w.run(lib, npm, "publish")
	w.pkg("lib", "@acme/lib", "1.1.0", map[string]any{"keywords": []string{"unireg-greeting"}})
	w.run(lib, npm, "publish", "--tag", "beta")
	if out := w.fail(lib, npm, "publish", "--tag", "beta"); !strings.Contains(out, "previously published") {
		t.Fatalf("republishing 1.1.0: %s", out)
	}
	plain := w.pkg("plain", "plain-lib", "0.1.0", nil)
	w.run(plain, npm, "publish")

	// Install into a fresh project with a lockfile, then npm ci from it.
	app := w.project("app")
	w.run(app, npm, "install", "@acme/lib", "plain-lib")
	expectFile(t, filepath.Join(app, "node_modules/@acme/lib/index.js"), "@acme/lib@1.0.0")
	expectFile(t, filepath.Join(app, "package-lock.json"), s.url+"/npm/@acme/lib/-/lib-1.0.0.tgz")
	os.RemoveAll(filepath.Join(app, "node_modules"))
	w.run(app, npm, "ci")
	expectFile(t, filepath.Join(app, "node_modules/plain-lib/index.js"), "plain-lib@0.1.0")
	if out := w.run(app, npm, "audit"); !strings.Contains(out, "found 0 vulnerabilities") {
		t.Fatalf("npm audit: %s", out)
	}

	// dist-tags
	if out := w.run(app, npm, "dist-tag", "ls", "@acme/lib"); !strings.Contains(out, "beta: 1.1.0") || !strings.Contains(out, "latest: 1.0.0") {
		t.Fatalf("dist-tag ls: %s", out)
	}
	w.run(app, npm, "dist-tag", "add", "@acme/lib@1.1.0", "latest")
	w.run(app, npm, "dist-tag", "rm", "@acme/lib", "beta")
	if out := w.run(app, npm, "view", "@acme/lib", "dist-tags", "--json"); !strings.Contains(out, `"latest": "1.1.0"`) || strings.Contains(out, "beta") {
		t.Fatalf("dist-tags after add/rm: %s", out)
	}

	// deprecate and un-deprecate
	w.run(app, npm, "deprecate", "@acme/lib@1.0.0", "use 1.1 instead")
	if out := w.run(app, npm, "view", "@acme/lib@1.0.0", "deprecated"); !strings.Contains(out, "use 1.1 instead") {
		t.Fatalf("deprecated: %q", out)
	}
	w.run(app, npm, "deprecate", "@acme/lib@1.0.0", "")
	if out := w.run(app, npm, "view", "@acme/lib@1.0.0", "deprecated"); strings.TrimSpace(out) != "" {
		t.Fatalf("still deprecated: %q", out)
	}

	// search, whoami, owners, ping, star
	if out := w.run(app, npm, "search", "unireg-greeting"); !strings.Contains(out, "@acme/lib") || strings.Contains(out, "plain-lib") {
		t.Fatalf("search: %s", out)
	}
	if out := w.run(app, npm, "whoami"); strings.TrimSpace(out) != "admin" {
		t.Fatalf("whoami: %q", out)
	}
	if out := w.run(app, npm, "owner", "ls", "@acme/lib"); !strings.Contains(out, "admin") {
		t.Fatalf("owner ls: %q", out)
	}
	w.run(app, npm, "ping")
	w.run(app, npm, "star", "@acme/lib")

	// unpublish one version, then the package
	w.run(app, npm, "unpublish", "@acme/lib@1.1.0")
	if out := w.run(app, npm, "view", "@acme/lib", "versions", "--json"); strings.Contains(out, "1.1.0") || !strings.Contains(out, "1.0.0") {
		t.Fatalf("versions after unpublishing 1.1.0: %s", out)
	}
	w.run(app, npm, "unpublish", "@acme/lib", "--force")
	if out := w.fail(app, npm, "view", "@acme/lib"); !strings.Contains(out, "404") {
		t.Fatalf("view after unpublish: %s", out)
	}
}

func TestNPMTokensLoginAndRefusals(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	admin := newNPMWorld(t, s, s.adminToken())
	dir := admin.project("p")

	// npm token create asks for the password: a token of the same user.
	create := admin.cmd(dir, npm, "token", "create", "--name", "ci-read", "--packages-and-scopes-permission", "read-only", "--scopes", "@acme")
	create.Stdin = strings.NewReader(s.adminToken() + "\n")
	out, err := create.CombinedOutput()
	if err != nil {
		t.Fatalf("npm token create: %v\n%s", err, out)
	}
	readonly := tokenIn(string(out))
	if readonly == "" {
		t.Fatalf("no token in: %s", out)
	}
	if list := admin.run(dir, npm, "token", "list"); !strings.Contains(list, readonly[:11]) {
		t.Fatalf("token list does not show the new token: %s", list)
	}

	// The read-only token reads but cannot publish (403), and a wrong token is 401.
	pub := admin.pkg("pub", "@acme/ro", "1.0.0", nil)
	admin.run(pub, npm, "publish")
	ro := newNPMWorld(t, s, readonly)
	ro.run(ro.project("app"), npm, "install", "@acme/ro")
	roPkg := ro.pkg("pub", "@acme/ro", "2.0.0", nil)
	if out := ro.fail(roPkg, npm, "publish"); !strings.Contains(out, "403") {
		t.Fatalf("read-only publish: %s", out)
	}
	bad := newNPMWorld(t, s, "unireg_not_a_real_token_at_all_0000000000000000")
	if out := bad.fail(bad.project("app"), npm, "install", "@acme/ro"); !strings.Contains(out, "401") {
		t.Fatalf("install with a wrong token: %s", out)
	}

	// Revoke it by the id npm shows.
	var listed []struct {
		Key string `json:"key"`
	}
	json.Unmarshal([]byte(admin.run(dir, npm, "token", "list", "--json")), &listed)
	if len(listed) != 1 {
		t.Fatalf("token list --json: %+v", listed)
	}
	admin.run(dir, npm, "token", "revoke", listed[0].Key[:8])
	if out := ro.fail(ro.project("app2"), npm, "install", "@acme/ro"); !strings.Contains(out, "401") {
		t.Fatalf("install with a revoked token: %s", out)
	}

	// Legacy login with a token as the password, then logout revokes it.
	fresh := newNPMWorld(t, s, "")
	session := fresh.login(npm, "someone", s.adminToken())
	if !strings.Contains(session, "Logged in") {
		t.Fatalf("npm login: %s", session)
	}
	if out := fresh.run(fresh.home, npm, "whoami"); strings.TrimSpace(out) != "admin" {
		t.Fatalf("whoami after login: %q", out)
	}

	// A token created for logging out: logout revokes it for good.
	c2 := admin.cmd(dir, npm, "token", "create")
	c2.Stdin = strings.NewReader(s.adminToken() + "\n")
	out, _ = c2.CombinedOutput()
	temp := tokenIn(string(out))
	tw := newNPMWorld(t, s, temp)
	tw.run(tw.home, npm, "whoami")
	tw.run(tw.home, npm, "logout")
	tw2 := newNPMWorld(t, s, temp)
	tw2.fail(tw2.home, npm, "whoami")
}

// With the token API off, the real npm's logout still forgets the token
// locally and prints why the server kept it; the token stays valid.
func TestNPMLogoutWithTokenAPIDisabled(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "", "--npm-token-api=false")
	w := newNPMWorld(t, s, s.adminToken())
	out, err := w.cmd(w.home, npm, "logout").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "token management is disabled") {
		t.Fatalf("npm logout: %v\n%s", err, out)
	}
	if rc, _ := os.ReadFile(filepath.Join(w.home, ".npmrc")); strings.Contains(string(rc), "_authToken") {
		t.Fatalf(".npmrc still holds the token:\n%s", rc)
	}
	again := newNPMWorld(t, s, s.adminToken())
	if out := again.run(again.home, npm, "whoami"); strings.TrimSpace(out) != "admin" {
		t.Fatalf("whoami with the kept token: %q", out)
	}
}

// tokenIn finds a unireg token in a client's output.
func tokenIn(out string) string {
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "unireg_") && len(f) > 40 {
			return strings.Trim(f, "│ ")
		}
	}
	return ""
}

// login drives `npm login` through a pseudo-terminal (util-linux script),
// answering its prompts as they appear.
func (w *npmWorld) login(npm []string, user, password string) string {
	w.t.Helper()
	if _, err := exec.LookPath("script"); err != nil {
		w.t.Skip("script (util-linux) is needed to drive npm login's prompts")
	}
	c := exec.Command("script", "-qfec", strings.Join(append(append([]string{}, npm...), "login"), " "), "/dev/null")
	c.Dir, c.Env = w.home, w.env
	stdin, _ := c.StdinPipe()
	stdout, _ := c.StdoutPipe()
	c.Stderr = c.Stdout
	if err := c.Start(); err != nil {
		w.t.Fatal(err)
	}
	var seen bytes.Buffer
	answered := map[string]bool{}
	r := bufio.NewReader(stdout)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 256)
		for {
			n, err := r.Read(buf)
			seen.Write(buf[:n])
			text := seen.String()
			for _, p := range []struct{ prompt, answer string }{{"Username:", user}, {"Password:", password}, {"Email:", "someone@example.com"}} {
				if !answered[p.prompt] && strings.Contains(text, p.prompt) {
					answered[p.prompt] = true
					io.WriteString(stdin, p.answer+"\r")
				}
			}
			if err != nil {
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		c.Process.Kill()
		w.t.Fatalf("npm login hangs:\n%s", seen.String())
	}
	c.Wait()
	return seen.String()
}

// TestNPMPublishRefusesBadIntegrity sends what a broken or malicious client
// would: a tarball that does not match its declared integrity.
func TestNPMPublishRefusesBadIntegrity(t *testing.T) {
	s := startServer(t, "")
	tarball := []byte("not really a tarball, but bytes")
	other := sha512.Sum512([]byte("other bytes"))
	sum1 := sha1.Sum(tarball)
	doc := map[string]any{
		"_id": "bad-integrity", "name": "bad-integrity", "dist-tags": map[string]string{"latest": "1.0.0"},
		"versions": map[string]any{"1.0.0": map[string]any{"name": "bad-integrity", "version": "1.0.0",
			"dist": map[string]any{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(other[:]), "shasum": hex.EncodeToString(sum1[:])}}},
		"_attachments": map[string]any{"bad-integrity-1.0.0.tgz": map[string]any{
			"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(tarball), "length": len(tarball)}},
	}
	body, _ := json.Marshal(doc)
	req, _ := http.NewRequest("PUT", s.url+"/npm/bad-integrity", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.adminToken())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"error":"integrity mismatch`) {
		t.Fatalf("bad integrity: %d %s", resp.StatusCode, b)
	}
	if got := s.status("GET", "/npm/bad-integrity", s.adminToken()); got != 404 {
		t.Fatalf("package exists after a refused publish: %d", got)
	}
	if s.bucket != "" {
		return // the storage is a bucket; the storage suites check S3 leaves nothing
	}
	entries, _ := os.ReadDir(filepath.Join(s.dataDir, "storage", "npm"))
	for _, e := range entries {
		if e.Name() == "packages" || e.Name() == "staging" {
			sub, _ := os.ReadDir(filepath.Join(s.dataDir, "storage", "npm", e.Name()))
			if len(sub) > 0 {
				t.Fatalf("a refused publish left npm/%s/%s", e.Name(), sub[0].Name())
			}
		}
	}
}

func TestPNPMPublishAndInstall(t *testing.T) {
	pnpm := npmClient(t, "pnpm")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())
	lib := w.pkg("lib", "@team/pnpm-lib", "1.0.0", nil)
	w.run(lib, pnpm, "publish", "--no-git-checks")
	w.pkg("lib", "@team/pnpm-lib", "1.0.1", nil)
	w.run(lib, pnpm, "publish", "--no-git-checks")
	app := w.project("app")
	w.run(app, pnpm, "add", "@team/pnpm-lib@^1.0.0")
	expectFile(t, filepath.Join(app, "node_modules/@team/pnpm-lib/index.js"), "@team/pnpm-lib@1.0.1")
	expectFile(t, filepath.Join(app, "pnpm-lock.yaml"), "@team/pnpm-lib")
	os.RemoveAll(filepath.Join(app, "node_modules"))
	w.run(app, pnpm, "install", "--frozen-lockfile")
	expectFile(t, filepath.Join(app, "node_modules/@team/pnpm-lib/index.js"), "@team/pnpm-lib@1.0.1")
	if out := w.fail(lib, pnpm, "publish", "--no-git-checks"); !strings.Contains(out, "previously published") {
		t.Fatalf("pnpm republish: %s", out)
	}
}

func TestYarnClassicPublishAndInstall(t *testing.T) {
	yarn := npmClient(t, "yarn")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())
	lib := w.pkg("lib", "yarn-classic-lib", "1.0.0", nil)
	w.run(lib, yarn, "publish", "--non-interactive", "--new-version", "1.0.0")
	app := w.project("app")
	w.run(app, yarn, "add", "yarn-classic-lib@^1.0.0")
	expectFile(t, filepath.Join(app, "node_modules/yarn-classic-lib/index.js"), "yarn-classic-lib@1.0.0")
	expectFile(t, filepath.Join(app, "yarn.lock"), "yarn-classic-lib")
	os.RemoveAll(filepath.Join(app, "node_modules"))
	w.run(app, yarn, "install", "--frozen-lockfile")
	expectFile(t, filepath.Join(app, "node_modules/yarn-classic-lib/index.js"), "yarn-classic-lib@1.0.0")
	w.run(app, yarn, "tag", "add", "yarn-classic-lib@1.0.0", "stable")
	if out := w.run(app, yarn, "tag", "list", "yarn-classic-lib"); !strings.Contains(out, "stable: 1.0.0") {
		t.Fatalf("yarn tag list: %s", out)
	}
	// No `yarn audit` here: yarn classic sends it to its own registry
	// whatever is configured (its source hard-codes the host).
}

func TestYarnBerryPublishAndInstall(t *testing.T) {
	yarn := npmClient(t, "yarn-berry")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())
	lib := w.pkg("lib", "@berry/lib", "2.0.0", nil)
	w.write("lib/yarn.lock", "")
	w.run(lib, yarn, "install")
	w.run(lib, yarn, "npm", "publish")
	if out := w.run(lib, yarn, "npm", "info", "@berry/lib", "--fields", "dist-tags"); !strings.Contains(out, "2.0.0") {
		t.Fatalf("yarn npm info: %s", out)
	}
	app := w.project("app")
	w.write("app/yarn.lock", "")
	w.run(app, yarn, "add", "@berry/lib@^2.0.0")
	expectFile(t, filepath.Join(app, "node_modules/@berry/lib/index.js"), "@berry/lib@2.0.0")
	expectFile(t, filepath.Join(app, "yarn.lock"), "@berry/lib")
	os.RemoveAll(filepath.Join(app, "node_modules"))
	w.run(app, yarn, "install", "--immutable")
	expectFile(t, filepath.Join(app, "node_modules/@berry/lib/index.js"), "@berry/lib@2.0.0")
	if out := w.run(app, yarn, "npm", "whoami"); !strings.Contains(out, "admin") {
		t.Fatalf("yarn npm whoami: %s", out)
	}
	w.run(app, yarn, "npm", "audit")
}
