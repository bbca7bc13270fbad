package npm

import (
	"net/http"
	"reflect"
	"testing"
)

func starAs(t *testing.T, hs *harness, user, name string) {
	t.Helper()
	body := jsonString(t, map[string]any{"_id": name, "users": map[string]any{user: true}})
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/" + escapeName(name), body: body, user: user}), http.StatusOK)
}

func rowsOf(t *testing.T, hs *harness, user, path string) []any {
	t.Helper()
	w := hs.get(user, path)
	expectStatus(t, w, http.StatusOK)
	var values []any
	for _, r := range decodeBody(t, w)["rows"].([]any) {
		values = append(values, r.(map[string]any)["value"])
	}
	return values
}

// TestStarredByUserListsStarsTheCallerMaySee: `npm stars [user]` asks
// /-/_view/starredByUser?key="<user>"; the answer lists, by name, the
// packages the user starred among those the caller may read.
func TestStarredByUserListsStarsTheCallerMaySee(t *testing.T) {
	hs := newHarness(t, map[string][]string{
		"admin": {"*"}, "reader": {"npm:package:*:read"}, "acme": {"npm:package:@acme/*:read"},
	})
	for _, n := range []string{"b", "a", "@acme/x", "unstarred"} {
		hs.mustPublish(n, "1.0.0")
	}
	for _, n := range []string{"b", "a", "@acme/x"} {
		starAs(t, hs, "reader", n)
	}
	starAs(t, hs, "admin", "a")

	if got := rowsOf(t, hs, "reader", `/-/_view/starredByUser?key="reader"`); !reflect.DeepEqual(got, []any{"@acme/x", "a", "b"}) {
		t.Fatalf("reader's stars = %v", got)
	}
	if got := rowsOf(t, hs, "acme", `/-/_view/starredByUser?key=%22reader%22`); !reflect.DeepEqual(got, []any{"@acme/x"}) {
		t.Fatalf("reader's stars seen by acme = %v", got)
	}
	if got := rowsOf(t, hs, "reader", `/-/_view/starredByUser?key="admin"`); !reflect.DeepEqual(got, []any{"a"}) {
		t.Fatalf("admin's stars = %v", got)
	}
	if got := rowsOf(t, hs, "reader", `/-/_view/starredByUser?key="nobody"`); len(got) != 0 {
		t.Fatalf("nobody's stars = %v", got)
	}
	expectError(t, hs.get("reader", `/-/_view/starredByUser`), http.StatusBadRequest, "key")
	if got := rowsOf(t, hs, "", `/-/_view/starredByUser?key="reader"`); len(got) != 0 {
		t.Fatalf("reader's stars seen by an anonymous caller who may read nothing = %v", got)
	}
}

// TestVisibilityIsWhetherAnonymousCallersMayRead: `npm access get status`
// says public when the registry's anonymous scopes let anyone read the
// package, else private; it needs read itself.
func TestVisibilityIsWhetherAnonymousCallersMayRead(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: map[string][]string{"admin": {"*"}, "other": {"npm:package:other:read"}},
		anonymous: []string{"npm:package:@pub/*:read"}})
	hs.mustPublish("@pub/open", "1.0.0")
	hs.mustPublish("closed", "1.0.0")
	for name, want := range map[string]bool{"@pub/open": true, "closed": false} {
		w := hs.get("admin", "/-/package/"+escapeName(name)+"/visibility")
		expectStatus(t, w, http.StatusOK)
		if got := decodeBody(t, w); !reflect.DeepEqual(got, map[string]any{"public": want}) {
			t.Fatalf("%s visibility = %v", name, got)
		}
	}
	expectStatus(t, hs.get("other", "/-/package/closed/visibility"), http.StatusForbidden)
	expectStatus(t, hs.get("admin", "/-/package/nope/visibility"), http.StatusNotFound)
	expectStatus(t, hs.get("", "/-/package/@pub%2fopen/visibility"), http.StatusOK)
}

// TestAccessListPackagesFromTheCallersScopes: `npm access list packages`
// asks /-/org/<scope>/package and, on 404, /-/user/<name>/package. A scope
// lists its packages the caller may read; a user, only the caller, lists
// every package the caller may read; each with read or write.
func TestAccessListPackagesFromTheCallersScopes(t *testing.T) {
	hs := newHarness(t, map[string][]string{
		"admin": {"*"}, "dev": {"npm:package:@acme/*:write", "npm:package:plain:read"},
	})
	for _, n := range []string{"@acme/a", "@acme/b", "@other/c", "plain", "gone"} {
		hs.mustPublish(n, "1.0.0")
	}
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/gone/-rev/x", user: "admin"}), http.StatusOK)
	list := func(user, path string) map[string]any {
		t.Helper()
		w := hs.get(user, path)
		expectStatus(t, w, http.StatusOK)
		return decodeBody(t, w)
	}
	if got := list("dev", "/-/user/dev/package"); !reflect.DeepEqual(got, map[string]any{"@acme/a": "write", "@acme/b": "write", "plain": "read"}) {
		t.Fatalf("dev's packages = %v", got)
	}
	if got := list("dev", "/-/org/acme/package"); !reflect.DeepEqual(got, map[string]any{"@acme/a": "write", "@acme/b": "write"}) {
		t.Fatalf("dev's packages of @acme = %v", got)
	}
	if got := list("admin", "/-/user/admin/package"); len(got) != 4 {
		t.Fatalf("admin's packages = %v", got)
	}
	// A scope without a package the caller may read is a 404, so that npm
	// asks for the user of that name; whether it exists is not told.
	expectStatus(t, hs.get("dev", "/-/org/other/package"), http.StatusNotFound)
	expectStatus(t, hs.get("dev", "/-/org/nope/package"), http.StatusNotFound)
	expectError(t, hs.get("dev", "/-/user/admin/package"), http.StatusMethodNotAllowed, "is not supported by this registry")
	expectStatus(t, hs.get("", "/-/user/anonymous/package"), http.StatusUnauthorized)
}

