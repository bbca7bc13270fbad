package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/s3"
)

// runGCCommand runs `registry gc` on the storage of dataDir (the bucket
// the S3 run gives it), with args.
func runGCCommand(t *testing.T, dataDir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	all := []string{"gc", "--data-dir", dataDir, "--log-format", "json"}
	if endpoint := os.Getenv("UNIREG_S3_ENDPOINT"); endpoint != "" {
		all = append(all, "--s3-endpoint", endpoint, "--s3-bucket", testBucket(dataDir))
	}
	cmd := exec.Command(registryBin, append(all, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// testBucket is the bucket startServer gives dataDir in the S3 run.
func testBucket(dataDir string) string {
	return fmt.Sprintf("t-%x", sha256.Sum256([]byte(dataDir)))[:40]
}

// pushDeletedImage pushes a one-layer image to repo and deletes its
// manifest; it returns the layer's digest, which nothing references then.
func pushDeletedImage(t *testing.T, base, repo string) digest.Digest {
	t.Helper()
	md, ld := pushImage(t, base, repo, "1")
	req, _ := http.NewRequest("DELETE", base+"/v2/"+repo+"/manifests/"+md.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE manifest %s: %d", md, resp.StatusCode)
	}
	return ld
}

// pushImage pushes a one-layer image of its own to repo:tag and returns
// the manifest's and the layer's digests.
func pushImage(t *testing.T, base, repo, tag string) (manifestDigest, layerDigest digest.Digest) {
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
	layer := []byte("layer " + repo + ":" + tag + " " + time.Now().String())
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	ld, cd := digest.FromBytes(layer), digest.FromBytes(config)
	do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+ld.String(), "application/octet-stream", layer, http.StatusCreated)
	do("POST", "/v2/"+repo+"/blobs/uploads/?digest="+cd.String(), "application/octet-stream", config, http.StatusCreated)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		cd, len(config), ld, len(layer))
	md := digest.FromString(manifest)
	do("PUT", "/v2/"+repo+"/manifests/"+tag, "application/vnd.oci.image.manifest.v1+json", []byte(manifest), http.StatusCreated)
	return md, ld
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

// storeOf opens the storage the servers of dataDir use, as the test's own
// client of it.
func storeOf(t *testing.T, dataDir string) storage.Driver {
	t.Helper()
	if endpoint := os.Getenv("UNIREG_S3_ENDPOINT"); endpoint != "" {
		d, err := s3.New(t.Context(), s3.Options{Endpoint: endpoint, Bucket: testBucket(dataDir), Region: s3.DefaultRegion,
			AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), CreateBucket: true})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := filesystem.New(filepath.Join(dataDir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// storeContents is every key of the store with its size and content hash.
func storeContents(t *testing.T, store storage.Driver) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := storage.Walk(t.Context(), store, "", func(info storage.Info) error {
		b, _, err := storage.ReadAll(t.Context(), store, info.Key)
		if err != nil {
			return err
		}
		out[info.Key] = fmt.Sprintf("%d %s", len(b), digest.FromBytes(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A dry run moves and deletes nothing (every key of the store is there
// after it, byte for byte), its JSON holds every key of the report, and
// the human summary says it was a dry run.
func TestGCCommandDryRunChangesNothingAndReportsEveryKey(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "--anonymous", "*", "--gc-interval", "0")
	pushDeletedImage(t, s.url, "team/gone")
	pushImage(t, s.url, "team/app", "dev")
	pushImage(t, s.url, "team/app", "release")
	// Past the grace and the collector's second to spare, so both dry runs
	// below see the same unreferenced blobs.
	time.Sleep(gc.TimeSpare + 200*time.Millisecond)
	store := storeOf(t, dataDir)
	before := storeContents(t, store)
	// The retention rule and the short grace give the dry run something to
	// report: the unreferenced blobs of team/gone and the tag team/app:dev.
	gcArgs := []string{"--dry-run", "--gc-grace", "10ms", "--retention", "team/app=keep-tags=^release$"}
	stdout, stderr, err := runGCCommand(t, dataDir, append(gcArgs, "--json")...)
	if err != nil {
		t.Fatalf("registry gc --dry-run --json: %v\n%s", err, stderr)
	}
	var rep map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("not a JSON report: %v\n%s", err, stdout)
	}
	for _, key := range []string{"start", "durationNanos", "dryRun", "total", "byKind", "deleted"} {
		if _, ok := rep[key]; !ok {
			t.Errorf("the JSON report lacks %q:\n%s", key, stdout)
		}
	}
	var deleted []map[string]any
	json.Unmarshal(rep["deleted"], &deleted)
	tagged := false
	for _, d := range deleted {
		for _, key := range []string{"protocol", "kind", "key", "bytes", "reason"} {
			if _, ok := d[key]; !ok {
				t.Errorf("a deletion lacks %q: %v", key, d)
			}
		}
		tagged = tagged || (d["kind"] == "tag" && d["repository"] == "team/app" && d["tag"] == "dev")
	}
	if string(rep["dryRun"]) != "true" || !tagged {
		t.Fatalf("dry run report does not say it is one or lacks tag team/app:dev:\n%s", stdout)
	}
	if after := storeContents(t, store); !maps.Equal(before, after) {
		t.Fatalf("the dry run changed the store:\nbefore %v\nafter  %v", before, after)
	}

	stdout, stderr, err = runGCCommand(t, dataDir, gcArgs...)
	if err != nil {
		t.Fatalf("registry gc --dry-run: %v\n%s", err, stderr)
	}
	for _, want := range []string{"would delete tag team/app:dev (retention)", "would delete " + fmt.Sprint(len(deleted)) + " objects", "dry run: nothing deleted"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "team/app:release") || strings.Contains(stderr, `"msg":"listening"`) {
		t.Errorf("the summary names the kept tag, or the command listened:\n%s\n%s", stdout, stderr)
	}
	if after := storeContents(t, store); !maps.Equal(before, after) {
		t.Fatal("the second dry run changed the store")
	}
}

// Retention through the command: a real run deletes the tags no rule
// keeps, and only those.
func TestGCCommandAppliesRetention(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "--anonymous", "*", "--gc-interval", "0")
	for _, tag := range []string{"dev-1", "dev-2", "v1.0", "v1.1"} {
		pushImage(t, s.url, "ci/app", tag)
	}
	stdout, stderr, err := runGCCommand(t, dataDir, "--retention", "ci/*=keep-tags=^v")
	if err != nil {
		t.Fatalf("registry gc: %v\n%s", err, stderr)
	}
	for _, want := range []string{"deleted tag ci/app:dev-1 (retention)", "deleted tag ci/app:dev-2 (retention)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the summary lacks %q:\n%s", want, stdout)
		}
	}
	resp, err := http.Get(s.url + "/v2/ci/app/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Tags []string }
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if !slices.Equal(list.Tags, []string{"v1.0", "v1.1"}) {
		t.Fatalf("tags after registry gc: %q, want the v tags only", list.Tags)
	}
}

// While another process holds the collector's lease, a real run says so
// and fails, deleting nothing; a dry run, which takes no lease, still runs.
func TestGCCommandSaysWhenAnotherReplicaIsCollecting(t *testing.T) {
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "--anonymous", "*", "--gc-interval", "0")
	ld := pushDeletedImage(t, s.url, "team/gone")
	store := storeOf(t, dataDir)
	lease := &gc.Lease{Store: store, Holder: "another-replica", TTL: time.Minute}
	if held, err := lease.Acquire(t.Context()); !held || err != nil {
		t.Fatalf("taking the lease: %v, %v", held, err)
	}
	stdout, stderr, err := runGCCommand(t, dataDir, "--gc-grace", "1ms")
	if err == nil || !strings.Contains(stderr, "another replica is collecting") {
		t.Fatalf("registry gc beside a held lease: %v\nstdout %s\nstderr %s", err, stdout, stderr)
	}
	if code := s.status("GET", "/v2/team/gone/blobs/"+ld.String(), ""); code != http.StatusOK {
		t.Fatalf("the refused run deleted the layer: GET %d", code)
	}
	if _, stderr, err := runGCCommand(t, dataDir, "--gc-grace", "1ms", "--dry-run=true"); err != nil {
		t.Fatalf("a dry run beside a held lease: %v\n%s", err, stderr)
	}
	if err := lease.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(gc.TimeSpare + 200*time.Millisecond) // past the grace and its second to spare
	stdout, stderr, err = runGCCommand(t, dataDir, "--gc-grace", "1ms")
	if err != nil {
		t.Fatalf("registry gc after the lease was released: %v\n%s", err, stderr)
	}
	if code := s.status("GET", "/v2/team/gone/blobs/"+ld.String(), ""); code != http.StatusNotFound {
		t.Fatalf("after the run, GET of the unreferenced layer: %d, want 404\n%s\n%s", code, stdout, stderr)
	}
}

// Referrers attached by the real oras CLI (an SBOM on an image, a
// signature on the SBOM) live while their subject lives and go with it:
// content and all, after the grace.
func TestGCOrasAttachedReferrersLiveAndDieWithSubject(t *testing.T) {
	oras := clientCLI(t, "oras")
	dataDir := t.TempDir()
	s := startServer(t, dataDir, "--anonymous", "*", "--gc-interval", "0")
	host := strings.TrimPrefix(s.url, "http://")
	home := t.TempDir()
	for name, body := range map[string]string{"app.txt": "the app\n", "sbom.json": `{"sbom":true}`, "sig.txt": "signed\n"} {
		if err := os.WriteFile(filepath.Join(home, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	digestOf := "--format=go-template={{.digest}}"
	subject := strings.TrimSpace(runCLI(t, home, oras, "push", "--plain-http", digestOf, host+"/team/art:v1", "app.txt:text/plain"))
	sbom := strings.TrimSpace(runCLI(t, home, oras, "attach", "--plain-http", digestOf, "--artifact-type", "application/vnd.example.sbom",
		host+"/team/art:v1", "sbom.json:application/json"))
	sig := strings.TrimSpace(runCLI(t, home, oras, "attach", "--plain-http", digestOf, "--artifact-type", "application/vnd.example.signature",
		host+"/team/art@"+sbom, "sig.txt:text/plain"))
	for _, d := range []string{subject, sbom, sig} {
		if _, err := digest.Parse(d); err != nil {
			t.Fatalf("oras printed %q for a digest", d)
		}
	}
	// Every blob the three manifests hold (config and layers).
	manifestBlobs := func(d string) []string {
		resp, err := http.Get(s.url + "/v2/team/art/manifests/" + d)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET manifest %s: %d %v", d, resp.StatusCode, err)
		}
		out := []string{m.Config.Digest}
		for _, l := range m.Layers {
			out = append(out, l.Digest)
		}
		return out
	}
	referrerBlobs := append(manifestBlobs(sbom), manifestBlobs(sig)...)
	status := func(path string) int {
		resp, err := http.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	collect := func() string {
		t.Helper()
		time.Sleep(1300 * time.Millisecond) // past --gc-grace and gc.TimeSpare
		stdout, stderr, err := runGCCommand(t, dataDir, "--json", "--gc-grace", "10ms")
		if err != nil {
			t.Fatalf("registry gc: %v\n%s", err, stderr)
		}
		return stdout
	}

	collect()
	if out := runCLI(t, home, oras, "discover", "--plain-http", "--format", "json", host+"/team/art:v1"); !strings.Contains(out, sbom) || !strings.Contains(out, sig) {
		t.Fatalf("after a collection oras discover lost a referrer of the tagged image:\n%s", out)
	}
	pulled := filepath.Join(home, "pulled")
	runCLI(t, home, oras, "pull", "--plain-http", "-o", pulled, host+"/team/art@"+sig)
	if b, err := os.ReadFile(filepath.Join(pulled, "sig.txt")); err != nil || string(b) != "signed\n" {
		t.Fatalf("the signature's content after a collection: %q %v", b, err)
	}

	// The subject goes: its referrers, and theirs, go with it.
	runCLI(t, home, oras, "manifest", "delete", "--plain-http", "--force", host+"/team/art@"+subject)
	var rep struct {
		Deleted []struct{ Kind, Digest, Reason string }
	}
	if err := json.Unmarshal([]byte(collect()), &rep); err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, d := range rep.Deleted {
		if d.Kind == "manifest" {
			reasons[d.Digest] = d.Reason
		}
	}
	if reasons[sbom] != "subject-deleted" || reasons[sig] != "subject-deleted" {
		t.Fatalf("manifests the collection deleted, with reasons: %v; want the SBOM %s and the signature %s as subject-deleted", reasons, sbom, sig)
	}
	for _, d := range []string{sbom, sig} {
		if got := status("/v2/team/art/manifests/" + d); got != http.StatusNotFound {
			t.Errorf("GET referrer %s after its subject went: %d, want 404", d, got)
		}
	}
	for _, d := range referrerBlobs {
		if got := status("/v2/team/art/blobs/" + d); got != http.StatusNotFound {
			t.Errorf("GET blob %s of a dead referrer: %d, want 404 once swept", d, got)
		}
	}
}
