package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// clientCLI finds a client binary: $UNIREG_<NAME> or bin/<name> (built by
// `make client-tools`, which `make test` runs first).
func clientCLI(t *testing.T, name string) string {
	t.Helper()
	if p := os.Getenv("UNIREG_" + strings.ToUpper(name)); p != "" {
		return p
	}
	p, _ := filepath.Abs(filepath.Join("..", "..", "bin", name))
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not built: run `make client-tools` (make test does)", name)
	}
	return p
}

// runCLI executes a client with a private HOME so no credentials leak between
// tests or into the developer's configuration.
func runCLI(t *testing.T, home, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
	cmd.Dir = home
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestOrasCLIPushPullAttachDiscover(t *testing.T) {
	oras := clientCLI(t, "oras")
	s := startServer(t, "")
	host := strings.TrimPrefix(s.url, "http://")
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "hello.txt"), []byte("hello from oras\n"), 0o644)
	os.WriteFile(filepath.Join(home, "sbom.json"), []byte(`{"packages":[]}`), 0o644)

	runCLI(t, home, oras, "login", "--plain-http", host, "-u", "ci", "-p", s.adminToken())
	runCLI(t, home, oras, "push", "--plain-http", host+"/team/artifact:v1", "--artifact-type", "application/vnd.example.thing", "hello.txt:text/plain")
	runCLI(t, home, oras, "attach", "--plain-http", "--artifact-type", "application/vnd.example.sbom", host+"/team/artifact:v1", "sbom.json:application/json")
	if out := runCLI(t, home, oras, "discover", "--plain-http", "--format", "json", host+"/team/artifact:v1"); !strings.Contains(out, "application/vnd.example.sbom") {
		t.Fatalf("oras discover does not list the attached SBOM:\n%s", out)
	}
	if out := runCLI(t, home, oras, "repo", "tags", "--plain-http", host+"/team/artifact"); strings.TrimSpace(out) != "v1" {
		t.Fatalf("oras repo tags: %q", out)
	}
	pulled := filepath.Join(home, "pulled")
	runCLI(t, home, oras, "pull", "--plain-http", "-o", pulled, host+"/team/artifact:v1")
	if b, err := os.ReadFile(filepath.Join(pulled, "hello.txt")); err != nil || string(b) != "hello from oras\n" {
		t.Fatalf("pulled file: %q, %v", b, err)
	}

	// A fresh HOME has no credentials: the push is refused.
	anon := t.TempDir()
	os.WriteFile(filepath.Join(anon, "x.txt"), []byte("x"), 0o644)
	cmd := exec.Command(oras, "push", "--plain-http", host+"/team/artifact:v2", "x.txt")
	cmd.Env = append(os.Environ(), "HOME="+anon, "DOCKER_CONFIG="+filepath.Join(anon, ".docker"))
	cmd.Dir = anon
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("anonymous oras push succeeded:\n%s", out)
	}
}

func TestCraneCLICopyListDelete(t *testing.T) {
	crane := clientCLI(t, "crane")
	oras := clientCLI(t, "oras")
	s := startServer(t, "")
	host := strings.TrimPrefix(s.url, "http://")
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "a.txt"), []byte("a"), 0o644)
	runCLI(t, home, crane, "auth", "login", host, "-u", "ci", "-p", s.adminToken())
	runCLI(t, home, oras, "push", "--plain-http", host+"/src/thing:v1", "a.txt")

	runCLI(t, home, crane, "copy", "--insecure", host+"/src/thing:v1", host+"/dst/thing:v1")
	digest := strings.TrimSpace(runCLI(t, home, crane, "digest", "--insecure", host+"/dst/thing:v1"))
	if digest != strings.TrimSpace(runCLI(t, home, crane, "digest", "--insecure", host+"/src/thing:v1")) {
		t.Fatal("copy changed the digest")
	}
	if out := runCLI(t, home, crane, "catalog", "--insecure", host); strings.Fields(out)[0] != "dst/thing" || !strings.Contains(out, "src/thing") {
		t.Fatalf("crane catalog: %q", out)
	}
	runCLI(t, home, crane, "tag", "--insecure", host+"/dst/thing:v1", "latest")
	if out := runCLI(t, home, crane, "ls", "--insecure", host+"/dst/thing"); strings.Join(strings.Fields(out), ",") != "latest,v1" {
		t.Fatalf("crane ls: %q", out)
	}
	runCLI(t, home, crane, "delete", "--insecure", host+"/dst/thing@"+digest)
	if out := runCLI(t, home, crane, "ls", "--insecure", host+"/dst/thing"); strings.TrimSpace(out) != "" {
		t.Fatalf("tags survive deleting their manifest: %q", out)
	}
}
