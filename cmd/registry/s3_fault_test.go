package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// minio is a MinIO server this test controls: it can be stopped and started
// again on the same address and data.
type minio struct {
	t                    testing.TB
	bin, dir, addr       string
	accessKey, secretKey string
	cmd                  *exec.Cmd
}

func newMinio(t testing.TB) *minio {
	t.Helper()
	bin := os.Getenv("UNIREG_MINIO")
	if bin == "" {
		bin, _ = filepath.Abs(filepath.Join("..", "..", "tools", "bin", "minio"))
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skip("no MinIO server binary: run hack/install-minio.sh (make test does)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m := &minio{t: t, bin: bin, dir: t.TempDir(), addr: addr, accessKey: "fault-test", secretKey: rand.Text()}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *minio) start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, "server", m.dir, "--address", m.addr, "--console-address", "127.0.0.1:0", "--quiet")
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.accessKey, "MINIO_ROOT_PASSWORD="+m.secretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	eventually(m.t, 60*time.Second, "MinIO live", func() bool {
		resp, err := http.Get("http://" + m.addr + "/minio/health/live")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// stop kills MinIO at once, as a crash or a network cut would.
func (m *minio) stop() {
	if m.cmd != nil && m.cmd.ProcessState == nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
	}
}

// TestS3OutageGivesClearErrorsAndLosesNothing stops MinIO in the middle of a
// blob upload and of an npm publish: the registry answers 503 with
// Retry-After (never a half-written object), /readyz says why, and once MinIO
// is back everything works again and nothing of the interrupted writes shows.
func TestS3OutageGivesClearErrorsAndLosesNothing(t *testing.T) {
	if os.Getenv("UNIREG_S3_ENDPOINT") != "" {
		t.Skip("brings its own MinIO: it runs once, in the filesystem pass")
	}
	m := newMinio(t)
	s := startServerEnv(t, "", []string{"AWS_ACCESS_KEY_ID=" + m.accessKey, "AWS_SECRET_ACCESS_KEY=" + m.secretKey},
		"--s3-endpoint", "http://"+m.addr, "--s3-bucket", "fault")
	token := s.adminToken()
	if got := s.status("GET", "/readyz", ""); got != 200 {
		t.Fatalf("readyz with MinIO up: %d", got)
	}

	// A blob upload and a publish are streaming when MinIO goes away.
	resp := s.request("POST", "/v2/team/app/blobs/uploads/", token, nil)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	blob := bytes.Repeat([]byte("interrupted layer "), 1<<16)
	blobReader, blobWriter := io.Pipe()
	blobDone := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("PATCH", s.url+loc, blobReader)
		req.SetBasicAuth("u", token)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			r = nil
		}
		blobDone <- r
	}()
	pubBody := publishBody("outage-pkg", "1.0.0", blob)
	pubReader, pubWriter := io.Pipe()
	pubDone := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("PUT", s.url+"/npm/outage-pkg", pubReader)
		req.Header.Set("Authorization", "Bearer "+token)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			r = nil
		}
		pubDone <- r
	}()
	blobWriter.Write(blob[:len(blob)/2])
	pubWriter.Write(pubBody[:len(pubBody)/2])
	eventually(t, 5*time.Second, "both uploads streaming", func() bool {
		r := s.request("GET", "/metrics", "", nil)
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return strings.Contains(string(b), "unireg_uploads_in_progress 2")
	})
	m.stop()
	blobWriter.Write(blob[len(blob)/2:])
	blobWriter.Close()
	pubWriter.Write(pubBody[len(pubBody)/2:])
	pubWriter.Close()
	for what, ch := range map[string]chan *http.Response{"blob PATCH": blobDone, "npm publish": pubDone} {
		r := <-ch
		if r == nil {
			t.Fatalf("%s: no answer", what)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s during the outage: %d %s (Retry-After %q), want 503 with Retry-After", what, r.StatusCode, b, r.Header.Get("Retry-After"))
		}
	}
	resp = s.request("GET", "/readyz", "", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), m.addr) {
		t.Fatalf("readyz during the outage: %d %q; want 503 naming the endpoint", resp.StatusCode, b)
	}
	if got := s.status("GET", "/v2/team/app/tags/list", token); got != 503 {
		t.Fatalf("a read during the outage: %d, want 503", got)
	}

	// MinIO comes back: the registry recovers by itself.
	m.start()
	eventually(t, 30*time.Second, "readyz recovers", func() bool { return s.status("GET", "/readyz", "") == 200 })
	dg := fmt.Sprintf("sha256:%x", sha256Sum(blob))
	if got := s.status("HEAD", "/v2/team/app/blobs/"+dg, token); got != 404 {
		t.Fatalf("the interrupted blob is visible: %d", got)
	}
	if got := s.status("GET", "/npm/outage-pkg", token); got != 404 {
		t.Fatalf("the interrupted package is visible: %d", got)
	}
	// The same writes succeed now.
	r2 := s.request("POST", "/v2/team/app/blobs/uploads/?digest="+dg, token, bytes.NewReader(blob))
	r2.Body.Close()
	if r2.StatusCode != 201 {
		t.Fatalf("upload after recovery: %s", r2.Status)
	}
	req, _ := http.NewRequest("PUT", s.url+"/npm/outage-pkg", bytes.NewReader(pubBody))
	req.Header.Set("Authorization", "Bearer "+token)
	r3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != 201 {
		t.Fatalf("publish after recovery: %s", r3.Status)
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// TestS3RedirectServesBlobsFromTheBucket: with --s3-redirect a blob GET is a
// 307 to a presigned URL of the bucket, which serves the blob without
// registry credentials; crane (following the redirect) pulls through it.
func TestS3RedirectServesBlobsFromTheBucket(t *testing.T) {
	if os.Getenv("UNIREG_S3_ENDPOINT") != "" {
		t.Skip("brings its own MinIO: it runs once, in the filesystem pass")
	}
	m := newMinio(t)
	s := startServerEnv(t, "", []string{"AWS_ACCESS_KEY_ID=" + m.accessKey, "AWS_SECRET_ACCESS_KEY=" + m.secretKey},
		"--s3-endpoint", "http://"+m.addr, "--s3-bucket", "redirect", "--s3-redirect")
	token := s.adminToken()
	blob := []byte("served by the bucket itself")
	dg := fmt.Sprintf("sha256:%x", sha256Sum(blob))
	r := s.request("POST", "/v2/a/blobs/uploads/?digest="+dg, token, bytes.NewReader(blob))
	r.Body.Close()
	if r.StatusCode != 201 {
		t.Fatalf("push: %s", r.Status)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", s.url+"/v2/a/blobs/"+dg, nil)
	req.SetBasicAuth("u", token)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, "http://"+m.addr+"/redirect/") {
		t.Fatalf("blob GET: %s, Location %q; want 307 to the bucket", resp.Status, loc)
	}
	got, err := http.Get(loc) // no registry credentials
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(body, blob) {
		t.Fatalf("presigned URL served %q", body)
	}
	// HEAD still answers from the registry, and a blob the repository does
	// not have is never redirected.
	if got := s.status("HEAD", "/v2/a/blobs/"+dg, token); got != 200 {
		t.Fatalf("HEAD: %d", got)
	}
	if got := s.status("GET", "/v2/b/blobs/"+dg, token); got != 404 {
		t.Fatalf("GET in another repository: %d", got)
	}
}
