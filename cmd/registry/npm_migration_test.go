package main

import (
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// The npm fidelity a migration off the public registry needs (issue 20),
// with the real clients.

// TestNPMLegacyNamesPublishAndInstall: a name the public registry still
// serves for old packages (capitals, as JSONStream) publishes and installs
// with npm, pnpm and yarn; a new name that differs from it only by case is
// refused with the reason, as the public registry does.
func TestNPMLegacyNamesPublishAndInstall(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())
	lib := w.pkg("legacy", "JSONStream", "1.3.5", nil)
	w.run(lib, npm, "publish")
	w.pkg("legacy", "JSONStream", "1.3.6", nil)
	w.run(lib, npm, "publish")
	if out := w.run(lib, npm, "view", "JSONStream", "version"); strings.TrimSpace(out) != "1.3.6" {
		t.Fatalf("npm view JSONStream version: %q", out)
	}
	app := w.project("app")
	w.run(app, npm, "install", "JSONStream@1.3.5")
	expectFile(t, filepath.Join(app, "node_modules/JSONStream/index.js"), "JSONStream@1.3.5")
	expectFile(t, filepath.Join(app, "package-lock.json"), s.url+"/npm/JSONStream/-/JSONStream-1.3.5.tgz")

	for _, client := range []string{"pnpm", "yarn", "yarn-berry"} {
		t.Run(client, func(t *testing.T) {
			c := npmClient(t, client)
			dir := w.project(client)
			args := []string{"add", "JSONStream@^1.3.0"}
			if client == "yarn-berry" {
				w.write(client+"/yarn.lock", "")
			}
			w.run(dir, c, args...)
			expectFile(t, filepath.Join(dir, "node_modules/JSONStream/index.js"), "JSONStream@1.3.6")
		})
	}

	for _, variant := range []string{"jsonstream", "JsonStream"} {
		other := w.pkg("variant-"+variant, variant, "1.0.0", nil)
		out := w.fail(other, npm, "publish")
		if !strings.Contains(out, "differs only in case from the existing package JSONStream") {
			t.Fatalf("publishing %s beside JSONStream: %s", variant, out)
		}
		if got := s.status("GET", "/npm/"+variant, s.adminToken()); got != 404 {
			t.Fatalf("%s exists after a refused publish: %d", variant, got)
		}
	}
}

// TestNPMOwnerAddRemove: npm owner add/rm change the maintainers that npm
// owner ls shows; who may change them is who may write the package.
func TestNPMOwnerAddRemove(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())
	w.run(w.pkg("lib", "@acme/owned", "1.0.0", nil), npm, "publish")
	app := w.project("app")

	if out := w.run(app, npm, "owner", "add", "bob", "@acme/owned"); !strings.Contains(out, "+ bob (@acme/owned)") {
		t.Fatalf("npm owner add: %s", out)
	}
	if out := w.run(app, npm, "owner", "ls", "@acme/owned"); !strings.Contains(out, "admin") || !strings.Contains(out, "bob") {
		t.Fatalf("npm owner ls after add: %q", out)
	}
	w.run(app, npm, "owner", "rm", "admin", "@acme/owned")
	if out := w.run(app, npm, "owner", "ls", "@acme/owned"); strings.Contains(out, "admin") || !strings.Contains(out, "bob") {
		t.Fatalf("npm owner ls after rm: %q", out)
	}

	ro := newNPMWorld(t, s, readOnlyToken(t, s))
	if out := ro.fail(ro.project("app"), npm, "owner", "add", "mallory", "@acme/owned"); !strings.Contains(out, "403") {
		t.Fatalf("npm owner add with a read-only token: %s", out)
	}
	if out := w.run(app, npm, "owner", "ls", "@acme/owned"); strings.Contains(out, "mallory") {
		t.Fatalf("a read-only token changed the owners: %q", out)
	}
}

