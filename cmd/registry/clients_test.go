package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestCraneClientPushesAndPullsThroughTheTokenFlow drives go-containerregistry
// (the library behind crane, ko and many CI tools) against the real server:
// it answers the Bearer challenge at the realm with the admin token.
func TestCraneClientPushesAndPullsThroughTheTokenFlow(t *testing.T) {
	s := startServer(t, "")
	host := strings.TrimPrefix(s.url, "http://")
	opts := []crane.Option{crane.Insecure, crane.WithAuth(&authn.Basic{Username: "ci", Password: s.adminToken()})}

	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/team/app:v1"
	if err := crane.Push(img, ref, opts...); err != nil {
		t.Fatalf("crane push: %v", err)
	}
	want, _ := img.Digest()
	got, err := crane.Digest(ref, opts...)
	if err != nil || got != want.String() {
		t.Fatalf("crane digest = %s, %v; want %s", got, err, want)
	}
	pulled, err := crane.Pull(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := pulled.Layers()
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest while reading
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("pull layer: %v", err)
		}
		rc.Close()
	}

	// Cross-repository copy mounts blobs; tags and catalog list them.
	if err := crane.Copy(ref, host+"/team/copy:v1", opts...); err != nil {
		t.Fatalf("crane copy: %v", err)
	}
	if err := crane.Tag(ref, "latest", opts...); err != nil {
		t.Fatalf("crane tag: %v", err)
	}
	tags, err := crane.ListTags(host+"/team/app", opts...)
	if err != nil || strings.Join(tags, ",") != "latest,v1" {
		t.Fatalf("tags = %v, %v", tags, err)
	}
	repos, err := crane.Catalog(host, opts...)
	if err != nil || strings.Join(repos, ",") != "team/app,team/copy" {
		t.Fatalf("catalog = %v, %v", repos, err)
	}

	// A multi-platform index and a referrer (an artifact with a subject).
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img})
	idxRef, _ := name.ParseReference(host+"/team/app:multi", name.Insecure)
	auth := remote.WithAuth(&authn.Basic{Username: "ci", Password: s.adminToken()})
	if err := remote.WriteIndex(idxRef, idx, auth); err != nil {
		t.Fatalf("write index: %v", err)
	}
	desc, err := remote.Head(idxRef, auth)
	if err != nil {
		t.Fatal(err)
	}
	sig := mutate.Subject(mutate.ConfigMediaType(empty.Image, types.MediaType("application/vnd.example.sig")), *desc).(v1.Image)
	sigDigest, _ := sig.Digest()
	sigRef, _ := name.ParseReference(host+"/team/app@"+sigDigest.String(), name.Insecure)
	if err := remote.Write(sigRef, sig, auth); err != nil {
		t.Fatalf("write referrer: %v", err)
	}
	referrers, err := remote.Referrers(idxRef.Context().Digest(desc.Digest.String()), auth)
	if err != nil {
		t.Fatalf("referrers: %v", err)
	}
	refIdx, _ := referrers.IndexManifest()
	if len(refIdx.Manifests) != 1 || refIdx.Manifests[0].Digest != sigDigest || refIdx.Manifests[0].ArtifactType != "application/vnd.example.sig" {
		t.Fatalf("referrers = %+v", refIdx.Manifests)
	}

	// Wrong credentials are refused by the token flow.
	bad := []crane.Option{crane.Insecure, crane.WithAuth(&authn.Basic{Username: "ci", Password: "unireg_wrong"})}
	if _, err := crane.Digest(ref, bad...); err == nil {
		t.Fatal("wrong credentials could read")
	}
	if _, err := crane.Digest(ref, crane.Insecure); err == nil {
		t.Fatal("anonymous could read")
	}
}

// residentKiB reads a field (VmRSS, VmHWM) of /proc/PID/status.
func residentKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// patternReader yields n bytes of a repeated random-looking block.
type patternReader struct {
	block []byte
	left  int64
	off   int
}

