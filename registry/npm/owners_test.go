package npm

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
)

// ownerBody is what `npm owner add/rm` sends: {_id, _rev, maintainers},
// without name or versions.
func ownerBody(t *testing.T, id, rev string, maintainers ...string) []byte {
	t.Helper()
	list := []any{}
	for _, m := range maintainers {
		list = append(list, map[string]any{"name": m, "email": m + "@example.com"})
	}
	return jsonString(t, map[string]any{"_id": id, "_rev": rev, "maintainers": list})
}

func maintainerNames(doc map[string]any) []string {
	var names []string
	for _, m := range doc["maintainers"].([]any) {
		names = append(names, m.(map[string]any)["name"].(string))
	}
	return names
}

func TestOwnerAddAndRemoveChangeMaintainers(t *testing.T) {
	for _, name := range []string{"x", "@acme/x"} {
		t.Run(name, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			hs.mustPublish(name, "1.0.0")
			before := hs.packument("reader", name)
			put := func(maintainers ...string) {
				t.Helper()
				rev := hs.writeDoc(name)["_rev"].(string)
				w := hs.do(call{method: http.MethodPut, path: "/" + escapeName(name) + "/-rev/" + rev, body: ownerBody(t, name, rev, maintainers...), user: "writer"})
				expectStatus(t, w, http.StatusOK)
			}
			put("admin", "bob")
			doc := hs.packument("reader", name)
			if got := maintainerNames(doc); !reflect.DeepEqual(got, []string{"admin", "bob"}) {
				t.Fatalf("maintainers after add = %v", got)
			}
			if doc["_rev"] == before["_rev"] {
				t.Fatal("the revision did not change")
			}
			if !reflect.DeepEqual(doc["versions"], before["versions"]) || !reflect.DeepEqual(doc["dist-tags"], before["dist-tags"]) {
				t.Fatal("an owner change touched versions or dist-tags")
			}
			put("bob")
			if got := maintainerNames(hs.packument("reader", name)); !reflect.DeepEqual(got, []string{"bob"}) {
				t.Fatalf("maintainers after rm = %v", got)
			}
			last := hs.recorded()[len(hs.recorded())-1]
			if last.Action != "package.changed" || last.Package != name {
				t.Fatalf("event = %+v", last)
			}
		})
	}
}

func TestOwnerChangeRefusals(t *testing.T) {
	tests := []struct {
		name   string
		user   string
		body   func(rev string) []byte
		status int
		want   string
	}{
		{"a reader", "reader", func(rev string) []byte { return ownerBody(t, "x", rev, "admin", "mallory") }, 403, "npm:package:x:write"},
		{"anonymous", "", func(rev string) []byte { return ownerBody(t, "x", rev, "mallory") }, 401, "authentication"},
		{"no maintainer left", "writer", func(rev string) []byte { return ownerBody(t, "x", rev) }, 400, "at least one maintainer"},
		{"a stale revision", "writer", func(string) []byte { return ownerBody(t, "x", "1-0", "admin", "bob") }, 409, "fetch it again"},
		{"another package's id", "writer", func(rev string) []byte { return ownerBody(t, "y", rev, "bob") }, 400, "does not match"},
		{"a maintainer without a name", "writer", func(rev string) []byte {
			return jsonString(t, map[string]any{"_id": "x", "_rev": rev, "maintainers": []any{map[string]any{"email": "a@b"}}})
		}, 400, "name"},
		{"maintainers not a list", "writer", func(rev string) []byte {
			return jsonString(t, map[string]any{"_id": "x", "_rev": rev, "maintainers": "bob"})
		}, 400, "maintainers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			hs.mustPublish("x", "1.0.0")
			rev := hs.writeDoc("x")["_rev"].(string)
			before := hs.storedPackument("x")
			w := hs.do(call{method: http.MethodPut, path: "/x/-rev/" + rev, body: tt.body(rev), user: tt.user})
			expectError(t, w, tt.status, tt.want)
			if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
				t.Fatalf("document changed:\n%s", got)
			}
		})
	}
}

// TestOwnerChangeKeepsOnlyNameAndEmail: a maintainer entry is metadata,
// stored as npm shows it; duplicates collapse.
func TestOwnerChangeKeepsOnlyNameAndEmail(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	rev := hs.writeDoc("x")["_rev"].(string)
	body := jsonString(t, map[string]any{"_id": "x", "_rev": rev, "maintainers": []any{
		map[string]any{"name": "bob", "email": "b@example.com", "roles": []any{"_admin"}},
		map[string]any{"name": "bob", "email": "other@example.com"},
		map[string]any{"name": "carol"},
	}})
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/x/-rev/" + rev, body: body, user: "writer"}), http.StatusOK)
	want := []any{map[string]any{"name": "bob", "email": "b@example.com"}, map[string]any{"name": "carol", "email": ""}}
	if got := hs.packument("reader", "x")["maintainers"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("maintainers = %v, want %v", got, want)
	}
}
