package registry_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/s3"
	"github.com/unireg/unireg/registry/storage/storagetest"
)

// Path safety, end to end: no repository name, tag, digest, upload id,
// package name, version, tarball file name or dist-tag a client sends can
// make the registry touch a file outside its storage or another tenant's
// objects. Every hostile request is answered with a 4xx in its protocol's
// error format, and afterwards the backend holds, byte for byte, what the
// legitimate pushes put there: inside the store and around it (the
// directory that holds a filesystem store; the bucket around an S3 prefix).

func TestPathSafetyFilesystem(t *testing.T) {
	testPathSafety(t, newFilesystemBackend(t))
}

// TestPathSafetyS3 runs against $UNIREG_S3_ENDPOINT (hack/with-minio.sh), or
// else against a MinIO it starts from tools/bin/minio (make unit builds it),
// so `go test ./registry/` covers S3 whenever the binary is there.
func TestPathSafetyS3(t *testing.T) {
	testPathSafety(t, newS3Backend(t))
}

// safetyBackend is a storage under test and a view of everything around it.
type safetyBackend struct {
	driver storage.Driver
	// raw returns every file or object of the backend, inside the store
	// and beside it, with a fingerprint of its content and write time.
	raw func(t *testing.T) map[string]string
	// inside reports whether a raw name belongs to the store.
	inside func(name string) bool
	// around are the raw names beside the store the test put there.
	around []string
}

// newFilesystemBackend puts the store two directories deep in a temporary
// directory, with sentinel files on the way, so a climb out of the store
// lands somewhere watched.
func newFilesystemBackend(t *testing.T) safetyBackend {
	base := t.TempDir()
	root := filepath.Join(base, "jail", "storage")
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(base, "sentinel"), filepath.Join(base, "jail", "sentinel")} {
		if err := os.WriteFile(p, []byte("outside the store"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return safetyBackend{
		driver: d,
		raw:    func(t *testing.T) map[string]string { return walkFiles(t, base) },
		inside: func(name string) bool { return strings.HasPrefix(name, "jail/storage/") },
		around: []string{"sentinel", "jail", "jail/sentinel", "jail/storage"},
	}
}

// walkFiles returns every file and directory under dir: content hash and
// modification time of files, "dir" for directories.
func walkFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
		if e.IsDir() {
			files[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		files[rel] = fmt.Sprintf("%x %d", sha256.Sum256(b), info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return files
}

// newS3Backend keeps the store under the prefix "registry/" of a fresh
// bucket, with sentinel objects beside it (one behind a prefix that only
// looks like the store's).
func newS3Backend(t *testing.T) safetyBackend {
	endpoint, accessKey, secretKey := storagetest.MinIO(t)
	bucket := "pathsafety-" + strings.ToLower(rand.Text()[:12])
	d, err := s3.New(t.Context(), s3.Options{
		Endpoint: endpoint, Bucket: bucket, Prefix: "registry",
		AccessKey: accessKey, SecretKey: secretKey, CreateBucket: true,
	})
	if err != nil {
		t.Fatalf("S3 driver on %s: %v", endpoint, err)
	}
	u, _ := url.Parse(endpoint)
	client, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Secure: u.Scheme == "https"})
	if err != nil {
		t.Fatal(err)
	}
	sentinels := []string{"sentinel", "registry-sentinel", "registryx/sentinel"}
	for _, name := range sentinels {
		body := strings.NewReader("outside the store")
		if _, err := client.PutObject(t.Context(), bucket, name, body, body.Size(), minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put sentinel %s: %v", name, err)
		}
	}
	return safetyBackend{
		driver: d,
		raw: func(t *testing.T) map[string]string {
			t.Helper()
			objects := map[string]string{}
			for oi := range client.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Recursive: true}) {
				if oi.Err != nil {
					t.Fatalf("list bucket %s: %v", bucket, oi.Err)
				}
				objects[oi.Key] = fmt.Sprintf("%s %d %d", oi.ETag, oi.Size, oi.LastModified.UnixNano())
			}
			return objects
		},
		inside: func(name string) bool { return strings.HasPrefix(name, "registry/") },
		around: sentinels,
	}
}

