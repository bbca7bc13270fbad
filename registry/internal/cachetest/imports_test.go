package cachetest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const importPath = "github.com/unireg/unireg/registry/internal/cachetest"

// TestOnlyTestsImportCachetest keeps this package test support: no package
// of the module may import it from its non-test files (go list's Imports
// leave test files out), so nothing the project ships links it.
func TestOnlyTestsImportCachetest(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 1 && slices.Contains(fields[1:], importPath) {
			t.Errorf("%s imports %s from a non-test file", fields[0], importPath)
		}
	}
}
