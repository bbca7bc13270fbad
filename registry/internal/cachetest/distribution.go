package cachetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// distributionStartTimeout bounds how long StartDistribution waits for
// GET /v2/ to answer 200; a loaded CI machine starts it in well under 1 s.
const distributionStartTimeout = 30 * time.Second

// Distribution is a running CNCF Distribution registry: anonymous, on
// loopback, storing into a temporary directory, stopped when the test ends.
type Distribution struct {
	// URL is the registry's base URL, http://127.0.0.1:PORT (no trailing
	// slash): the API is at URL+"/v2/".
	URL string
	// Dir is the storage root directory (Distribution's filesystem driver).
	Dir string

	cmd    *exec.Cmd
	exited chan struct{}
	out    *syncBuffer
	stop   sync.Once
}

// DistributionBinary returns the path of the Distribution binary: the
// environment variable UNIREG_DISTRIBUTION, else bin/distribution of the
// repository (found by walking up from the working directory to unireg's
// go.mod). When it does not exist the test is skipped, unless the
// environment variable CI is set: there a missing upstream is a failure,
// never a silent skip.
func DistributionBinary(t testing.TB) string {
	t.Helper()
	path := os.Getenv("UNIREG_DISTRIBUTION")
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			missingTool(t, err.Error())
		}
		path = filepath.Join(root, "bin", "distribution")
	}
	if _, err := os.Stat(path); err != nil {
		missingTool(t, fmt.Sprintf("CNCF Distribution not built (%v)", err))
	}
	return path
}

func missingTool(t testing.TB, why string) {
	t.Helper()
	msg := why + ": run make distribution (make test does)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// repoRoot walks up from the working directory to the directory whose
// go.mod declares the unireg module (a nested module's go.mod, such as
// hack/distribution's, is passed by).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(mod, []byte("module github.com/unireg/unireg\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no unireg go.mod above the working directory")
		}
		dir = parent
	}
}

// StartDistribution starts CNCF Distribution (see DistributionBinary) on a
// free loopback port with filesystem storage in t.TempDir(), deletes
// enabled and no authentication, waits until GET /v2/ answers 200 and stops
// it when the test ends. Its output is logged when the test fails.
func StartDistribution(t testing.TB) *Distribution {
	t.Helper()
	bin := DistributionBinary(t)
	dir := t.TempDir()
	// Another process can take the free port between our probe and
	// Distribution's listen: try again on a new port when it exits early.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		d, err := startDistribution(t, bin, dir)
		if err == nil {
			return d
		}
		lastErr = err
	}
	t.Fatalf("start CNCF Distribution: %v", lastErr)
	return nil
}

func startDistribution(t testing.TB, bin, dir string) (*Distribution, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	storageDir := filepath.Join(dir, "storage")
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(distributionConfig(addr, storageDir)), 0o600); err != nil {
		return nil, err
	}
	d := &Distribution{
		URL:    "http://" + addr,
		Dir:    storageDir,
		exited: make(chan struct{}),
		out:    &syncBuffer{},
	}
	d.cmd = exec.Command(bin, "serve", configPath)
	d.cmd.Dir = dir
	d.cmd.Env = distributionEnv()
	d.cmd.Stdout = d.out
	d.cmd.Stderr = d.out
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	if err := d.waitReady(); err != nil {
		d.Stop()
		return nil, fmt.Errorf("%w; output:\n%s", err, d.out.String())
	}
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("CNCF Distribution at %s, output:\n%s", d.URL, d.out.String())
		}
	})
	return d, nil
}

// distributionConfig is Distribution's configuration: version 0.1 of its
// format, every section the tests do not need left out or turned off.
func distributionConfig(addr, storageDir string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: cachetest
health:
  storagedriver:
    enabled: false
`, storageDir, addr)
}

// distributionEnv is the test's environment without REGISTRY_* (which
// Distribution reads as configuration overrides) and with OpenTelemetry's
// exporters off (Distribution v3 would otherwise try to export traces).
func distributionEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

func (d *Distribution) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), distributionStartTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/v2/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-d.exited:
			return errors.New("CNCF Distribution exited before it answered GET /v2/")
		case <-ctx.Done():
			return fmt.Errorf("GET %s/v2/ did not answer 200 within %s (last error: %v)", d.URL, distributionStartTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the registry (SIGTERM, then SIGKILL after 5 s) and waits for
// it to exit; requests to URL then fail with connection refused. It is
// called when the test ends; calling it earlier makes the upstream vanish.
func (d *Distribution) Stop() {
	d.stop.Do(func() {
		_ = d.cmd.Process.Signal(os.Interrupt)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
}

// syncBuffer collects the process's output; the process writes it from
// exec's copying goroutines while the test may read it.
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
