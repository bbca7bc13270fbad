package s3

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// server is the MinIO every test of the package talks to, started by
// TestMain; nil when the binary is missing (skipReason says why).
var (
	server     *minioServer
	skipReason string
)

func TestMain(m *testing.M) { os.Exit(runWithMinio(m)) }

func runWithMinio(m *testing.M) int {
	bin, err := minioBinary()
	if err != nil {
		skipReason = err.Error()
		return m.Run()
	}
	srv, err := startMinio(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start MinIO:", err)
		return 1
	}
	defer srv.stop()
	server = srv
	return m.Run()
}

// requireMinio skips t when no MinIO binary was found.
func requireMinio(t *testing.T) *minioServer {
	t.Helper()
	if server == nil {
		t.Skip("needs a MinIO server: " + skipReason)
	}
	return server
}

// minioBinary finds MinIO: $UNIREG_MINIO, or tools/bin/minio of the module
// (the error says how to build it).
func minioBinary() (string, error) {
	if p := os.Getenv("UNIREG_MINIO"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("UNIREG_MINIO: %w", err)
		}
		return p, nil
	}
	p, err := filepath.Abs(filepath.Join("..", "..", "..", "tools", "bin", "minio"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no MinIO server at %s and UNIREG_MINIO unset: build it with "+
			"GOBIN=$PWD/tools/bin go install github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c", p)
	}
	return p, nil
}

type minioServer struct {
	endpoint             string
	accessKey, secretKey string
	dir                  string
	cmd                  *exec.Cmd
	exited               chan error
	buckets              atomic.Int64
}

func startMinio(bin string) (*minioServer, error) {
	var lastErr error
	for range 3 { // another process may take a port between picking and binding
		srv, err := tryStartMinio(bin)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func tryStartMinio(bin string) (*minioServer, error) {
	dir, err := os.MkdirTemp("", "unireg-minio-*")
	if err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr, console := addrs[0], addrs[1]
	log, err := os.Create(filepath.Join(dir, "minio.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer log.Close()
	s := &minioServer{
		endpoint:  "http://" + addr,
		accessKey: "unireg-test",
		secretKey: rand.Text(),
		dir:       dir,
		exited:    make(chan error, 1),
	}
	s.cmd = exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", addr, "--console-address", console, "--quiet")
	s.cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.accessKey,
		"MINIO_ROOT_PASSWORD="+s.secretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = dieWithParent()
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { s.exited <- s.cmd.Wait() }()
	if err := s.waitLive(60 * time.Second); err != nil {
		s.stop()
		out, _ := os.ReadFile(filepath.Join(dir, "minio.log"))
		return nil, fmt.Errorf("%w; log:\n%s", err, out)
	}
	return s, nil
}

// freeAddrs returns n distinct loopback addresses nothing listens on.
func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("no free loopback port: %w", err)
		}
		defer l.Close() // held until all are picked, so they differ
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

func (s *minioServer) waitLive(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+"/minio/health/live", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("MinIO exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("MinIO not live after %v", timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *minioServer) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	os.RemoveAll(s.dir)
}

// options returns the options of a driver on a fresh bucket.
func (s *minioServer) options() Options {
	return Options{
		Endpoint:     s.endpoint,
		Bucket:       fmt.Sprintf("unireg-test-%04d", s.buckets.Add(1)),
		AccessKey:    s.accessKey,
		SecretKey:    s.secretKey,
		CreateBucket: true,
	}
}

// newTestDriver returns a driver on a fresh bucket, with opts changed by
// each of change.
func newTestDriver(t *testing.T, change ...func(*Options)) *Driver {
	t.Helper()
	opts := requireMinio(t).options()
	for _, c := range change {
		c(&opts)
	}
	d, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New(bucket %s): %v", opts.Bucket, err)
	}
	return d
}

// bucketObjects returns the name of every object in d's bucket.
func bucketObjects(t *testing.T, d *Driver) []string {
	t.Helper()
	var names []string
	for oi := range d.client.ListObjectsIter(t.Context(), d.bucket, listAll) {
		if oi.Err != nil {
			t.Fatalf("list bucket %s: %v", d.bucket, oi.Err)
		}
		names = append(names, oi.Key)
	}
	return names
}
