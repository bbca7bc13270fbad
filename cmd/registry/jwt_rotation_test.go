package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/auth"
)

// bearerStatus is the status of a GET with a Bearer JWT.
func bearerStatus(t *testing.T, s *server, path, jwt string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+jwt)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	json.Unmarshal(raw, &h)
	return h.Kid
}

// A rotation of --jwt-key-file under a running server: the new first line
// signs, the previous key on the next line still verifies the JWTs it
// signed, and once it leaves the file they stop working. No restart.
func TestJWTKeyFileRotatesWithoutRestart(t *testing.T) {
	keyA, keyB := strings.Repeat("a", 64), strings.Repeat("b", 64)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "jwt.key")
	write := func(body string) {
		t.Helper()
		tmp := keyFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, keyFile); err != nil { // as editors and the kubelet do: replaced, not edited
			t.Fatal(err)
		}
	}
	write(keyA + "\n")
	s := startServer(t, "", "--jwt-key-file", keyFile)
	admin := s.adminToken()
	const path = "/v2/team/app/tags/list"

	old := fetchJWT(t, s, admin)
	if kidOf(t, old) != auth.KeyID([]byte(keyA)) {
		t.Fatalf("kid %q, want the key's id %s", kidOf(t, old), auth.KeyID([]byte(keyA)))
	}
	if code := bearerStatus(t, s, path, old); code == http.StatusUnauthorized {
		t.Fatalf("the JWT is refused before any rotation: %d", code)
	}

	write(keyB + "\n" + keyA + "\n")
	eventually(t, 20*time.Second, "the new key signs", func() bool { return kidOf(t, fetchJWT(t, s, admin)) == auth.KeyID([]byte(keyB)) })
	if code := bearerStatus(t, s, path, old); code == http.StatusUnauthorized {
		t.Fatal("a JWT of the previous key is refused while the key is still listed")
	}
	fresh := fetchJWT(t, s, admin)

	write(keyB + "\n")
	eventually(t, 20*time.Second, "the dropped key's JWT refused", func() bool { return bearerStatus(t, s, path, old) == http.StatusUnauthorized })
	if code := bearerStatus(t, s, path, fresh); code == http.StatusUnauthorized {
		t.Fatal("a JWT of the current key is refused")
	}
}
