package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/unireg/unireg/controllers/nodemirror"
)

// nodeMirrorSettings returns the agent's settings on temporary
// directories, with cfg as its config.
func testNodeMirrorSettings(t *testing.T, cfg nodemirror.Config, cleanup bool) *nodeMirrorSettings {
	t.Helper()
	dir := t.TempDir()
	s := &nodeMirrorSettings{
		config:    filepath.Join(dir, "config", nodemirror.ConfigFile),
		writeDir:  filepath.Join(dir, "certs.d"),
		readyFile: filepath.Join(dir, "run", "ready"),
		interval:  20 * time.Millisecond,
		cleanup:   cleanup,
	}
	for _, d := range []string{filepath.Dir(s.config), s.writeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(t, s, cfg)
	return s
}

// startNodeMirror runs the agent in-process; it returns a buffer of its
// log and a function that stops it (as SIGTERM does) and waits for it.
func startNodeMirror(t *testing.T, s *nodeMirrorSettings) (*syncBuffer, func()) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(log.IntoContext(context.Background(), zap.New(zap.WriteTo(logs))))
	done := make(chan struct{})
	go func() { defer close(done); runNodeMirror(ctx, s) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("agent did not stop")
		}
	}
	t.Cleanup(stop)
	return logs, stop
}

func writeConfig(t *testing.T, s *nodeMirrorSettings, cfg nodemirror.Config) {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.config+".tmp", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(s.config+".tmp", s.config); err != nil {
		t.Fatal(err)
	}
}

func probe(s *nodeMirrorSettings) (int, string) {
	var out bytes.Buffer
	code := runNodeMirrorProbe([]string{"--ready-file", s.readyFile}, &out, io.Discard)
	return code, out.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fileExists(name string) bool { _, err := os.Lstat(name); return err == nil }

func testMirrorConfig() nodemirror.Config {
	return nodemirror.Config{
		Owner:    "team-a/cache",
		HostsDir: "/etc/containerd/certs.d",
		Hosts: []nodemirror.Host{
			{Name: "docker.io", Server: "https://registry-1.docker.io", Mirror: "http://10.0.0.10:5000"},
			{Name: "10.0.0.10:5000", Mirror: "http://10.0.0.10:5000"},
		},
	}
}

func TestNodeMirrorAgentReadyConflictAndRepair(t *testing.T) {
	s := testNodeMirrorSettings(t, testMirrorConfig(), false)
	logs, stop := startNodeMirror(t, s)
	hosts := filepath.Join(s.writeDir, "docker.io", "hosts.toml")
	waitFor(t, "ready", func() bool { code, _ := probe(s); return code == 0 })
	if !fileExists(hosts) || !fileExists(filepath.Join(s.writeDir, "10.0.0.10:5000", "hosts.toml")) {
		t.Fatal("ready before the files are written")
	}
	if b, _ := os.ReadFile(s.readyFile); string(b) != "ok\n" {
		t.Errorf("ready file %q", b)
	}

	// Someone replaces the file with their own: a conflict, left alone.
	foreign := "server = \"https://registry-1.docker.io\"\n"
	if err := os.WriteFile(hosts, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "not ready", func() bool { return !fileExists(s.readyFile) })
	code, out := probe(s)
	if code != 1 || !strings.Contains(out, "/etc/containerd/certs.d") || !strings.Contains(out, "docker.io/hosts.toml: not written by unireg node-mirror") {
		t.Errorf("probe %d %q", code, out)
	}
	time.Sleep(3 * s.interval)
	if b, _ := os.ReadFile(hosts); string(b) != foreign {
		t.Errorf("foreign file changed: %q", b)
	}

	// Once it is gone, the next apply writes ours again.
	if err := os.Remove(hosts); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ready again", func() bool { code, _ := probe(s); return code == 0 })
	if fileExists(s.readyFile + ".why") {
		t.Error(".why left behind while ready")
	}

	// A new config is read without a restart: a dropped host is removed.
	cfg := testMirrorConfig()
	cfg.Hosts = cfg.Hosts[:1]
	writeConfig(t, s, cfg)
	waitFor(t, "own host removed", func() bool { return !fileExists(filepath.Join(s.writeDir, "10.0.0.10:5000")) })

	// Stopping (SIGTERM) leaves the node configured.
	stop()
	if !fileExists(hosts) {
		t.Error("stopping removed the node's files")
	}
	l := logs.String()
	for _, want := range []string{`"wrote"`, `"path":"docker.io/hosts.toml"`, `"removed"`, `"not ready"`} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %s:\n%s", want, l)
		}
	}
	if strings.Contains(l, "capabilities") {
		t.Error("log holds file content")
	}
	// One line per change: steady applies log nothing.
	if n := strings.Count(l, `"path":"docker.io/hosts.toml"`); n != 2 {
		t.Errorf("docker.io/hosts.toml logged %d times, want 2 (written twice):\n%s", n, l)
	}
}