// tenants: team-a owns team-a/* and @a/*, team-b owns team-b/* and @b/*.
var tenantScopes = map[string][]string{
	"team-a": {"oci:repository:team-a/*:*", "npm:package:@a/*:*"},
	"team-b": {"oci:repository:team-b/*:*", "npm:package:@b/*:*"},
}

// safetyWorld is a registry on one backend with both tenants' content.
type safetyWorld struct {
	url    string
	tokens map[string]string // tenant -> token
	// What team-b pushed: an image tagged v1, and an upload in progress.
	bManifestBody                        []byte
	bManifest, bLayer, bConfig, bPartial digest.Digest
	bUpload                              string
}

func newSafetyWorld(t *testing.T, b safetyBackend) *safetyWorld {
	t.Helper()
	w := &safetyWorld{tokens: map[string]string{}}
	f := &authstore.File{Version: authstore.Version}
	for tenant, scopes := range tenantScopes {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		w.tokens[tenant] = tok
		f.Tokens = append(f.Tokens, authstore.Token{Hash: auth.HashToken(tok), User: tenant, Scopes: scopes})
	}
	store, err := auth.NewStaticTokenStore(f)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(t.Context(), registry.Config{
		Storage: b.driver, Authenticator: store,
		OCI: registry.OCIConfig{UploadPurgeInterval: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	w.url = srv.URL

	w.pushImage(t, "team-a", "team-a/app", "layer of team a")
	w.bManifestBody, w.bLayer, w.bConfig = w.pushImage(t, "team-b", "team-b/app", "layer of team b")
	w.bManifest = digest.FromBytes(w.bManifestBody)
	resp := w.must(t, "team-b", "POST", "/v2/team-b/app/blobs/uploads/", nil, nil, http.StatusAccepted)
	w.bUpload = resp.Header.Get("Docker-Upload-UUID")
	partial := []byte("partial upload of team b")
	w.bPartial = digest.FromBytes(partial)
	w.must(t, "team-b", "PATCH", resp.Header.Get("Location"), partial, nil, http.StatusAccepted)
	w.must(t, "team-a", "PUT", "/npm/@a%2fpkg", publishWith("@a/pkg", "1.0.0", "pkg-1.0.0.tgz", []byte("tarball of a")), contentJSON, http.StatusCreated)
	w.must(t, "team-b", "PUT", "/npm/@b%2fpkg", publishWith("@b/pkg", "2.0.0", "pkg-2.0.0.tgz", []byte("tarball of b")), contentJSON, http.StatusCreated)
	return w
}

var (
	contentJSON     = map[string]string{"Content-Type": "application/json"}
	contentManifest = map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
)

// pushImage pushes a config, a layer and a manifest tagged v1.
func (w *safetyWorld) pushImage(t *testing.T, tenant, repo, layer string) (manifest []byte, layerDigest, configDigest digest.Digest) {
	config := []byte(`{"tenant":"` + tenant + `"}`)
	for _, blob := range [][]byte{[]byte(layer), config} {
		w.must(t, tenant, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(blob).String(), blob, nil, http.StatusCreated)
	}
	body := ociImageManifest(digest.FromBytes(config), len(config), digest.FromBytes([]byte(layer)), len(layer))
	w.must(t, tenant, "PUT", "/v2/"+repo+"/manifests/v1", body, contentManifest, http.StatusCreated)
	return body, digest.FromBytes([]byte(layer)), digest.FromBytes(config)
}

func ociImageManifest(config digest.Digest, configSize int, layer digest.Digest, layerSize int) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		config, configSize, layer, layerSize)
}

// publishWith is what npm publish sends, with version and attachment file
// name as given (hostile ones included).
func publishWith(name, version, file string, tgz []byte) []byte {
	sum := sha512.Sum512(tgz)
	b, _ := json.Marshal(map[string]any{
		"_id": name, "name": name, "dist-tags": map[string]string{"latest": version},
		"versions": map[string]any{version: map[string]any{
			"name": name, "version": version,
			"dist": map[string]any{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sum[:]), "tarball": "http://x/" + file},
		}},
		"_attachments": map[string]any{file: map[string]any{
			"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz),
		}},
	})
	return b
}

