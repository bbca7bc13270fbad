package npm

import (
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestDistTagsListSetRemove(t *testing.T) {
	for _, name := range []string{"x", "@acme/x"} {
		for _, form := range []string{"escaped", "upper", "plain"} {
			t.Run(name+"/"+form, func(t *testing.T) {
				hs := newHarness(t, defaultUsers())
				hs.mustPublish(name, "1.0.0")
				hs.mustPublish(name, "2.0.0")
				path := "/-/package/" + map[string]string{
					"escaped": escapeName(name),
					"upper":   strings.ReplaceAll(escapeName(name), "%2f", "%2F"),
					"plain":   name,
				}[form] + "/dist-tags"

				w := hs.get("reader", path)
				expectStatus(t, w, http.StatusOK)
				if got := decodeBody(t, w); !reflect.DeepEqual(got, map[string]any{"latest": "2.0.0"}) {
					t.Fatalf("dist-tags = %v", got)
				}

				w = hs.do(call{method: http.MethodPut, path: path + "/beta", body: []byte(`"1.0.0"`), user: "writer",
					header: map[string]string{"Content-Type": "application/json"}})
				expectStatus(t, w, http.StatusCreated)
				if got := decodeBody(t, w); got["ok"] != true || !reflect.DeepEqual(got["dist-tags"], map[string]any{"latest": "2.0.0", "beta": "1.0.0"}) {
					t.Fatalf("PUT answered %v, want ok and the dist-tags", got)
				}
				if got := distTagsOf(hs.packument("reader", name)); !reflect.DeepEqual(got, map[string]any{"latest": "2.0.0", "beta": "1.0.0"}) {
					t.Fatalf("document dist-tags = %v", got)
				}

				w = hs.do(call{method: http.MethodDelete, path: path + "/beta", user: "writer"})
				expectStatus(t, w, http.StatusOK)
				if got := decodeBody(t, w); got["ok"] != true || !reflect.DeepEqual(got["dist-tags"], map[string]any{"latest": "2.0.0"}) {
					t.Fatalf("DELETE answered %v, want ok and the dist-tags", got)
				}
				if got := distTagsOf(hs.packument("reader", name)); !reflect.DeepEqual(got, map[string]any{"latest": "2.0.0"}) {
					t.Fatalf("document dist-tags = %v", got)
				}
			})
		}
	}
}

func TestDistTagMovesLatestBack(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	hs.mustPublish("x", "2.0.0")
	expectStatus(t, hs.do(call{method: http.MethodPut, path: "/-/package/x/dist-tags/latest", body: []byte(`"1.0.0"`), user: "writer"}), http.StatusCreated)
	w := hs.get("reader", "/x/latest")
	expectStatus(t, w, http.StatusOK)
	if v := decodeBody(t, w)["version"]; v != "1.0.0" {
		t.Fatalf("latest serves %v", v)
	}
	last := hs.recorded()[len(hs.recorded())-1]
	if last.Action != "dist-tag.set" || last.Tag != "latest" || last.Version != "1.0.0" || last.Identity.Subject != "writer" {
		t.Fatalf("event = %+v", last)
	}
}

func TestDistTagRefusals(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		user   string
		status int
		want   string
	}{
		{"removing latest", http.MethodDelete, "/-/package/x/dist-tags/latest", "", "admin", 400, "latest"},
		{"semver as tag", http.MethodPut, "/-/package/x/dist-tags/1.0.0", `"1.0.0"`, "admin", 400, "invalid dist-tag"},
		{"prerelease semver as tag", http.MethodPut, "/-/package/x/dist-tags/2.0.0-beta.1", `"1.0.0"`, "admin", 400, "invalid dist-tag"},
		{"semver npm reads loosely as tag", http.MethodPut, "/-/package/x/dist-tags/v1.0.0", `"1.0.0"`, "admin", 400, "invalid dist-tag"},
		{"tag with a slash", http.MethodPut, "/-/package/x/dist-tags/a%2Fb", `"1.0.0"`, "admin", 400, "invalid dist-tag"},
		{"tag npm cannot address", http.MethodPut, "/-/package/x/dist-tags/a%20b", `"1.0.0"`, "admin", 400, "invalid dist-tag"},
		{"unknown version", http.MethodPut, "/-/package/x/dist-tags/beta", `"9.9.9"`, "admin", 400, "9.9.9"},
		{"body not a JSON string", http.MethodPut, "/-/package/x/dist-tags/beta", `1.0.0`, "admin", 400, "JSON string"},
		{"body an object", http.MethodPut, "/-/package/x/dist-tags/beta", `{"version":"1.0.0"}`, "admin", 400, "JSON string"},
		{"unknown package", http.MethodPut, "/-/package/nope/dist-tags/beta", `"1.0.0"`, "admin", 404, "not found"},
		{"list of unknown package", http.MethodGet, "/-/package/nope/dist-tags", "", "admin", 404, "not found"},
		{"removing unknown tag", http.MethodDelete, "/-/package/x/dist-tags/nope", "", "admin", 404, "nope"},
		{"reader setting", http.MethodPut, "/-/package/x/dist-tags/beta", `"1.0.0"`, "reader", 403, "write"},
		{"reader removing", http.MethodDelete, "/-/package/x/dist-tags/beta", "", "reader", 403, "write"},
		{"anonymous listing", http.MethodGet, "/-/package/x/dist-tags", "", "", 401, "authentication"},
		{"anonymous setting", http.MethodPut, "/-/package/x/dist-tags/beta", `"1.0.0"`, "", 401, "authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			hs.mustPublish("x", "1.0.0")
			expectStatus(t, hs.do(call{method: http.MethodPut, path: "/-/package/x/dist-tags/beta", body: []byte(`"1.0.0"`), user: "admin"}), http.StatusCreated)
			before := hs.storedPackument("x")
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			expectError(t, hs.do(call{method: tt.method, path: tt.path, body: body, user: tt.user}), tt.status, tt.want)
			if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
				t.Fatalf("document changed:\n%s", got)
			}
		})
	}
}

