package nodemirror

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const owner = "team-a/cache"

func twoUpstreams() Config {
	return Config{
		Owner:    owner,
		HostsDir: "/etc/containerd/certs.d",
		Hosts: []Host{
			{Name: "docker.io", Server: "https://registry-1.docker.io", Mirror: "https://10.0.0.10:5443", CA: []byte(testCA)},
			{Name: "ghcr.io", Server: "https://ghcr.io", Mirror: "https://10.0.0.10:5443", CA: []byte(testCA)},
		},
	}
}

func mustApply(t *testing.T, dir string, cfg Config) Result {
	t.Helper()
	res, err := Apply(dir, cfg)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}

// tree lists every path under dir with its content, links as "-> target".
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "-> " + target
		case fi.IsDir():
			out[rel] = "dir"
		default:
			b, _ := os.ReadFile(p)
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestApplyWritesEachUpstreamWithItsCA(t *testing.T) {
	dir := t.TempDir()
	cfg := twoUpstreams()
	res := mustApply(t, dir, cfg)
	want := []string{"docker.io/unireg-ca.crt", "docker.io/hosts.toml", "ghcr.io/unireg-ca.crt", "ghcr.io/hosts.toml"}
	if !slices.Equal(res.Written, want) || len(res.Conflicts) > 0 {
		t.Fatalf("result %+v, want written %v", res, want)
	}
	for _, h := range cfg.Hosts {
		if got := readFile(t, filepath.Join(dir, h.Name, "hosts.toml")); got != string(Render(cfg, h)) {
			t.Errorf("%s/hosts.toml:\n%s", h.Name, got)
		}
		if got := readFile(t, filepath.Join(dir, h.Name, CAFile)); got != testCA {
			t.Errorf("%s CA: %q", h.Name, got)
		}
		fi, _ := os.Stat(filepath.Join(dir, h.Name, "hosts.toml"))
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s/hosts.toml mode %v", h.Name, fi.Mode())
		}
	}
	if got := len(tree(t, dir)); got != 7 { // ., 2 dirs, 4 files: no temporary left
		t.Errorf("tree %v", tree(t, dir))
	}
}

func TestApplyAgainChangesNothing(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, twoUpstreams())
	res := mustApply(t, dir, twoUpstreams())
	if len(res.Written) > 0 || len(res.Removed) > 0 || len(res.Unchanged) != 4 {
		t.Fatalf("second apply %+v, want 4 unchanged only", res)
	}
}

func TestApplyRepairsAnEditOfItsOwnFile(t *testing.T) {
	dir := t.TempDir()
	cfg := twoUpstreams()
	mustApply(t, dir, cfg)
	name := filepath.Join(dir, "docker.io", "hosts.toml")
	writeFile(t, name, header(owner)+"\nserver = \"https://elsewhere.example\"\n")
	res := mustApply(t, dir, cfg)
	if !slices.Equal(res.Written, []string{"docker.io/hosts.toml"}) {
		t.Fatalf("result %+v", res)
	}
	if readFile(t, name) != string(Render(cfg, cfg.Hosts[0])) {
		t.Error("edit not repaired")
	}
}

func TestApplyLeavesAForeignHostsTomlAlone(t *testing.T) {
	dir := t.TempDir()
	foreign := "server = \"https://registry-1.docker.io\"\n\n[host.\"https://mine.example\"]\n  capabilities = [\"pull\"]\n"
	writeFile(t, filepath.Join(dir, "docker.io", "hosts.toml"), foreign)
	res := mustApply(t, dir, twoUpstreams())
	if !slices.Equal(res.Conflicts, []string{"docker.io/hosts.toml: not written by unireg node-mirror"}) {
		t.Fatalf("conflicts %v", res.Conflicts)
	}
	if got := readFile(t, filepath.Join(dir, "docker.io", "hosts.toml")); got != foreign {
		t.Errorf("foreign file changed:\n%s", got)
	}
	if exists(filepath.Join(dir, "docker.io", CAFile)) {
		t.Error("CA written beside a foreign hosts.toml")
	}
	if !exists(filepath.Join(dir, "ghcr.io", "hosts.toml")) {
		t.Error("the other upstream was not written")
	}
}