// TestProfileIsTheIdentity: `npm profile get` shows the caller's name; the
// profile cannot be changed.
func TestProfileIsTheIdentity(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	w := hs.get("writer", "/-/npm/v1/user")
	expectStatus(t, w, http.StatusOK)
	got := decodeBody(t, w)
	if got["name"] != "writer" || got["tfa"] != false {
		t.Fatalf("profile = %v", got)
	}
	expectStatus(t, hs.get("", "/-/npm/v1/user"), http.StatusUnauthorized)
	expectError(t, hs.do(call{method: http.MethodPost, path: "/-/npm/v1/user", body: []byte(`{"fullname":"W"}`), user: "writer"}),
		http.StatusMethodNotAllowed, "npm profile set is not supported by this registry")
	expectError(t, hs.do(call{method: http.MethodPost, path: "/-/npm/v1/user", body: []byte(`{"tfa":{"mode":"auth-only","password":"x"}}`), user: "writer"}),
		http.StatusMethodNotAllowed, "npm profile enable-2fa is not supported by this registry")
}

// TestUnsupportedAccountCommandsSayWhy: what has no counterpart in
// unireg's model answers 405 with a message npm prints, never a 404 that
// npm would explain as a missing package or permission.
func TestUnsupportedAccountCommandsSayWhy(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("@acme/x", "1.0.0")
	for _, tt := range []struct {
		method, path, want string
	}{
		{http.MethodGet, "/-/org/acme/user", "npm org is not supported by this registry"},
		{http.MethodPut, "/-/org/acme/user", "npm org is not supported by this registry"},
		{http.MethodDelete, "/-/org/acme/user", "npm org is not supported by this registry"},
		{http.MethodGet, "/-/org/acme/team", "npm team is not supported by this registry"},
		{http.MethodPut, "/-/org/acme/team", "npm team is not supported by this registry"},
		{http.MethodDelete, "/-/team/acme/devs", "npm team is not supported by this registry"},
		{http.MethodGet, "/-/team/acme/devs/user", "npm team is not supported by this registry"},
		{http.MethodPut, "/-/team/acme/devs/user", "npm team is not supported by this registry"},
		{http.MethodGet, "/-/team/acme/devs/package", "npm access list packages of a team is not supported by this registry"},
		{http.MethodPut, "/-/team/acme/devs/package", "npm access grant is not supported by this registry"},
		{http.MethodDelete, "/-/team/acme/devs/package", "npm access revoke is not supported by this registry"},
		{http.MethodGet, "/-/package/@acme%2fx/collaborators", "npm access list collaborators is not supported by this registry"},
		{http.MethodPost, "/-/package/@acme%2fx/access", "npm access set status is not supported by this registry"},
		{http.MethodGet, "/-/package/@acme%2fx/trust", "npm trust is not supported by this registry"},
		{http.MethodPost, "/-/package/@acme%2fx/trust", "npm trust is not supported by this registry"},
		{http.MethodDelete, "/-/package/@acme/x/trust/abc", "npm trust is not supported by this registry"},
		{http.MethodGet, "/-/stage", "npm stage is not supported by this registry"},
		{http.MethodPost, "/-/stage/package/@acme%2fx", "npm stage is not supported by this registry"},
		{http.MethodPost, "/-/stage/abc/approve", "npm stage is not supported by this registry"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			expectError(t, hs.do(call{method: tt.method, path: tt.path, user: "admin", body: []byte(`{"access":"public"}`)}), http.StatusMethodNotAllowed, tt.want)
		})
	}
	expectError(t, hs.do(call{method: http.MethodPost, path: "/-/package/@acme%2fx/access", user: "admin", body: []byte(`{"publish_requires_tfa":true}`)}),
		http.StatusMethodNotAllowed, "npm access set mfa is not supported by this registry")
	// Only callers get the answer: the registry says nothing to a wrong token.
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/-/org/acme/user", token: "unireg_wrong"}), http.StatusUnauthorized)
}
