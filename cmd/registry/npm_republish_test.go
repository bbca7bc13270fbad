package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNPMRepublishAfterUnpublishIsRefused: with the real npm, a version of a
// package unpublished whole (`npm unpublish --force`) cannot be published
// again with other bytes, so lockfiles that pin its integrity never meet
// another tarball; a new version can (issue 14, item 8).
func TestNPMRepublishAfterUnpublishIsRefused(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	w := newNPMWorld(t, s, s.adminToken())
	lib := w.pkg("lib", "@acme/gone", "1.0.0", nil)
	w.run(lib, npm, "publish")

	// A project locks 1.0.0's integrity.
	app := w.project("app")
	w.run(app, npm, "install", "@acme/gone")
	expectFile(t, filepath.Join(app, "package-lock.json"), "sha512-")

	w.run(app, npm, "unpublish", "@acme/gone", "--force")
	w.write("lib/index.js", "module.exports = 'other code';\n")
	out := w.fail(lib, npm, "publish")
	if !strings.Contains(out, "403") || !strings.Contains(out, "previously published versions: 1.0.0") {
		t.Fatalf("republishing 1.0.0 with other bytes: %s", out)
	}
	if out := w.fail(app, npm, "view", "@acme/gone"); !strings.Contains(out, "404") {
		t.Fatalf("view after the refused republish: %s", out)
	}

	w.pkg("lib", "@acme/gone", "1.0.1", nil)
	w.run(lib, npm, "publish")
	if out := w.run(app, npm, "view", "@acme/gone", "versions", "--json"); strings.Contains(out, `"1.0.0"`) || !strings.Contains(out, "1.0.1") {
		t.Fatalf("versions after publishing 1.0.1: %s", out)
	}
}
