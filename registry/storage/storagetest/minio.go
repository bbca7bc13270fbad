package storagetest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// MinIO returns the endpoint and credentials of $UNIREG_S3_ENDPOINT
// (hack/with-minio.sh sets it), or starts a MinIO for t from
// $UNIREG_MINIO or tools/bin/minio (`make minio`); it skips t when neither
// is possible.
func MinIO(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	if endpoint := os.Getenv("UNIREG_S3_ENDPOINT"); endpoint != "" {
		return endpoint, os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	bin := os.Getenv("UNIREG_MINIO")
	if bin == "" {
		if root, err := moduleRoot(); err == nil {
			bin = filepath.Join(root, "tools", "bin", "minio")
		}
	}
	if _, err := os.Stat(bin); bin == "" || err != nil {
		t.Skip("no S3: set UNIREG_S3_ENDPOINT (hack/with-minio.sh) or build tools/bin/minio (make minio)")
	}
	accessKey, secretKey = "storagetest", rand.Text()
	var lastErr error
	for range 3 { // another process may take the port between picking and binding
		addr, console := freeLoopbackAddr(t), freeLoopbackAddr(t)
		cmd := exec.Command(bin, "server", t.TempDir(), "--address", addr, "--console-address", console, "--quiet")
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+accessKey, "MINIO_ROOT_PASSWORD="+secretKey,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = waitLive(addr, exited); lastErr == nil {
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })
			return "http://" + addr, accessKey, secretKey
		}
		cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("start MinIO: %v", lastErr)
	return "", "", ""
}

// moduleRoot is the nearest directory above the working directory that
// holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func freeLoopbackAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitLive(addr string, exited <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/minio/health/live"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("MinIO exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("MinIO not live after 60s")
}