func TestNodeMirrorAgentBadConfigIsNotReady(t *testing.T) {
	cfg := testMirrorConfig()
	cfg.Hosts[0].Name = "../../etc"
	s := testNodeMirrorSettings(t, cfg, false)
	startNodeMirror(t, s)
	waitFor(t, "a reason", func() bool { return fileExists(s.readyFile + ".why") })
	code, out := probe(s)
	if code != 1 || !strings.Contains(out, `"../../etc"`) {
		t.Errorf("probe %d %q", code, out)
	}
	entries, _ := os.ReadDir(s.writeDir)
	if len(entries) > 0 {
		t.Errorf("wrote %v", entries)
	}
}

func TestNodeMirrorAgentCleanupRemovesOwnFilesThenReady(t *testing.T) {
	cfg := testMirrorConfig()
	s := testNodeMirrorSettings(t, cfg, true)
	if _, err := nodemirror.Apply(s.writeDir, cfg); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(s.writeDir, "quay.io", "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("server = \"https://quay.io\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Hosts = nil // what a cleanup config may say; the owner is what counts
	writeConfig(t, s, cfg)
	startNodeMirror(t, s)
	waitFor(t, "ready", func() bool { code, _ := probe(s); return code == 0 })
	entries, _ := os.ReadDir(s.writeDir)
	if len(entries) != 1 || entries[0].Name() != "quay.io" || !fileExists(filepath.Join(s.writeDir, "quay.io", "hosts.toml")) {
		t.Errorf("left %v", entries)
	}
}

func TestNodeMirrorProbeWithoutAnApply(t *testing.T) {
	var out bytes.Buffer
	code, ok := runSubcommand([]string{"node-mirror-probe", "--ready-file", filepath.Join(t.TempDir(), "ready")}, &out, io.Discard)
	if !ok || code != 1 || !strings.Contains(out.String(), "no apply has finished") {
		t.Errorf("probe %v %d %q", ok, code, out.String())
	}
}

func TestNodeMirrorSubcommandsLeaveTheManagersCommandLine(t *testing.T) {
	for _, args := range [][]string{nil, {"--leader-elect"}, {"--registry-image", "node-mirror"}} {
		if _, ok := runSubcommand(args, io.Discard, io.Discard); ok {
			t.Errorf("%q taken as a subcommand", args)
		}
	}
}

func TestNodeMirrorFlags(t *testing.T) {
	s, err := parseNodeMirrorFlags([]string{"--cleanup"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.config != "/etc/unireg/node-mirror/config.json" || s.writeDir != "/host/certs.d" ||
		s.readyFile != "/run/unireg/ready" || s.interval != 30*time.Second || !s.cleanup {
		t.Errorf("defaults %+v", s)
	}
	for _, args := range [][]string{{"--interval", "0s"}, {"--config", ""}, {"extra"}, {"--no-such-flag"}} {
		if _, err := parseNodeMirrorFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if code, ok := runSubcommand([]string{"node-mirror", "--interval", "-1s"}, io.Discard, io.Discard); !ok || code != 2 {
		t.Errorf("bad flag: %v %d", ok, code)
	}
}

// syncBuffer is a bytes.Buffer the agent's goroutine may write while the
// test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