func TestApplyLeavesAnotherOwnersFilesAlone(t *testing.T) {
	dir := t.TempDir()
	other := Config{Owner: "team-b/cache", HostsDir: "/etc/containerd/certs.d", Hosts: []Host{
		{Name: "docker.io", Server: "https://registry-1.docker.io", Mirror: "http://10.0.0.20:5000"},
		{Name: "quay.io", Server: "https://quay.io", Mirror: "http://10.0.0.20:5000"},
	}}
	mustApply(t, dir, other)
	before := tree(t, filepath.Join(dir, "quay.io"))
	beforeDocker := readFile(t, filepath.Join(dir, "docker.io", "hosts.toml"))

	res := mustApply(t, dir, twoUpstreams())
	if !slices.Equal(res.Conflicts, []string{"docker.io/hosts.toml: written by unireg node-mirror for team-b/cache"}) {
		t.Fatalf("conflicts %v", res.Conflicts)
	}
	if readFile(t, filepath.Join(dir, "docker.io", "hosts.toml")) != beforeDocker {
		t.Error("team-b's docker.io changed")
	}
	if res, err := Cleanup(dir, owner); err != nil || len(res.Removed) != 3 { // ghcr.io's two files and dir
		t.Fatalf("cleanup %+v %v", res, err)
	}
	if got := tree(t, filepath.Join(dir, "quay.io")); !mapsEqual(got, before) {
		t.Errorf("team-b's quay.io changed: %v", got)
	}
	if readFile(t, filepath.Join(dir, "docker.io", "hosts.toml")) != beforeDocker {
		t.Error("cleanup touched team-b's docker.io")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestApplyRemovesADroppedUpstreamWithItsCAAndDir(t *testing.T) {
	dir := t.TempDir()
	cfg := twoUpstreams()
	mustApply(t, dir, cfg)
	cfg.Hosts = cfg.Hosts[:1]
	res := mustApply(t, dir, cfg)
	want := []string{"ghcr.io/hosts.toml", "ghcr.io/unireg-ca.crt", "ghcr.io/"}
	if !slices.Equal(res.Removed, want) {
		t.Fatalf("removed %v, want %v", res.Removed, want)
	}
	if exists(filepath.Join(dir, "ghcr.io")) {
		t.Error("ghcr.io still there")
	}
	if !exists(filepath.Join(dir, "docker.io", "hosts.toml")) {
		t.Error("docker.io removed")
	}
}

func TestApplyKeepsADirHoldingOtherFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := twoUpstreams()
	writeFile(t, filepath.Join(dir, "ghcr.io", "client.cert"), "admin's")
	mustApply(t, dir, cfg)
	cfg.Hosts = cfg.Hosts[:1]
	res := mustApply(t, dir, cfg)
	if !slices.Equal(res.Removed, []string{"ghcr.io/hosts.toml", "ghcr.io/unireg-ca.crt"}) {
		t.Fatalf("removed %v", res.Removed)
	}
	if got := tree(t, filepath.Join(dir, "ghcr.io")); !mapsEqual(got, map[string]string{".": "dir", "client.cert": "admin's"}) {
		t.Errorf("ghcr.io holds %v", got)
	}
}

func TestApplyRemovesTheCAWhenTLSIsTurnedOff(t *testing.T) {
	dir := t.TempDir()
	cfg := twoUpstreams()
	mustApply(t, dir, cfg)
	cfg.Hosts[0].CA, cfg.Hosts[0].Mirror = nil, "http://10.0.0.10:5000"
	res := mustApply(t, dir, cfg)
	if !slices.Equal(res.Written, []string{"docker.io/hosts.toml"}) || !slices.Equal(res.Removed, []string{"docker.io/unireg-ca.crt"}) {
		t.Fatalf("result %+v", res)
	}
	if strings.Contains(readFile(t, filepath.Join(dir, "docker.io", "hosts.toml")), "ca =") {
		t.Error("hosts.toml still names a CA")
	}
}

func TestApplyRefusesBadConfigAndWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		what string
		edit func(*Config)
	}{
		{"parent dir", func(c *Config) { c.Hosts[1].Name = "../../etc" }},
		{"path after a host", func(c *Config) { c.Hosts[1].Name = "docker.io/../../x" }},
		{"dot dot", func(c *Config) { c.Hosts[1].Name = ".." }},
		{"slash", func(c *Config) { c.Hosts[1].Name = "a/b" }},
		{"empty", func(c *Config) { c.Hosts[1].Name = "" }},
		{"absolute", func(c *Config) { c.Hosts[1].Name = "/etc" }},
		{"bare IPv6", func(c *Config) { c.Hosts[1].Name = "fd00::1" }},
		{"bad port", func(c *Config) { c.Hosts[1].Name = "10.0.0.1:99999" }},
		{"underscore", func(c *Config) { c.Hosts[1].Name = "_default" }},
		{"twice", func(c *Config) { c.Hosts[1].Name = "docker.io" }},
		{"newline in owner", func(c *Config) { c.Owner = "a/b\n[host.\"x\"]" }},
		{"owner without namespace", func(c *Config) { c.Owner = "cache" }},
		{"relative hostsDir", func(c *Config) { c.HostsDir = "etc/containerd" }},
		{"unclean hostsDir", func(c *Config) { c.HostsDir = "/etc/../root" }},
		{"mirror scheme", func(c *Config) { c.Hosts[1].Mirror = "file:///etc/passwd" }},
		{"mirror with path", func(c *Config) { c.Hosts[1].Mirror = "http://10.0.0.10:5000/x" }},
		{"mirror with quote", func(c *Config) { c.Hosts[1].Mirror = `http://10.0.0.10:5000"` }},
		{"server with user", func(c *Config) { c.Hosts[1].Server = "https://u:p@ghcr.io" }},
		{"ca is a key", func(c *Config) {
			c.Hosts[1].CA = []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}},
		{"ca not PEM", func(c *Config) { c.Hosts[1].CA = []byte("hello") }},
	} {
		t.Run(tc.what, func(t *testing.T) {
			dir := t.TempDir()
			cfg := twoUpstreams()
			tc.edit(&cfg)
			res, err := Apply(dir, cfg)
			if err == nil {
				t.Fatalf("accepted, result %+v", res)
			}
			if got := tree(t, dir); len(got) != 1 {
				t.Errorf("wrote %v", got)
			}
		})
	}
}