// do sends target (path and query) byte for byte as the request target,
// with the tenant's credentials: Basic for OCI, Bearer for npm.
func (w *safetyWorld) do(t *testing.T, tenant, method, target string, body []byte, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, w.url+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque, req.URL.RawQuery, _ = strings.Cut(target, "?")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if strings.HasPrefix(target, "/npm/") {
		req.Header.Set("Authorization", "Bearer "+w.tokens[tenant])
	} else {
		req.SetBasicAuth(tenant, w.tokens[tenant])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// must sends a request that has to succeed with status want.
func (w *safetyWorld) must(t *testing.T, tenant, method, target string, body []byte, header map[string]string, want int) *http.Response {
	t.Helper()
	resp := w.do(t, tenant, method, target, body, header)
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s as %s: %d %s, want %d", method, target, tenant, resp.StatusCode, b, want)
	}
	return resp
}

// wantRefused checks that a response is status with the OCI error code, or,
// when code is "", with an npm error body.
func wantRefused(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Errorf("status %d %s, want %d", resp.StatusCode, b, status)
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if code == "" {
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
			t.Errorf("body %s is not an npm error", b)
		}
		return
	}
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(b, &e); err != nil || len(e.Errors) != 1 {
		t.Errorf("body %s is not an OCI error", b)
		return
	}
	if e.Errors[0].Code != code {
		t.Errorf("error code %s (%s), want %s", e.Errors[0].Code, e.Errors[0].Message, code)
	}
}

// hostileRequest is a request with a malicious name, reference or parameter.
type hostileRequest struct {
	name, method, target string
	body                 []byte
	header               map[string]string
	status               int
	code                 string // OCI error code; "" for npm
}

// Percent-encoded look-alikes, as a client would send them.
const (
	fullwidthSolidus = "%EF%BC%8F" // U+FF0F
	divisionSlash    = "%E2%88%95" // U+2215
	oneDotLeader     = "%E2%80%A4" // U+2024
	fullwidthStop    = "%EF%BC%8E" // U+FF0E
	cyrillicE        = "%D0%B5"    // U+0435, looks like e
	cyrillicA        = "%D0%B0"    // U+0430, looks like a
	fullwidthColon   = "%EF%BC%9A" // U+FF1A
)

