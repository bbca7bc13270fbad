package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestNPMStarWithAReadOnlyToken: the real `npm star` of a read-only token
// is accepted (its body is {_id, _rev, users}), while a change it may not
// make is refused with 403 at the first member that needs write.
func TestNPMStarWithAReadOnlyToken(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startServer(t, "")
	admin := newNPMWorld(t, s, s.adminToken())
	admin.run(admin.pkg("lib", "starred", "1.0.0", nil), npm, "publish")

	resp := s.request("POST", "/npm/-/npm/v1/tokens", s.adminToken(), strings.NewReader(`{"readonly":true}`))
	var created struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if created.Token == "" {
		t.Fatalf("no read-only token: %d", resp.StatusCode)
	}
	ro := newNPMWorld(t, s, created.Token)
	app := ro.project("app")
	ro.run(app, npm, "star", "starred")
	if out := ro.run(app, npm, "view", "starred", "users", "--json"); !strings.Contains(out, `"admin": true`) {
		t.Fatalf("users after npm star: %s", out)
	}
	if out := ro.fail(app, npm, "deprecate", "starred", "no"); !strings.Contains(out, "403") {
		t.Fatalf("npm deprecate with a read-only token: %s", out)
	}
	ro.run(app, npm, "unstar", "starred")
	if out := ro.run(app, npm, "view", "starred", "users", "--json"); strings.Contains(out, "admin") {
		t.Fatalf("users after npm unstar: %s", out)
	}
}
