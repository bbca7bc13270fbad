package main

import (
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
