package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// runGCCommand runs `registry gc` on the storage of dataDir (the bucket
// the S3 run gives it), with args.
func runGCCommand(t *testing.T, dataDir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	all := []string{"gc", "--data-dir", dataDir, "--log-format", "json"}
	if endpoint := os.Getenv("UNIREG_S3_ENDPOINT"); endpoint != "" {
		all = append(all, "--s3-endpoint", endpoint, "--s3-bucket", fmt.Sprintf("t-%x", sha256.Sum256([]byte(dataDir)))[:40])
	}
	cmd := exec.Command(registryBin, append(all, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// pushDeletedImage pushes a one-layer image to repo and deletes its
// manifest; it returns the layer's digest, which nothing references then.
func pushDeletedImage(t *testing.T, base, repo string) digest.Digest {
	t.Helper()
	do := func(method, path, ctype string, body []byte, want int) *http.Response {
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d", method, path, resp.StatusCode, want)
		}
		return resp
	}
	layer := []byte("layer " + time.Now().String())
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	ld, cd := digest.FromBytes(layer), digest.FromBytes(config)
	do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+ld.String(), "application/octet-stream", layer, http.StatusCreated)
	do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+cd.String(), "application/octet-stream", config, http.StatusCreated)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		cd, len(config), ld, len(layer))
	md := digest.FromString(manifest)
	do("PUT", "/v2/"+repo+"/manifests/1", "application/vnd.oci.image.manifest.v1+json", []byte(manifest), http.StatusCreated)
	do("DELETE", "/v2/"+repo+"/manifests/"+md.String(), "", nil, http.StatusAccepted)
	return ld
}

// `registry gc --dry-run --json` lists every key it would delete and
// deletes nothing; `registry gc` then deletes exactly those, beside the
// running server.
func TestGCCommandDryRunThenCollect(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "--anonymous", "*", "--gc-interval", "0")
	ld := pushDeletedImage(t, s.url, "team/app")
	time.Sleep(1300 * time.Millisecond) // past --gc-grace and the collector's second to spare (gc.TimeSpare)
	stdout, stderr, err := runGCCommand(t, dataDir, "--dry-run", "--json", "--gc-grace", "10ms")
	if err != nil {
		t.Fatalf("registry gc --dry-run --json: %v\n%s", err, stderr)
	}
	var dry struct {
		DryRun  bool
		Total   struct{ Objects int }
		Deleted []struct{ Kind, Key, Digest string }
	}
	if err := json.Unmarshal([]byte(stdout), &dry); err != nil {
		t.Fatalf("not a JSON report: %v\n%s", err, stdout)
	}
	var keys []string
	found := false
	for _, d := range dry.Deleted {
		keys = append(keys, d.Key)
		found = found || (d.Kind == "blob" && d.Digest == ld.String())
	}
	if !dry.DryRun || !found || dry.Total.Objects != len(dry.Deleted) {
		t.Fatalf("dry run report %+v does not list the unreferenced layer %s", dry, ld)
	}
	resp, err := http.Get(s.url + "/v2/team/app/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the dry run deleted the layer: GET %d", resp.StatusCode)
	}

	stdout, stderr, err = runGCCommand(t, dataDir, "--gc-grace", "10ms")
	if err != nil {
		t.Fatalf("registry gc: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, fmt.Sprintf("deleted %d objects", len(keys))) {
		t.Fatalf("registry gc printed\n%s\nwant the %d objects of the dry run", stdout, len(keys))
	}
	resp, err = http.Get(s.url + "/v2/team/app/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after registry gc, GET of the unreferenced layer: %d, want 404", resp.StatusCode)
	}
}

// A bad retention rule stops `registry gc` (and the server) with a message
// naming the flag and the bad part.
func TestGCCommandRefusesABadRetentionRule(t *testing.T) {
	_, stderr, err := runGCCommand(t, t.TempDir(), "--retention", "ci/*=keep-tags=(")
	if err == nil || !strings.Contains(stderr, "retention") || !strings.Contains(stderr, "keep-tags") {
		t.Fatalf("registry gc with a bad rule: %v\n%s", err, stderr)
	}
}