// ociHostile: team-a's credentials, aimed at other repositories, at the
// store's own folders and out of the store.
func ociHostile(w *safetyWorld) []hostileRequest {
	hexB := w.bLayer.Encoded()
	manifest := w.bManifestBody
	const bad, unknownRoute = http.StatusBadRequest, http.StatusNotFound
	return []hostileRequest{
		// Repository names.
		{"climb in name", "GET", "/v2/a/../b/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"climb to other tenant", "GET", "/v2/team-a/app/../../team-b/app/manifests/v1", nil, nil, bad, "NAME_INVALID"},
		{"encoded climb to other tenant", "GET", "/v2/team-a%2f..%2f..%2fteam-b%2fapp/manifests/v1", nil, nil, bad, "NAME_INVALID"},
		{"encoded climb out", "GET", "/v2/..%2f..%2fetc/manifests/latest", nil, nil, bad, "NAME_INVALID"},
		{"encoded dots", "GET", "/v2/%2e%2e/x/manifests/latest", nil, nil, bad, "NAME_INVALID"},
		{"encoded dots and slash", "GET", "/v2/%2e%2e%2fx/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"absolute name", "GET", "/v2//etc/passwd/manifests/latest", nil, nil, bad, "NAME_INVALID"},
		{"encoded absolute name", "GET", "/v2/%2fetc%2fpasswd/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"empty component", "GET", "/v2/team-a//app/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"NUL in name", "GET", "/v2/team-a%00/app/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"NUL at end of name", "GET", "/v2/team-a/app%00/manifests/v1", nil, nil, bad, "NAME_INVALID"},
		{"backslash", "GET", `/v2/team-a\..\team-b/app/tags/list`, nil, nil, bad, "NAME_INVALID"},
		{"encoded backslash", "GET", "/v2/team-a%5c..%5cteam-b/app/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"fullwidth solidus", "GET", "/v2/team-a" + fullwidthSolidus + "app/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"division slash climb", "GET", "/v2/team-a" + divisionSlash + ".." + divisionSlash + "team-b/app/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"one-dot leaders", "GET", "/v2/" + oneDotLeader + oneDotLeader + "/team-b/app/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"fullwidth stops", "GET", "/v2/" + fullwidthStop + fullwidthStop + "/x/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"Cyrillic look-alike of team-b", "GET", "/v2/t" + cyrillicE + "am-b/app/manifests/v1", nil, nil, bad, "NAME_INVALID"},
		{"Cyrillic look-alike of team-a", "GET", "/v2/team-" + cyrillicA + "/app/manifests/v1", nil, nil, bad, "NAME_INVALID"},
		{"upper-case look-alike", "GET", "/v2/Team-B/app/manifests/v1", nil, nil, bad, "NAME_INVALID"},
		{"store folder as component", "GET", "/v2/team-a/app/_manifests/tags/list", nil, nil, bad, "NAME_INVALID"},
		{"layers folder as component", "GET", "/v2/team-a/app/_layers/sha256/blobs/" + w.bLayer.String(), nil, nil, bad, "NAME_INVALID"},
		{"upload start under climb", "POST", "/v2/team-a/../team-b/app/blobs/uploads/", nil, nil, bad, "NAME_INVALID"},
		{"manifest put under climb", "PUT", "/v2/team-a/app/../../team-b/app/manifests/v2", manifest, contentManifest, bad, "NAME_INVALID"},
		{"manifest delete under encoded climb", "DELETE", "/v2/team-a/app/..%2f..%2fteam-b%2fapp/manifests/v1", nil, nil, bad, "NAME_INVALID"},
		{"blob delete under climb", "DELETE", "/v2/team-a/app/../../team-b/app/blobs/" + w.bLayer.String(), nil, nil, bad, "NAME_INVALID"},
		{"climb into the npm tree", "GET", "/v2/../npm/@b%2fpkg", nil, nil, unknownRoute, "NAME_UNKNOWN"},

		// Tags.
		{"tag climbing out", "GET", "/v2/team-a/app/manifests/..%2f..%2f..%2fblobs", nil, nil, unknownRoute, "NAME_UNKNOWN"},
		{"dot-dot tag", "GET", "/v2/team-a/app/manifests/%2e%2e", nil, nil, bad, "MANIFEST_INVALID"},
		{"raw dot-dot tag", "PUT", "/v2/team-a/app/manifests/..", manifest, contentManifest, bad, "MANIFEST_INVALID"},
		{"NUL in tag", "GET", "/v2/team-a/app/manifests/v1%00", nil, nil, bad, "MANIFEST_INVALID"},
		{"backslash tag", "GET", "/v2/team-a/app/manifests/v1%5c..%5c..%5cx", nil, nil, bad, "MANIFEST_INVALID"},
		{"hidden tag", "PUT", "/v2/team-a/app/manifests/.hidden", manifest, contentManifest, bad, "MANIFEST_INVALID"},
		{"fullwidth tag", "PUT", "/v2/team-a/app/manifests/v" + fullwidthStop + "2", manifest, contentManifest, bad, "MANIFEST_INVALID"},
		{"climbing ?tag=", "PUT", "/v2/team-a/app/manifests/v2?tag=..%2f..%2fx", manifest, contentManifest, bad, "MANIFEST_INVALID"},
		{"NUL ?tag=", "PUT", "/v2/team-a/app/manifests/v2?tag=x%00", manifest, contentManifest, bad, "MANIFEST_INVALID"},
		{"tag delete climbing", "DELETE", "/v2/team-a/app/manifests/%2e%2e", nil, nil, bad, "MANIFEST_INVALID"},

		// Digests.
		{"digest climbing out", "GET", "/v2/team-a/app/blobs/sha256:..%2f..%2f..%2fx", nil, nil, unknownRoute, "NAME_UNKNOWN"},
		{"dot-dot digest", "GET", "/v2/team-a/app/blobs/sha256:%2e%2e", nil, nil, bad, "DIGEST_INVALID"},
		{"backslash digest", "GET", "/v2/team-a/app/blobs/sha256:..%5c..%5cx", nil, nil, bad, "DIGEST_INVALID"},
		{"NUL after digest", "GET", "/v2/team-a/app/blobs/" + w.bLayer.String() + "%00", nil, nil, bad, "DIGEST_INVALID"},
		{"upper-case digest", "GET", "/v2/team-a/app/blobs/sha256:" + strings.ToUpper(hexB), nil, nil, bad, "DIGEST_INVALID"},
		{"fullwidth colon digest", "GET", "/v2/team-a/app/blobs/sha256" + fullwidthColon + hexB, nil, nil, bad, "DIGEST_INVALID"},
		{"unknown algorithm", "GET", "/v2/team-a/app/blobs/..:" + hexB, nil, nil, bad, "DIGEST_INVALID"},
		{"manifest by dot-dot digest", "GET", "/v2/team-a/app/manifests/sha256:%2e%2e" + hexB, nil, nil, bad, "DIGEST_INVALID"},
		{"manifest by climbing digest", "GET", "/v2/team-a/app/manifests/sha256:%2e%2e%2f" + hexB, nil, nil, unknownRoute, "NAME_UNKNOWN"},
		{"blob delete by dot-dot digest", "DELETE", "/v2/team-a/app/blobs/sha256:%2e%2e", nil, nil, bad, "DIGEST_INVALID"},
		{"referrers of climbing digest", "GET", "/v2/team-a/app/referrers/sha256:%2e%2e%00", nil, nil, bad, "DIGEST_INVALID"},
		{"monolithic upload to climbing digest", "POST", "/v2/team-a/app/blobs/uploads/?digest=sha256:..%2f..%2fx", []byte("x"), nil, bad, "DIGEST_INVALID"},
		{"mount of climbing digest", "POST", "/v2/team-a/app/blobs/uploads/?mount=sha256:..&from=team-b/app", nil, nil, bad, "DIGEST_INVALID"},
		{"mount from climbing name", "POST", "/v2/team-a/app/blobs/uploads/?mount=" + w.bLayer.String() + "&from=team-a/app/..%2f..%2fteam-b%2fapp", nil, nil, bad, "NAME_INVALID"},
		{"climbing digest algorithm", "POST", "/v2/team-a/app/blobs/uploads/?digest-algorithm=..%2f..%2fx", nil, nil, bad, "DIGEST_INVALID"},

		// Upload ids.
		{"dot-dot upload id", "GET", "/v2/team-a/app/blobs/uploads/%2e%2e", nil, nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"upload id climbing to blobs", "PATCH", "/v2/team-a/app/blobs/uploads/..%2f..%2fblobs%2fsha256", []byte("x"), nil, bad, "NAME_INVALID"},
		{"upload id with NUL", "PUT", "/v2/team-a/app/blobs/uploads/" + w.bUpload + "%00?digest=" + w.bPartial.String(), nil, nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"upload id upper-case", "DELETE", "/v2/team-a/app/blobs/uploads/" + strings.ToUpper(w.bUpload), nil, nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"upload id behind backslash", "GET", "/v2/team-a/app/blobs/uploads/..%5c" + w.bUpload, nil, nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"upload id with state suffix", "GET", "/v2/team-a/app/blobs/uploads/" + w.bUpload + "%2fstate", nil, nil, unknownRoute, "NAME_UNKNOWN"},
		{"upload id with fullwidth stop", "PATCH", "/v2/team-a/app/blobs/uploads/" + w.bUpload[:31] + fullwidthStop, []byte("x"), nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
	}
}

// npmHostile: team-a's token, aimed at other packages and out of the store.
func npmHostile(w *safetyWorld) []hostileRequest {
	const bad, notFound = http.StatusBadRequest, http.StatusNotFound
	tgz := []byte("tarball of a, again")
	return []hostileRequest{
		// Package names.
		{"encoded climb", "GET", "/npm/..%2fx", nil, nil, bad, ""},
		{"raw climb", "GET", "/npm/../x", nil, nil, bad, ""},
		{"climb from scope", "GET", "/npm/@a/../x", nil, nil, bad, ""},
		{"encoded climb from scope", "GET", "/npm/@a%2f..%2fb", nil, nil, bad, ""},
		{"encoded climb to other scope", "GET", "/npm/@a%2f..%2f@b%2fpkg", nil, nil, bad, ""},
		{"encoded dots", "GET", "/npm/%2e%2e", nil, nil, bad, ""},
		{"encoded climb out", "GET", "/npm/%2e%2e%2f%2e%2e%2fetc%2fpasswd", nil, nil, bad, ""},
		{"climb into the OCI tree", "GET", "/npm/../v2/team-b/app/manifests/v1", nil, nil, bad, ""},
		{"absolute name", "GET", "/npm/%2fetc%2fpasswd", nil, nil, bad, ""},
		{"NUL in name", "GET", "/npm/@a%2fpkg%00", nil, nil, bad, ""},
		{"backslash in name", "GET", "/npm/@a%5c..%5c@b%5cpkg", nil, nil, bad, ""},
		{"hidden name", "GET", "/npm/.hidden", nil, nil, bad, ""},
		{"fullwidth solidus", "GET", "/npm/@a" + fullwidthSolidus + "pkg", nil, nil, bad, ""},
		{"division slash", "GET", "/npm/@a" + divisionSlash + "..", nil, nil, bad, ""},
		{"one-dot leaders", "GET", "/npm/" + oneDotLeader + oneDotLeader, nil, nil, bad, ""},
		{"Cyrillic look-alike scope", "GET", "/npm/@" + cyrillicA + "%2fpkg", nil, nil, bad, ""},
		{"publish under climb", "PUT", "/npm/@a%2f..%2f@b%2fpkg", publishWith("@a/../@b/pkg", "1.0.1", "pkg-1.0.1.tgz", tgz), contentJSON, bad, ""},
		{"publish under raw climb", "PUT", "/npm/@a/../@b%2fpkg", publishWith("@b/pkg", "1.0.1", "pkg-1.0.1.tgz", tgz), contentJSON, bad, ""},
		{"dist-tags of climbing name", "PUT", "/npm/-/package/@a%2f..%2f..%2fb/dist-tags/beta", []byte(`"1.0.0"`), contentJSON, bad, ""},

		// Versions, tarball file names, dist-tags.
		{"climbing version", "GET", "/npm/@a/pkg/..%2f..%2f..%2fx", nil, nil, notFound, ""},
		{"climbing tarball", "GET", "/npm/@a/pkg/-/..%2f..%2fx.tgz", nil, nil, notFound, ""},
		{"tarball with NUL", "GET", "/npm/@a/pkg/-/pkg-1.0.0.tgz%00", nil, nil, notFound, ""},
		{"tarball of other scope", "GET", "/npm/@a/pkg/-/..%2f..%2f..%2f@b%2fpkg%2f-%2fpkg-2.0.0.tgz", nil, nil, notFound, ""},
		{"tarball of packument", "GET", "/npm/@a/pkg/-/..%2fpackument.json", nil, nil, notFound, ""},
		{"raw climbing tarball", "GET", "/npm/@a/pkg/-/../../x.tgz", nil, nil, notFound, ""},
		{"other tenant's tarball name", "GET", "/npm/@a/pkg/-/pkg-2.0.0.tgz", nil, nil, notFound, ""},
		{"publish of climbing version", "PUT", "/npm/@a%2fpkg", publishWith("@a/pkg", "../../x", "pkg-../../x.tgz", tgz), contentJSON, bad, ""},
		{"publish of NUL version", "PUT", "/npm/@a%2fpkg", publishWith("@a/pkg", "1.0.1\x00", "pkg-1.0.1\x00.tgz", tgz), contentJSON, bad, ""},
		{"publish of climbing attachment", "PUT", "/npm/@a%2fpkg", publishWith("@a/pkg", "1.0.1", "../../pkg-1.0.1.tgz", tgz), contentJSON, bad, ""},
		{"publish of attachment with NUL", "PUT", "/npm/@a%2fpkg", publishWith("@a/pkg", "1.0.1", "pkg-1.0.1.tgz\x00", tgz), contentJSON, bad, ""},
		{"publish of other tenant's name", "PUT", "/npm/@a%2fpkg", publishWith("@b/pkg", "1.0.1", "pkg-1.0.1.tgz", tgz), contentJSON, bad, ""},
		{"climbing dist-tag", "PUT", "/npm/-/package/@a%2fpkg/dist-tags/..%2f..%2fx", []byte(`"1.0.0"`), contentJSON, bad, ""},
		{"NUL dist-tag", "PUT", "/npm/-/package/@a/pkg/dist-tags/%00", []byte(`"1.0.0"`), contentJSON, bad, ""},
		{"fullwidth dist-tag", "PUT", "/npm/-/package/@a/pkg/dist-tags/b" + fullwidthStop + "eta", []byte(`"1.0.0"`), contentJSON, bad, ""},
		{"dist-tag pointing at climbing version", "PUT", "/npm/-/package/@a/pkg/dist-tags/beta", []byte(`"../../x"`), contentJSON, bad, ""},
		{"delete of climbing dist-tag", "DELETE", "/npm/-/package/@a/pkg/dist-tags/..%2fx", nil, nil, notFound, ""},
		{"revoke of climbing token key", "DELETE", "/npm/-/npm/v1/tokens/token/..%2f..%2fx", nil, nil, bad, ""},
	}
}

func testPathSafety(t *testing.T, b safetyBackend) {
	w := newSafetyWorld(t, b)
	ctx := t.Context()
	for _, key := range []string{
		"repositories/team-a/app/_manifests/tags/v1", "repositories/team-b/app/_manifests/tags/v1",
		"uploads/" + w.bUpload + "/state", "npm/packages/@a/pkg/packument.json", "npm/packages/@b/pkg/packument.json",
	} {
		if _, err := b.driver.Stat(ctx, key); err != nil {
			t.Fatalf("after the legitimate pushes: %s: %v", key, err)
		}
	}
	store, raw := storeObjects(t, b.driver, ""), b.raw(t)
	for name := range raw {
		if !b.inside(name) && !slices.Contains(b.around, name) {
			t.Fatalf("the legitimate pushes wrote %s outside the store", name)
		}
	}

	t.Run("OCI", func(t *testing.T) { sendHostile(t, w, ociHostile(w)) })
	t.Run("NPM", func(t *testing.T) { sendHostile(t, w, npmHostile(w)) })
	t.Run("Harmless", func(t *testing.T) { harmlessParameters(t, w) })
	wantUnchanged(t, b, store, raw, false)
	t.Run("CrossTenant", func(t *testing.T) { crossTenant(t, w) })
	// The wantRefused mounts opened sessions, which were cancelled: their
	// conditional writes may have left the filesystem's (empty) lock files.
	wantUnchanged(t, b, store, raw, true)
}

// wantUnchanged fails t unless the store and the backend around it hold
// what they held before: the same objects, files and contents, written at
// the same times. With newLocks, lock files the filesystem backend adds on
// the first conditional write to one of its stripes are let through.
func wantUnchanged(t *testing.T, b safetyBackend, store, raw map[string]string, newLocks bool) {
	t.Helper()
	if got := storeObjects(t, b.driver, ""); !maps.Equal(got, store) {
		t.Errorf("the store changed:\n%s", diffSnapshots(store, got))
	}
	got := b.raw(t)
	if newLocks {
		emptyFile := fmt.Sprintf("%x ", sha256.Sum256(nil))
		maps.DeleteFunc(got, func(name, v string) bool {
			_, existed := raw[name]
			return !existed && strings.HasPrefix(name, "jail/storage/.locks/") && strings.HasPrefix(v, emptyFile)
		})
	}
	if !maps.Equal(got, raw) {
		t.Errorf("the safetyBackend changed, inside or around the store:\n%s", diffSnapshots(raw, got))
	}
}

func sendHostile(t *testing.T, w *safetyWorld, requests []hostileRequest) {
	for _, h := range requests {
		t.Run(h.name, func(t *testing.T) {
			resp := w.do(t, "team-a", h.method, h.target, h.body, h.header)
			wantRefused(t, resp, h.status, h.code)
		})
	}
}

// harmlessParameters: parameters that never become part of a key are
// answered normally, and change nothing either.
func harmlessParameters(t *testing.T, w *safetyWorld) {
	for _, h := range []struct{ method, target string }{
		{"GET", "/v2/_catalog?last=..%2f..%2fetc"},
		{"GET", "/v2/team-a/app/tags/list?last=..%2f..%2f..%2fteam-b%2fapp%2f_manifests%2ftags%2fv1"},
		{"GET", "/v2/team-a/app/tags/list?n=1&last=%00"},
		// The last step of npm unpublish: no tarball of that name is in use.
		{"DELETE", "/npm/@a/pkg/-/..%2f..%2f@b%2fpkg%2fpackument.json/-rev/1-0"},
	} {
		if resp := w.do(t, "team-a", h.method, h.target, nil, nil); resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Errorf("%s %s: %d %s, want 200", h.method, h.target, resp.StatusCode, b)
		}
	}
}

// crossTenant: team-a, with push on team-a/*, uses team-b's upload id,
// manifest and blob digests under its own repository name. None of it
// reaches team-b's objects.
func crossTenant(t *testing.T, w *safetyWorld) {
	upload := "/v2/team-a/app/blobs/uploads/" + w.bUpload
	for _, h := range []hostileRequest{
		{"status of other tenant's upload", "GET", upload, nil, nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"chunk into other tenant's upload", "PATCH", upload, []byte("injected"), nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"finish other tenant's upload", "PUT", upload + "?digest=" + w.bPartial.String(), nil, nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"finish other tenant's upload with a chunk", "PUT", upload + "?digest=" + w.bPartial.String(), []byte("more"), nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"cancel other tenant's upload", "DELETE", upload, nil, nil, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN"},
		{"other tenant's upload under its name", "GET", "/v2/team-b/app/blobs/uploads/" + w.bUpload, nil, nil, http.StatusForbidden, "DENIED"},
		{"other tenant's manifest by digest", "GET", "/v2/team-a/app/manifests/" + w.bManifest.String(), nil, nil, http.StatusNotFound, "MANIFEST_UNKNOWN"},
		{"delete other tenant's manifest", "DELETE", "/v2/team-a/app/manifests/" + w.bManifest.String(), nil, nil, http.StatusNotFound, "MANIFEST_UNKNOWN"},
		{"other tenant's blob", "GET", "/v2/team-a/app/blobs/" + w.bLayer.String(), nil, nil, http.StatusNotFound, "BLOB_UNKNOWN"},
		{"delete other tenant's blob", "DELETE", "/v2/team-a/app/blobs/" + w.bLayer.String(), nil, nil, http.StatusNotFound, "BLOB_UNKNOWN"},
		{"manifest made of other tenant's blobs", "PUT", "/v2/team-a/app/manifests/stolen", w.bManifestBody, contentManifest, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN"},
	} {
		t.Run(h.name, func(t *testing.T) {
			resp := w.do(t, "team-a", h.method, h.target, h.body, h.header)
			wantRefused(t, resp, h.status, h.code)
		})
	}
	// A mount of team-b's blob, named or searched for, is not a mount: the
	// client gets an upload session of its own, which it then cancels.
	for _, target := range []string{
		"/v2/team-a/app/blobs/uploads/?mount=" + w.bLayer.String() + "&from=team-b/app",
		"/v2/team-a/app/blobs/uploads/?mount=" + w.bLayer.String(),
	} {
		resp := w.do(t, "team-a", "POST", target, nil, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("POST %s: %d, want 202 (a new session, no mount)", target, resp.StatusCode)
			continue
		}
		w.must(t, "team-a", "DELETE", resp.Header.Get("Location"), nil, nil, http.StatusNoContent)
	}
	resp := w.do(t, "team-a", "GET", "/v2/team-a/app/blobs/"+w.bLayer.String(), nil, nil)
	wantRefused(t, resp, http.StatusNotFound, "BLOB_UNKNOWN")
	// team-b's upload still has its 24 bytes, and nothing else.
	resp = w.must(t, "team-b", "GET", "/v2/team-b/app/blobs/uploads/"+w.bUpload, nil, nil, http.StatusNoContent)
	if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", len("partial upload of team b")-1); got != want {
		t.Errorf("team-b's upload Range = %s after team-a's attempts, want %s", got, want)
	}
}

// storeObjects returns every object of the store under prefix, recursively,
// with a hash of its content.
func storeObjects(t *testing.T, d storage.Driver, prefix string) map[string]string {
	t.Helper()
	names, err := d.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	objects := map[string]string{}
	for _, name := range names {
		key := name
		if prefix != "" {
			key = prefix + "/" + name
		}
		if b, _, err := storage.ReadAll(t.Context(), d, key); err == nil {
			sum := sha256.Sum256(b)
			objects[key] = hex.EncodeToString(sum[:])
		}
		if _, err := d.List(t.Context(), key); err == nil {
			maps.Copy(objects, storeObjects(t, d, key))
		}
	}
	return objects
}

func diffSnapshots(before, after map[string]string) string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if v, ok := after[k]; !ok {
			lines = append(lines, "  removed "+k)
		} else if v != before[k] {
			lines = append(lines, "  changed "+k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if _, ok := before[k]; !ok {
			lines = append(lines, "  added   "+k)
		}
	}
	return strings.Join(lines, "\n")
}