// TestDistTagsThePublicRegistryHolds: tags such as 1.x and 2.x (ranges npm
// resolves as ranges) are set like any other.
func TestDistTagsThePublicRegistryHolds(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	hs.mustPublish("x", "2.0.0")
	for tag, v := range map[string]string{"1.x": "1.0.0", "2.x": "2.0.0", "1beta": "1.0.0", "-x": "1.0.0"} {
		expectStatus(t, hs.do(call{method: http.MethodPut, path: "/-/package/x/dist-tags/" + tag, body: []byte(`"` + v + `"`), user: "writer"}), http.StatusCreated)
	}
	want := map[string]any{"latest": "2.0.0", "1.x": "1.0.0", "2.x": "2.0.0", "1beta": "1.0.0", "-x": "1.0.0"}
	if got := distTagsOf(hs.packument("reader", "x")); !reflect.DeepEqual(got, want) {
		t.Fatalf("dist-tags = %v, want %v", got, want)
	}
}

// TestChangeWithAnInvalidNewTagIsRefused: a whole document sent back may
// keep its tags, but a tag it adds or moves follows the rule of the
// dist-tag endpoint.
func TestChangeWithAnInvalidNewTagIsRefused(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	hs.mustPublish("x", "2.0.0")
	before := hs.storedPackument("x")
	doc := hs.writeDoc("x")
	doc["dist-tags"].(map[string]any)["v1.0.0"] = "1.0.0"
	expectError(t, hs.putDoc("writer", "x", doc), http.StatusBadRequest, `invalid dist-tag "v1.0.0"`)
	if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
		t.Fatalf("document changed:\n%s", got)
	}
	doc = hs.writeDoc("x")
	doc["dist-tags"].(map[string]any)["1.x"] = "1.0.0"
	expectStatus(t, hs.putDoc("writer", "x", doc), http.StatusOK)
	if got := distTagsOf(hs.packument("reader", "x")); !reflect.DeepEqual(got, map[string]any{"latest": "2.0.0", "1.x": "1.0.0"}) {
		t.Fatalf("dist-tags = %v", got)
	}
}