// TestNPMDistTagsThePublicRegistryAccepts: a tag such as 1.x (publishConfig
// of brace-expansion@1) is kept and leaves latest alone; a tag npm would
// take as a version is refused with the reason, and moves nothing.
func TestNPMDistTagsThePublicRegistryAccepts(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())
	lib := w.pkg("lib", "brace-like", "1.1.21", nil)
	w.run(lib, npm, "publish")
	w.pkg("lib", "brace-like", "2.0.1", nil)
	w.run(lib, npm, "publish")
	w.pkg("lib", "brace-like", "1.1.22", map[string]any{"publishConfig": map[string]any{"tag": "1.x"}})
	w.run(lib, npm, "publish")
	app := w.project("app")
	tags := func() string { return w.run(app, npm, "dist-tag", "ls", "brace-like") }
	if out := tags(); !strings.Contains(out, "1.x: 1.1.22") || !strings.Contains(out, "latest: 2.0.1") {
		t.Fatalf("dist-tags after a publish with tag 1.x: %s", out)
	}

	w.pkg("lib", "brace-like", "1.1.23", map[string]any{"publishConfig": map[string]any{"tag": "v1.1.23"}})
	if out := w.fail(lib, npm, "publish"); !strings.Contains(out, `invalid dist-tag "v1.1.23"`) {
		t.Fatalf("publish with tag v1.1.23: %s", out)
	}
	if out := tags(); !strings.Contains(out, "latest: 2.0.1") || strings.Contains(out, "1.1.23") {
		t.Fatalf("dist-tags after a refused tag: %s", out)
	}
	if out := w.fail(app, npm, "view", "brace-like@1.1.23", "version"); !strings.Contains(out, "404") && !strings.Contains(out, "No match") {
		t.Fatalf("1.1.23 published with a refused tag: %s", out)
	}

	// npm itself refuses to send a range as a tag (`npm dist-tag add` and
	// `npm publish --tag`); other clients do not, and the server takes it.
	w.run(app, npm, "dist-tag", "add", "brace-like@2.0.1", "stable")
	if yarn, err := findNPMClient("yarn"); err == nil {
		w.run(app, yarn, "tag", "add", "brace-like@2.0.1", "2.x")
		if out := tags(); !strings.Contains(out, "2.x: 2.0.1") || !strings.Contains(out, "stable: 2.0.1") {
			t.Fatalf("dist-tags after yarn tag add 2.x: %s", out)
		}
	}
	for tag, want := range map[string]int{"3.x": 201, "v2.0.1": 400, "2.0.1": 400, "a%2Fb": 400} {
		resp := s.request("PUT", "/npm/-/package/brace-like/dist-tags/"+tag, s.adminToken(), strings.NewReader(`"2.0.1"`))
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 400 && !strings.Contains(string(b), "invalid dist-tag")) {
			t.Fatalf("PUT dist-tag %s: %d %s, want %d", tag, resp.StatusCode, b, want)
		}
	}
}

// readOnlyToken makes a token of the admin that may only read.
func readOnlyToken(t *testing.T, s *server) string {
	t.Helper()
	resp := s.request("POST", "/npm/-/npm/v1/tokens", s.adminToken(), strings.NewReader(`{"readonly":true}`))
	defer resp.Body.Close()
	var created struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&created)
	if created.Token == "" {
		t.Fatalf("no read-only token: %d", resp.StatusCode)
	}
	return created.Token
}

