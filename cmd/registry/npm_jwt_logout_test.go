package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The real npm logged in with a token-flow JWT: `npm logout` succeeds and
// forgets it, and prints the server's notice that a JWT cannot be revoked
// (it stays valid until it expires), instead of a silent ok.
func TestNPMLogoutWithAJWTSaysItCannotBeRevoked(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	resp := s.request("GET", "/token?service=unireg&scope=repository:team/app:pull", s.adminToken(), nil)
	var answer struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	if answer.Token == "" {
		t.Fatalf("token endpoint: %d", resp.StatusCode)
	}
	w := newNPMWorld(t, s, answer.Token)
	out, err := w.cmd(w.home, npm, "logout").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cannot be revoked") {
		t.Fatalf("npm logout with a JWT: %v\n%s", err, out)
	}
	if rc, _ := os.ReadFile(filepath.Join(w.home, ".npmrc")); strings.Contains(string(rc), "_authToken") {
		t.Fatalf(".npmrc still holds the JWT:\n%s", rc)
	}
}