func newPatternReader(n int64) *patternReader {
	block := make([]byte, 1<<20)
	x := uint32(2463534242)
	for i := range block {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		block[i] = byte(x)
	}
	return &patternReader{block: block, left: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := copy(b, p.block[p.off:])
	p.off = (p.off + n) % len(p.block)
	p.left -= int64(n)
	return n, nil
}

// TestLargeBlobPushAndPullKeepMemoryFlat pushes a 1 GiB blob in two chunks
// (one with Content-Range, one streamed without length) and pulls it back,
// and checks that the server's peak resident memory grew by less than 64 MiB.
func TestLargeBlobPushAndPullKeepMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 1 GiB")
	}
	const size = 1 << 30
	s := startServer(t, "")
	token := s.adminToken()
	s.status("GET", "/v2/", token)
	pid := s.cmd.Process.Pid
	baseline := residentKiB(t, pid, "VmRSS")

	resp := s.request("POST", "/v2/big/blob/blobs/uploads/", token, nil)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 202 || loc == "" {
		t.Fatalf("start upload: %d", resp.StatusCode)
	}
	src := newPatternReader(size)
	hash := sha256.New()
	body := io.TeeReader(src, hash)

	first := int64(size / 2)
	req, _ := http.NewRequest("PATCH", s.url+loc, io.LimitReader(body, first))
	req.SetBasicAuth("u", token)
	req.ContentLength = first
	req.Header.Set("Content-Range", fmt.Sprintf("0-%d", first-1))
	patch(t, req, "0-"+strconv.FormatInt(first-1, 10))

	req, _ = http.NewRequest("PATCH", s.url+loc, io.NopCloser(body)) // chunked: no length
	req.SetBasicAuth("u", token)
	patch(t, req, "0-"+strconv.Itoa(size-1))

	dg := "sha256:" + hex.EncodeToString(hash.Sum(nil))
	req, _ = http.NewRequest("PUT", s.url+loc+"?digest="+dg, nil)
	req.SetBasicAuth("u", token)
	r2, err := http.DefaultClient.Do(req)
	if err != nil || r2.StatusCode != 201 {
		t.Fatalf("finish upload: %v %v", err, r2.Status)
	}
	r2.Body.Close()

	pull := s.request("GET", "/v2/big/blob/blobs/"+dg, token, nil)
	got := sha256.New()
	n, err := io.Copy(got, pull.Body)
	pull.Body.Close()
	if err != nil || n != size || "sha256:"+hex.EncodeToString(got.Sum(nil)) != dg {
		t.Fatalf("pull: %d bytes, %v, digest mismatch=%v", n, err, "sha256:"+hex.EncodeToString(got.Sum(nil)) != dg)
	}
	peak := residentKiB(t, pid, "VmHWM")
	t.Logf("server resident memory: %d KiB before, peak %d KiB (1 GiB pushed and pulled)", baseline, peak)
	if growth := peak - baseline; growth > 64<<10 {
		t.Fatalf("peak resident memory grew by %d KiB while streaming 1 GiB; want < 64 MiB", growth)
	}
}

func patch(t *testing.T, req *http.Request, wantRange string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 202 || resp.Header.Get("Range") != wantRange {
		t.Fatalf("PATCH: %s, Range %q, want %s", resp.Status, resp.Header.Get("Range"), wantRange)
	}
}

// TestSIGTERMLetsInFlightUploadFinish stops the server in the middle of an
// upload: the server stops accepting, the upload completes, the process exits 0.
func TestSIGTERMLetsInFlightUploadFinish(t *testing.T) {
	s := startServer(t, "")
	token := s.adminToken()
	resp := s.request("POST", "/v2/a/blobs/uploads/", token, nil)
	resp.Body.Close()
	loc := resp.Header.Get("Location")

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PATCH", s.url+loc, pr)
	req.SetBasicAuth("u", token)
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("in-flight PATCH: %v", err)
			done <- nil
			return
		}
		done <- resp
	}()
	pw.Write(make([]byte, 64<<10))
	eventually(t, 5*time.Second, "upload in progress", func() bool {
		r := s.request("GET", "/metrics", "", nil)
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return strings.Contains(string(b), "unireg_uploads_in_progress 1")
	})
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "new connections refused", func() bool {
		_, err := http.Get(s.url + "/healthz")
		return err != nil
	})
	pw.Write(make([]byte, 64<<10))
	pw.Close()
	r := <-done
	if r == nil {
		t.FailNow()
	}
	r.Body.Close()
	if r.StatusCode != 202 || r.Header.Get("Range") != "0-131071" {
		t.Fatalf("in-flight upload after SIGTERM: %s, Range %q", r.Status, r.Header.Get("Range"))
	}
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server still running 10s after SIGTERM with nothing in flight")
	}
}

// TestUploadStartedOnOneProcessFinishesOnAnother: two servers on one storage
// (one data dir, or one bucket in the S3 run), a chunked upload started on
// the first and finished on the second.
func TestUploadStartedOnOneProcessFinishesOnAnother(t *testing.T) {
	dir := t.TempDir()
	a := startServer(t, dir)
	b := startServer(t, dir)
	token := a.adminToken()
	content := bytes.Repeat([]byte("replica "), 1<<17) // 1 MiB
	resp := a.request("POST", "/v2/shared/blobs/uploads/", token, nil)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	req, _ := http.NewRequest("PATCH", a.url+loc, bytes.NewReader(content[:300000]))
	req.SetBasicAuth("u", token)
	req.Header.Set("Content-Range", "0-299999")
	patch(t, req, "0-299999")

	sum := sha256.Sum256(content)
	dg := "sha256:" + hex.EncodeToString(sum[:])
	req, _ = http.NewRequest("PUT", b.url+loc+"?digest="+dg, bytes.NewReader(content[300000:]))
	req.SetBasicAuth("u", token)
	req.Header.Set("Content-Range", fmt.Sprintf("300000-%d", len(content)-1))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 201 {
		t.Fatalf("finish on the second process: %s", r.Status)
	}
	for _, srv := range []*server{a, b} {
		got := srv.request("GET", "/v2/shared/blobs/"+dg, token, nil)
		body, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if !bytes.Equal(body, content) {
			t.Fatalf("%s serves %d bytes, not the uploaded blob", srv.url, len(body))
		}
	}
}
