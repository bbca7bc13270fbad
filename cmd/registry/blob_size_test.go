package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// --max-blob-size (or UNIREG_MAX_BLOB_SIZE) bounds blobs on whatever storage
// the server runs on (the S3 run included): a push above it is 413
// SIZE_INVALID and leaves neither a blob nor its upload session. (Every
// upload path, on the filesystem and in memory, is in registry/oci
// TestBlobsAboveMaxBlobSizeAre413AndLeaveNothing.)
func TestMaxBlobSizeRefusesLargerPushesAndKeepsNothing(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--max-blob-size", "1024"}},
		{"environment", []string{"UNIREG_MAX_BLOB_SIZE=1024"}, nil},
		{"config file", nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "config file" {
				file := filepath.Join(t.TempDir(), "config.yaml")
				if err := os.WriteFile(file, []byte("max-blob-size: 1024\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				tt.args = []string{"--config", file}
			}
			s := startServerEnv(t, "", tt.env, tt.args...)
			token := s.adminToken()
			blob := bytes.Repeat([]byte("z"), 1025)
			sum := sha256.Sum256(blob)
			digest := "sha256:" + hex.EncodeToString(sum[:])

			resp := s.request("POST", "/v2/big/app/blobs/uploads/?digest="+digest, token, bytes.NewReader(blob))
			expectOCIErrorAnswer(t, resp, http.StatusRequestEntityTooLarge, "SIZE_INVALID")

			// In a session, streamed without a length: cut, and the
			// session is gone.
			resp = s.request("POST", "/v2/big/app/blobs/uploads/", token, nil)
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if resp.StatusCode != http.StatusAccepted || loc == "" {
				t.Fatalf("start upload: %s", resp.Status)
			}
			resp = s.request("PATCH", loc, token, io.MultiReader(bytes.NewReader(blob))) // no Content-Length
			expectOCIErrorAnswer(t, resp, http.StatusRequestEntityTooLarge, "SIZE_INVALID")
			if code := s.status("GET", loc, token); code != http.StatusNotFound {
				t.Errorf("upload session after the refusal: %d, want 404", code)
			}
			if code := s.status("HEAD", "/v2/big/app/blobs/"+digest, token); code != http.StatusNotFound {
				t.Errorf("blob after the refusals: %d, want 404", code)
			}
			// The limit itself is allowed.
			resp = s.request("POST", "/v2/big/app/blobs/uploads/?digest="+ociDigestOf(blob[:1024]), token, bytes.NewReader(blob[:1024]))
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("a blob of exactly --max-blob-size: %s, want 201", resp.Status)
			}
		})
	}
}

func ociDigestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func expectOCIErrorAnswer(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	var body struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: not OCI error JSON: %v", resp.Status, err)
	}
	if resp.StatusCode != status || len(body.Errors) != 1 || body.Errors[0].Code != code {
		t.Fatalf("%s %+v, want %d %s", resp.Status, body.Errors, status, code)
	}
}