func TestNamesAccepted(t *testing.T) {
	for _, name := range []string{"docker.io", "registry-1.docker.io", "localhost:5000", "10.0.0.10:5000", "[fd00::10]:5000", "10.0.0.10", "Quay.IO"} {
		if err := ValidateName(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestApplyDoesNotFollowASymlinkedHostsToml(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "victim")
	writeFile(t, target, header(owner)+"\nprecious\n") // even one that looks like ours
	if err := os.Mkdir(filepath.Join(dir, "docker.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "docker.io", "hosts.toml")); err != nil {
		t.Fatal(err)
	}
	res := mustApply(t, dir, twoUpstreams())
	if len(res.Conflicts) != 1 || !strings.HasPrefix(res.Conflicts[0], "docker.io/hosts.toml: not a regular file") {
		t.Fatalf("conflicts %v", res.Conflicts)
	}
	if got := readFile(t, target); got != header(owner)+"\nprecious\n" {
		t.Errorf("target overwritten: %q", got)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "docker.io", "hosts.toml")); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("link replaced")
	}
	// Cleanup neither removes the link nor what it points at.
	if _, err := Cleanup(dir, owner); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(dir, "docker.io", "hosts.toml")) || !exists(target) {
		t.Error("cleanup removed a link or its target")
	}
}

func TestApplyDoesNotEnterASymlinkedDir(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outside, "hosts.toml"), header(owner)+"\n")
	for _, name := range []string{"docker.io", "quay.io"} { // wanted, and stale-looking
		if err := os.Symlink(outside, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	res := mustApply(t, dir, twoUpstreams())
	if len(res.Conflicts) != 1 || !strings.HasPrefix(res.Conflicts[0], "docker.io: not a directory") {
		t.Fatalf("conflicts %v", res.Conflicts)
	}
	if got := tree(t, outside); !mapsEqual(got, map[string]string{".": "dir", "hosts.toml": header(owner) + "\n"}) {
		t.Errorf("outside changed: %v", got)
	}
}

func TestApplySymlinkedCAIsAConflict(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "ca")
	writeFile(t, target, "not yours")
	if err := os.Mkdir(filepath.Join(dir, "docker.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "docker.io", CAFile)); err != nil {
		t.Fatal(err)
	}
	res := mustApply(t, dir, twoUpstreams())
	if !slices.Equal(res.Conflicts, []string{"docker.io/unireg-ca.crt: not a regular file"}) {
		t.Fatalf("conflicts %v", res.Conflicts)
	}
	if readFile(t, target) != "not yours" || exists(filepath.Join(dir, "docker.io", "hosts.toml")) {
		t.Error("wrote through or beside the link")
	}
}

func TestApplyNeedsTheWriteDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := Apply(filepath.Join(dir, "not-mounted"), twoUpstreams()); err == nil {
		t.Fatal("applied into a missing write dir")
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(link, twoUpstreams()); err == nil {
		t.Fatal("applied through a symlinked write dir")
	}
}

func TestCleanupRemovesOnlyOwnersFiles(t *testing.T) {
	dir := t.TempDir()
	mustApply(t, dir, twoUpstreams())
	writeFile(t, filepath.Join(dir, "quay.io", "hosts.toml"), "server = \"https://quay.io\"\n")
	res, err := Cleanup(dir, owner)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Removed) != 6 || len(res.Conflicts) > 0 {
		t.Fatalf("result %+v", res)
	}
	if got := tree(t, dir); !mapsEqual(got, map[string]string{".": "dir", "quay.io": "dir", "quay.io/hosts.toml": "server = \"https://quay.io\"\n"}) {
		t.Errorf("left %v", got)
	}
	if _, err := Cleanup(dir, "../x"); err == nil {
		t.Error("cleanup accepted a bad owner")
	}
}

func TestApplyDoesNotFollowASymlinkInsideTheWriteDir(t *testing.T) {
	dir := t.TempDir()
	admin := "server = \"https://quay.io\"\n"
	writeFile(t, filepath.Join(dir, "quay.io", "hosts.toml"), admin)
	if err := os.Mkdir(filepath.Join(dir, "docker.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../quay.io/hosts.toml", filepath.Join(dir, "docker.io", "hosts.toml")); err != nil {
		t.Fatal(err)
	}
	res := mustApply(t, dir, twoUpstreams())
	if len(res.Conflicts) != 1 || !strings.HasPrefix(res.Conflicts[0], "docker.io/hosts.toml: not a regular file") {
		t.Fatalf("conflicts %v", res.Conflicts)
	}
	if got := readFile(t, filepath.Join(dir, "quay.io", "hosts.toml")); got != admin {
		t.Errorf("link target changed: %q", got)
	}
}