// TestNPMAccessProfileStarsAndUnsupportedCommands: npm stars, npm access
// get status and list packages, and npm profile get answer from unireg's
// model (stars, scopes, the identity); npm org, npm team and the access and
// profile commands that change things print why they are not supported.
func TestNPMAccessProfileStarsAndUnsupportedCommands(t *testing.T) {
	npm := npmClient(t, "npm")
	// A first run makes the admin token; the second grants anonymous reads
	// of @pub beside it.
	dir := t.TempDir()
	startServer(t, dir).stop()
	s := startServer(t, dir, "--auth-store", filepath.Join(dir, "auth-store.yaml"), "--anonymous", "npm:package:@pub/*:read")
	w := newNPMWorld(t, s, s.adminToken())
	w.run(w.pkg("pub", "@pub/open", "1.0.0", nil), npm, "publish")
	w.run(w.pkg("priv", "@acme/closed", "1.0.0", nil), npm, "publish")
	w.run(w.pkg("plain", "plain-closed", "1.0.0", nil), npm, "publish")
	app := w.project("app")

	w.run(app, npm, "star", "@acme/closed")
	w.run(app, npm, "star", "plain-closed")
	if out := w.run(app, npm, "stars"); out != "@acme/closed\nplain-closed\n" {
		t.Fatalf("npm stars: %q", out)
	}
	if out := w.run(app, npm, "stars", "admin"); out != "@acme/closed\nplain-closed\n" {
		t.Fatalf("npm stars admin: %q", out)
	}
	if out := w.run(app, npm, "stars", "nobody"); strings.TrimSpace(out) != "" {
		t.Fatalf("npm stars nobody: %q", out)
	}

	if out := w.run(app, npm, "access", "get", "status", "@pub/open"); strings.TrimSpace(out) != "@pub/open: public" {
		t.Fatalf("npm access get status @pub/open: %q", out)
	}
	if out := w.run(app, npm, "access", "get", "status", "@acme/closed"); strings.TrimSpace(out) != "@acme/closed: private" {
		t.Fatalf("npm access get status @acme/closed: %q", out)
	}
	if out := w.run(app, npm, "access", "list", "packages"); out != "@acme/closed: read-write\n@pub/open: read-write\nplain-closed: read-write\n" {
		t.Fatalf("npm access list packages: %q", out)
	}
	if out := w.run(app, npm, "access", "list", "packages", "@acme"); out != "@acme/closed: read-write\n" {
		t.Fatalf("npm access list packages @acme: %q", out)
	}
	ro := newNPMWorld(t, s, readOnlyToken(t, s))
	if out := ro.run(ro.project("app"), npm, "access", "list", "packages"); out != "@acme/closed: read-only\n@pub/open: read-only\nplain-closed: read-only\n" {
		t.Fatalf("npm access list packages with a read-only token: %q", out)
	}
	if out := w.run(app, npm, "profile", "get"); !strings.Contains(out, "name: admin") || !strings.Contains(out, "two-factor auth: disabled") {
		t.Fatalf("npm profile get: %q", out)
	}
	if out := w.run(app, npm, "profile", "get", "name"); strings.TrimSpace(out) != "admin" {
		t.Fatalf("npm profile get name: %q", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"org", "ls", "acme"}, "npm org is not supported by this registry"},
		{[]string{"org", "set", "acme", "bob", "developer"}, "npm org is not supported by this registry"},
		{[]string{"team", "ls", "acme"}, "npm team is not supported by this registry"},
		{[]string{"team", "create", "@acme:devs"}, "npm team is not supported by this registry"},
		{[]string{"team", "ls", "@acme:devs"}, "npm team is not supported by this registry"},
		{[]string{"access", "list", "packages", "@acme:devs"}, "npm access list packages of a team is not supported by this registry"},
		{[]string{"access", "list", "packages", "bob"}, "is not supported by this registry"},
		{[]string{"access", "list", "collaborators", "@acme/closed"}, "npm access list collaborators is not supported by this registry"},
		{[]string{"access", "grant", "read-only", "@acme:devs", "@acme/closed"}, "npm access grant is not supported by this registry"},
		{[]string{"access", "revoke", "@acme:devs", "@acme/closed"}, "npm access revoke is not supported by this registry"},
		{[]string{"access", "set", "status=public", "@acme/closed"}, "npm access set status is not supported by this registry"},
		{[]string{"access", "set", "mfa=publish", "@acme/closed"}, "npm access set mfa is not supported by this registry"},
		{[]string{"profile", "set", "fullname", "Bob"}, "npm profile set is not supported by this registry"},
		{[]string{"trust", "list", "@acme/closed"}, "npm trust is not supported by this registry"},
		{[]string{"stage", "list"}, "npm stage is not supported by this registry"},
	} {
		if out := w.fail(app, npm, c.args...); !strings.Contains(out, c.want) || strings.Contains(out, "could not be found") {
			t.Errorf("npm %s: want %q in:\n%s", strings.Join(c.args, " "), c.want, out)
		}
	}
	// enable-2fa asks for the password before it sends anything.
	twoFA := w.cmd(app, npm, "profile", "enable-2fa", "auth-only")
	twoFA.Stdin = strings.NewReader("a password\n")
	if out, err := twoFA.CombinedOutput(); err == nil || !strings.Contains(string(out), "npm profile enable-2fa is not supported by this registry") {
		t.Errorf("npm profile enable-2fa: %v\n%s", err, out)
	}
}
