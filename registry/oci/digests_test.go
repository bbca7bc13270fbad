package oci

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// sha384Of is the sha384 digest of content, which go-digest knows (and
// Distribution accepts) but the OCI image spec does not register.
func sha384Of(content []byte) string {
	sum := sha512.Sum384(content)
	return "sha384:" + hex.EncodeToString(sum[:])
}

// The algorithms are those the OCI image spec registers, sha256 and sha512;
// every place a digest comes in refuses the others with DIGEST_INVALID,
// naming the algorithm.
func TestOnlySHA256AndSHA512DigestsAreAccepted(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	content := []byte("a layer hashed with sha384")
	sha384 := sha384Of(content)
	config := hs.pushBlob("admin", "a", []byte("{}"))
	manifest := func(layer string) []byte {
		b, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
			"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": len(content)}},
		})
		return b
	}
	sha384Manifest := manifest(sha384)
	// A manifest that is valid but for the algorithm of its own digest.
	valid := manifest(hs.pushBlob("admin", "a", content).String())
	tests := []struct {
		name string
		c    call
		code string
	}{
		{"monolithic upload", call{method: "POST", path: "/v2/a/blobs/uploads/?digest=" + sha384, body: content}, CodeDigestInvalid},
		{"session algorithm", call{method: "POST", path: "/v2/a/blobs/uploads/?digest-algorithm=sha384"}, CodeDigestInvalid},
		{"blob GET", call{method: "GET", path: "/v2/a/blobs/" + sha384}, CodeDigestInvalid},
		{"blob HEAD", call{method: "HEAD", path: "/v2/a/blobs/" + sha384}, ""},
		{"mount", call{method: "POST", path: "/v2/a/blobs/uploads/?from=b&mount=" + sha384}, CodeDigestInvalid},
		{"manifest GET", call{method: "GET", path: "/v2/a/manifests/" + sha384}, CodeDigestInvalid},
		{"manifest PUT by digest", call{method: "PUT", path: "/v2/a/manifests/" + sha384Of(valid), body: valid,
			header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}}, CodeDigestInvalid},
		{"layer descriptor", call{method: "PUT", path: "/v2/a/manifests/v1", body: sha384Manifest,
			header: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}}, CodeManifestInvalid},
		{"referrers", call{method: "GET", path: "/v2/a/referrers/" + sha384}, CodeDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.user = "admin"
			w := hs.do(tt.c)
			if tt.code == "" { // HEAD: no body, the status says it
				expectStatus(t, w, http.StatusBadRequest)
				return
			}
			expectError(t, w, http.StatusBadRequest, tt.code)
			if !strings.Contains(w.Body.String(), "sha384") {
				t.Errorf("the error does not name the algorithm: %s", w.Body.String())
			}
		})
	}

	// A session that finishes with a sha384 digest stores nothing either.
	loc := startSession(t, hs, "a")
	w := hs.do(call{method: "PUT", path: loc + "?digest=" + sha384, body: content, user: "admin"})
	expectError(t, w, http.StatusBadRequest, CodeDigestInvalid)
	if _, err := hs.store.Stat(t.Context(), "blobs/sha384/"+sha384[7:9]+"/"+sha384[7:]+"/data"); err == nil {
		t.Fatal("a sha384 blob was stored")
	}
	// sha256 and sha512 are what they were (TestSHA512UploadMonolithicAndChunked
	// covers sha512 in full).
	for _, d := range []digest.Digest{digest.SHA256.FromBytes(content), digest.SHA512.FromBytes(content)} {
		w := hs.do(call{method: "POST", path: "/v2/a/blobs/uploads/?digest=" + d.String(), body: content, user: "admin"})
		expectStatus(t, w, http.StatusCreated)
	}
}

func TestParseDigestRefusesUnregisteredAlgorithms(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"sha256:" + strings.Repeat("a", 64), true},
		{"sha512:" + strings.Repeat("a", 128), true},
		{"sha384:" + strings.Repeat("a", 96), false},
		{"md5:" + strings.Repeat("a", 32), false},
		{"sha256:" + strings.Repeat("a", 63), false},
	}
	for _, tt := range tests {
		_, err := ParseDigest(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseDigest(%.20s...) = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}
