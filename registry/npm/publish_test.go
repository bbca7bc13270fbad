package npm

import (
	"bytes"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestPublishNewPackageServesDocumentAndTarball(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	tb := []byte("any bytes \x00\xff will do")
	p := newPublish("x", "1.0.0", tb)
	p.manifest()["dependencies"] = map[string]any{"left-pad": "^1.0.0"}
	p.manifest()["custom"] = map[string]any{"kept": []any{1.5, "a"}}
	w := hs.publishAs("writer", "", p)
	expectStatus(t, w, http.StatusCreated)
	resp := decodeBody(t, w)
	if resp["ok"] != true || resp["id"] != "x" || resp["rev"] == "" || resp["rev"] == nil {
		t.Fatalf("publish answer = %v, want ok, id and rev", resp)
	}

	doc := hs.packument("reader", "x")
	if doc["name"] != "x" || doc["_id"] != "x" || doc["description"] != "the x package" {
		t.Fatalf("document identity wrong: %v", doc)
	}
	if doc["_rev"] != resp["rev"] {
		t.Fatalf("_rev = %v, publish answered %v", doc["_rev"], resp["rev"])
	}
	if got := distTagsOf(doc); !reflect.DeepEqual(got, map[string]any{"latest": "1.0.0"}) {
		t.Fatalf("dist-tags = %v", got)
	}
	v := versionOf(doc, "1.0.0")
	if v["_id"] != "x@1.0.0" || v["version"] != "1.0.0" || v["main"] != "index.js" {
		t.Fatalf("version manifest = %v", v)
	}
	if !reflect.DeepEqual(v["custom"], map[string]any{"kept": []any{1.5, "a"}}) || !reflect.DeepEqual(v["dependencies"], map[string]any{"left-pad": "^1.0.0"}) {
		t.Fatalf("package.json fields not kept: %v", v)
	}
	dist := v["dist"].(map[string]any)
	if dist["integrity"] != integrityOf(tb) || dist["shasum"] != shasumOf(tb) {
		t.Fatalf("dist = %v", dist)
	}
	if got, want := dist["tarball"], testRoot+"/x/-/x-1.0.0.tgz"; got != want {
		t.Fatalf("tarball URL = %v, want %v", got, want)
	}
	times, _ := doc["time"].(map[string]any)
	for _, k := range []string{"created", "modified", "1.0.0"} {
		if s, _ := times[k].(string); s == "" {
			t.Fatalf("time.%s missing: %v", k, times)
		}
	}
	maint, _ := doc["maintainers"].([]any)
	if len(maint) != 1 || maint[0].(map[string]any)["name"] != "writer" {
		t.Fatalf("maintainers = %v, want the publisher", doc["maintainers"])
	}

	w = hs.get("reader", tarballURLOf(doc, "1.0.0"))
	expectStatus(t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), tb) {
		t.Fatalf("tarball = %q, want %q", w.Body.Bytes(), tb)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/octet-stream" {
		t.Fatalf("tarball Content-Type = %q", ct)
	}
	if objs := hs.objects("npm/staging"); len(objs) != 0 {
		t.Fatalf("staging objects left behind: %v", objs)
	}
}

func TestPublishBeforeAnyPackageGetsClean404(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	for _, accept := range []string{"application/json", mediaTypeAbbreviated} {
		w := hs.do(call{method: http.MethodGet, path: "/nothing-here", user: "reader", header: map[string]string{"Accept": accept}})
		expectError(t, w, http.StatusNotFound, "not found")
	}
	expectError(t, hs.get("reader", "/nothing-here/-/nothing-here-1.0.0.tgz"), http.StatusNotFound, "not found")
	expectError(t, hs.get("reader", "/nothing-here/latest"), http.StatusNotFound, "not found")
}

func TestPublishScopedPackageInEveryURLForm(t *testing.T) {
	for _, path := range []string{"/@acme%2fx", "/@acme%2Fx", "/@acme/x"} {
		t.Run(path, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			tb := tarballOf("@acme/x", "1.0.0")
			p := newPublish("@acme/x", "1.0.0", tb)
			if p.atts[0].name != "@acme/x-1.0.0.tgz" {
				t.Fatalf("attachment key %q, npm uses the full name", p.atts[0].name)
			}
			expectStatus(t, hs.publishAs("writer", path, p), http.StatusCreated)
			for _, read := range []string{"/@acme%2fx", "/@acme%2Fx", "/@acme/x"} {
				doc := hs.packument("reader", "@acme/x")
				w := hs.get("reader", read)
				expectStatus(t, w, http.StatusOK)
				if got := decodeBody(t, w); got["name"] != "@acme/x" {
					t.Fatalf("GET %s name = %v", read, got["name"])
				}
				if got, want := tarballURLOf(doc, "1.0.0"), testRoot+"/@acme/x/-/x-1.0.0.tgz"; got != want {
					t.Fatalf("tarball URL = %s, want %s", got, want)
				}
			}
			for _, tarball := range []string{"/@acme/x/-/x-1.0.0.tgz", "/@acme%2fx/-/x-1.0.0.tgz", "/@acme%2Fx/-/x-1.0.0.tgz"} {
				w := hs.get("reader", tarball)
				expectStatus(t, w, http.StatusOK)
				if !bytes.Equal(w.Body.Bytes(), tb) {
					t.Fatalf("GET %s = %q", tarball, w.Body.Bytes())
				}
			}
		})
	}
}

func TestPublishAcceptsAttachmentNamedWithoutScope(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	p := newPublish("@acme/x", "1.0.0", tarballOf("@acme/x", "1.0.0"))
	p.atts[0].name = "x-1.0.0.tgz"
	expectStatus(t, hs.publishAs("writer", "", p), http.StatusCreated)
}

func TestPublishSecondVersionMerges(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	tb1 := hs.mustPublish("x", "1.0.0")
	first := hs.packument("reader", "x")
	p := newPublish("x", "1.1.0", tarballOf("x", "1.1.0"))
	p.doc["description"] = "newer description"
	expectStatus(t, hs.publishAs("writer", "", p), http.StatusCreated)

	doc := hs.packument("reader", "x")
	if got := versionsOf(doc); !reflect.DeepEqual(got, []string{"1.0.0", "1.1.0"}) {
		t.Fatalf("versions = %v", got)
	}
	if got := distTagsOf(doc)["latest"]; got != "1.1.0" {
		t.Fatalf("latest = %v, want 1.1.0", got)
	}
	if doc["description"] != "newer description" {
		t.Fatalf("description = %v, want the latest version's", doc["description"])
	}
	if doc["_rev"] == first["_rev"] {
		t.Fatalf("_rev did not change: %v", doc["_rev"])
	}
	times := doc["time"].(map[string]any)
	if times["created"] != first["time"].(map[string]any)["created"] || times["1.0.0"] == nil || times["1.1.0"] == nil {
		t.Fatalf("time = %v", times)
	}
	w := hs.get("reader", tarballURLOf(doc, "1.0.0"))
	expectStatus(t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), tb1) {
		t.Fatal("the first version's tarball changed")
	}
	w = hs.get("reader", tarballURLOf(doc, "1.1.0"))
	expectStatus(t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), tarballOf("x", "1.1.0")) {
		t.Fatal("the second version's tarball is wrong")
	}
}

func TestPublishDistTags(t *testing.T) {
	type step struct {
		version string
		tags    map[string]any // the body's dist-tags
		want    map[string]any // the document's dist-tags after
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"default publishes move latest", []step{
			{"1.0.0", map[string]any{"latest": "1.0.0"}, map[string]any{"latest": "1.0.0"}},
			{"2.0.0", map[string]any{"latest": "2.0.0"}, map[string]any{"latest": "2.0.0"}},
		}},
		{"a tag on the first publish still creates latest", []step{
			{"1.0.0-beta.1", map[string]any{"beta": "1.0.0-beta.1"}, map[string]any{"latest": "1.0.0-beta.1", "beta": "1.0.0-beta.1"}},
		}},
		{"a tag later does not move latest", []step{
			{"1.0.0", map[string]any{"latest": "1.0.0"}, map[string]any{"latest": "1.0.0"}},
			{"2.0.0-rc.1", map[string]any{"next": "2.0.0-rc.1"}, map[string]any{"latest": "1.0.0", "next": "2.0.0-rc.1"}},
			{"1.0.1", map[string]any{"latest": "1.0.1"}, map[string]any{"latest": "1.0.1", "next": "2.0.0-rc.1"}},
		}},
		{"tags naming other versions are ignored", []step{
			{"1.0.0", map[string]any{"latest": "1.0.0"}, map[string]any{"latest": "1.0.0"}},
			{"1.1.0", map[string]any{"latest": "9.9.9", "beta": "1.0.0"}, map[string]any{"latest": "1.1.0"}},
		}},
		{"no dist-tags means latest", []step{
			{"1.0.0", map[string]any{}, map[string]any{"latest": "1.0.0"}},
		}},
		{"a range npm resolves as a range is a tag, and a later one leaves latest", []step{
			{"1.1.21", map[string]any{"latest": "1.1.21"}, map[string]any{"latest": "1.1.21"}},
			{"2.0.1", map[string]any{"latest": "2.0.1"}, map[string]any{"latest": "2.0.1"}},
			{"1.1.22", map[string]any{"1.x": "1.1.22"}, map[string]any{"latest": "2.0.1", "1.x": "1.1.22"}},
		}},
		{"a first publish with tag 1.x also creates latest", []step{
			{"1.0.0", map[string]any{"1.x": "1.0.0"}, map[string]any{"latest": "1.0.0", "1.x": "1.0.0"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			for _, s := range tt.steps {
				p := newPublish("x", s.version, tarballOf("x", s.version)).tag(s.tags)
				expectStatus(t, hs.publishAs("writer", "", p), http.StatusCreated)
				if got := distTagsOf(hs.packument("reader", "x")); !reflect.DeepEqual(got, s.want) {
					t.Fatalf("after %s: dist-tags = %v, want %v", s.version, got, s.want)
				}
			}
		})
	}
}

// TestPublishWithAnInvalidTagIsRefused: a tag npm would take as a version,
// or could not address, fails the publish with the reason; nothing is
// stored and latest stays where it was.
func TestPublishWithAnInvalidTagIsRefused(t *testing.T) {
	for _, tag := range []string{"1.0.1", "v1.0.1", "a/b", "", "a b", "^1.0.0"} {
		t.Run(tag, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			hs.mustPublish("x", "1.0.0")
			before := hs.storedPackument("x")
			p := newPublish("x", "1.0.1", tarballOf("x", "1.0.1")).tag(map[string]any{tag: "1.0.1"})
			expectError(t, hs.publishAs("writer", "", p), http.StatusBadRequest, "invalid dist-tag")
			if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
				t.Fatalf("document changed:\n%s", got)
			}
			if objs := hs.objects(packageKey("x") + "/tarballs"); len(objs) != 1 {
				t.Fatalf("tarballs after a refused publish: %v", objs)
			}
		})
	}
	t.Run("first publish", func(t *testing.T) {
		hs := newHarness(t, defaultUsers())
		p := newPublish("x", "1.0.0", tarballOf("x", "1.0.0")).tag(map[string]any{"v1.0.0": "1.0.0"})
		expectError(t, hs.publishAs("writer", "", p), http.StatusBadRequest, `invalid dist-tag "v1.0.0"`)
		if objs := hs.objects("npm"); len(objs) != 0 {
			t.Fatalf("objects after a refused publish: %v", objs)
		}
	})
}

func TestPublishOverExistingVersionIs403AndKeepsTheOriginal(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	tb := hs.mustPublish("x", "1.0.0")
	before := hs.storedPackument("x")
	for _, content := range [][]byte{tb, []byte("different content")} {
		w := hs.publishAs("admin", "", newPublish("x", "1.0.0", content))
		expectError(t, w, http.StatusForbidden, "previously published")
		if !bytes.Contains(w.Body.Bytes(), []byte("1.0.0")) {
			t.Fatalf("error does not name the version: %s", w.Body.String())
		}
		if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
			t.Fatalf("document changed:\n%s\nwas\n%s", got, before)
		}
		w = hs.get("reader", "/x/-/x-1.0.0.tgz")
		expectStatus(t, w, http.StatusOK)
		if !bytes.Equal(w.Body.Bytes(), tb) {
			t.Fatalf("tarball now %q, want the original", w.Body.Bytes())
		}
		if objs := hs.objects("npm/packages/x/tarballs"); len(objs) != 1 {
			t.Fatalf("tarballs stored: %v, want only the original", objs)
		}
		if objs := hs.objects("npm/staging"); len(objs) != 0 {
			t.Fatalf("staging objects left: %v", objs)
		}
	}
}

func TestPublishOfUnpublishedVersionIsRefused(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	hs.mustPublish("x", "2.0.0")
	doc := hs.writeDoc("x")
	delete(doc["versions"].(map[string]any), "2.0.0")
	expectStatus(t, hs.putDoc("admin", "x", doc), http.StatusOK)
	w := hs.publishAs("admin", "", newPublish("x", "2.0.0", []byte("new content")))
	expectError(t, w, http.StatusForbidden, "previously published")
	if objs := hs.objects("npm/packages/x/tarballs"); len(objs) != 1 {
		t.Fatalf("tarballs stored: %v", objs)
	}
}

func TestPublishRefusalsLeaveNothingBehind(t *testing.T) {
	tests := []struct {
		name   string
		path   string // "" for /x
		status int
		want   string
		edit   func(p *publishReq)
	}{
		{"integrity mismatch", "", 400, "integrity mismatch", func(p *publishReq) {
			p.dist()["integrity"] = integrityOf([]byte("other"))
		}},
		{"integrity not sha512", "", 400, "integrity mismatch", func(p *publishReq) {
			p.dist()["integrity"] = "sha1-" + base64.StdEncoding.EncodeToString([]byte("01234567890123456789"))
		}},
		{"integrity missing", "", 400, "integrity", func(p *publishReq) {
			delete(p.dist(), "integrity")
		}},
		{"shasum mismatch", "", 400, "shasum mismatch", func(p *publishReq) {
			p.dist()["shasum"] = shasumOf([]byte("other"))
		}},
		{"dist missing", "", 400, "dist is missing", func(p *publishReq) {
			delete(p.manifest(), "dist")
		}},
		{"declared length too long", "", 400, "declares", func(p *publishReq) {
			p.atts[0].att["length"] = len(tarballOf("x", "1.1.0")) + 1
		}},
		{"declared length too short", "", 400, "declares", func(p *publishReq) {
			p.atts[0].att["length"] = 1
		}},
		{"attachment for another version", "", 400, "attachment is named", func(p *publishReq) {
			p.atts[0].name = "x-9.9.9.tgz"
		}},
		{"attachment for another package", "", 400, "attachment is named", func(p *publishReq) {
			p.atts[0].name = "y-1.1.0.tgz"
		}},
		{"name in body differs from URL", "", 400, "does not match", func(p *publishReq) {
			p.doc["name"] = "y"
			p.doc["_id"] = "y"
			p.manifest()["name"] = "y"
		}},
		{"_id differs from URL", "", 400, "_id", func(p *publishReq) {
			p.doc["_id"] = "y"
		}},
		{"version manifest names another package", "", 400, "must have name", func(p *publishReq) {
			p.manifest()["name"] = "y"
		}},
		{"version manifest names another version", "", 400, "must have name", func(p *publishReq) {
			p.manifest()["version"] = "1.1.1"
		}},
		{"invalid version", "", 400, "not a valid semantic version", func(p *publishReq) {
			m := p.manifest()
			m["version"] = "1.1"
			p.doc["versions"] = map[string]any{"1.1": m}
			p.atts[0].name = "x-1.1.tgz"
		}},
		{"two versions", "", 400, "exactly one version", func(p *publishReq) {
			m := p.manifest()
			p.doc["versions"].(map[string]any)["1.2.0"] = m
		}},
		{"no version", "", 400, "exactly one version", func(p *publishReq) {
			p.doc["versions"] = map[string]any{}
		}},
		{"invalid base64", "", 400, "base64", func(p *publishReq) {
			p.atts[0].att["data"] = "this is not base64!"
		}},
		{"two attachments", "", 400, "exactly one attachment", func(p *publishReq) {
			p.atts = append(p.atts, namedAttachment{name: "x-1.2.0.tgz", att: map[string]any{"data": "AAAA"}})
		}},
		{"attachment without data", "", 400, "has no data", func(p *publishReq) {
			delete(p.atts[0].att, "data")
		}},
		{"invalid package name", "/_x", 400, "invalid package name", func(p *publishReq) {
			p.doc["name"] = "_x"
			p.doc["_id"] = "_x"
			p.manifest()["name"] = "_x"
			p.atts[0].name = "_x-1.1.0.tgz"
		}},
	}
	for _, tt := range tests {
		for _, existing := range []bool{false, true} {
			name := tt.name + "/new package"
			if existing {
				name = tt.name + "/existing package"
			}
			t.Run(name, func(t *testing.T) {
				hs := newHarness(t, defaultUsers())
				if existing {
					hs.mustPublish("x", "1.0.0")
				}
				before := hs.storedPackument("x")
				tarballsBefore := hs.objects("npm/packages/x/tarballs")
				p := newPublish("x", "1.1.0", tarballOf("x", "1.1.0"))
				tt.edit(p)
				w := hs.publishAs("writer", tt.path, p)
				expectError(t, w, tt.status, tt.want)
				if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
					t.Fatalf("document changed:\n%s\nwas\n%s", got, before)
				}
				if got := hs.objects("npm/packages/x/tarballs"); !reflect.DeepEqual(got, tarballsBefore) {
					t.Fatalf("tarballs = %v, were %v", got, tarballsBefore)
				}
				if got := hs.objects("npm/staging"); len(got) != 0 {
					t.Fatalf("staging objects left: %v", got)
				}
				if got := hs.objects("npm/packages"); !existing && len(got) != 0 {
					t.Fatalf("objects stored for a refused new package: %v", got)
				}
				if !existing {
					expectStatus(t, hs.get("reader", "/x"), http.StatusNotFound)
				}
				for _, e := range hs.recorded() {
					if e.Action == "package.published" && e.Version == "1.1.0" {
						t.Fatalf("refused publish emitted %+v", e)
					}
				}
			})
		}
	}
}

func TestPublishMalformedBodyIs400(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	for _, body := range []string{``, `not json`, `{"name":"x",`, `[]`, `{"name":"x","_attachments":{"x-1.0.0.tgz":{"data":"AAAA"`} {
		w := hs.do(call{method: http.MethodPut, path: "/x", body: []byte(body), user: "writer"})
		expectError(t, w, http.StatusBadRequest, "invalid")
	}
	if objs := hs.objects("npm"); len(objs) != 0 {
		t.Fatalf("objects stored: %v", objs)
	}
}

func TestPublishSizeLimitsAre413(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) {
		o.MaxTarballSize = 64
		o.MaxDocumentSize = 4096
	}})
	// A tarball of exactly the limit is fine.
	tb := bytes.Repeat([]byte("a"), 64)
	expectStatus(t, hs.publishAs("writer", "", newPublish("x", "1.0.0", tb)), http.StatusCreated)

	big := bytes.Repeat([]byte("b"), 65)
	expectError(t, hs.publishAs("writer", "", newPublish("x", "1.1.0", big)), http.StatusRequestEntityTooLarge, "tarball exceeds 64 bytes")

	p := newPublish("x", "1.2.0", tarballOf("x", "1.2.0"))
	p.doc["readme"] = strings.Repeat("r", 5000)
	expectError(t, hs.publishAs("writer", "", p), http.StatusRequestEntityTooLarge, "document exceeds 4096 bytes")

	if got := versionsOf(hs.packument("reader", "x")); !reflect.DeepEqual(got, []string{"1.0.0"}) {
		t.Fatalf("versions = %v", got)
	}
	if objs := hs.objects("npm/packages/x/tarballs"); len(objs) != 1 {
		t.Fatalf("tarballs = %v", objs)
	}
	if objs := hs.objects("npm/staging"); len(objs) != 0 {
		t.Fatalf("staging objects left: %v", objs)
	}
}

func TestPublishDisabledIs405(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.DisablePublish = true }})
	expectError(t, hs.publishAs("admin", "", newPublish("x", "1.0.0", tarballOf("x", "1.0.0"))), http.StatusMethodNotAllowed, "disabled")
	if objs := hs.objects("npm"); len(objs) != 0 {
		t.Fatalf("objects stored: %v", objs)
	}
}

func TestPublishEmitsEventWithIdentity(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	expectStatus(t, hs.publishAs("writer", "", newPublish("@acme/x", "1.0.0", tarballOf("@acme/x", "1.0.0"))), http.StatusCreated)
	events := hs.recorded()
	if len(events) != 2 {
		t.Fatalf("events = %+v, want package.published and dist-tag.set", events)
	}
	e := events[0]
	if e.Action != "package.published" || e.Package != "@acme/x" || e.Version != "1.0.0" || e.Tag != "latest" {
		t.Fatalf("event = %+v", e)
	}
	for _, e := range events {
		if e.Identity == nil || e.Identity.Subject != "writer" || e.Identity.Anonymous {
			t.Fatalf("%s identity = %+v, want writer", e.Action, e.Identity)
		}
	}
}

// A publish moves a dist-tag as `npm dist-tag add` does, and an audit sees
// it both ways: in the published event and as its own dist-tag.set.
func TestPublishReportsTheDistTagItMoves(t *testing.T) {
	tests := []struct {
		name string
		tags map[string]any // dist-tags of the publish body; nil: none
		want []string
	}{
		{"default latest", map[string]any{"latest": "1.0.0"}, []string{"package.published latest 1.0.0", "dist-tag.set latest 1.0.0"}},
		{"npm publish --tag next", map[string]any{"next": "1.0.0"}, []string{"package.published next 1.0.0", "dist-tag.set next 1.0.0"}},
		{"no dist-tags", nil, []string{"package.published latest 1.0.0", "dist-tag.set latest 1.0.0"}},
		{"several tags", map[string]any{"next": "1.0.0", "beta": "1.0.0"}, []string{"package.published beta,next 1.0.0", "dist-tag.set beta 1.0.0", "dist-tag.set next 1.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			p := newPublish("x", "1.0.0", tarballOf("x", "1.0.0"))
			p.doc["dist-tags"] = tt.tags
			expectStatus(t, hs.publishAs("writer", "", p), http.StatusCreated)
			var got []string
			for _, e := range hs.recorded() {
				got = append(got, e.Action+" "+e.Tag+" "+e.Version)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("events = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPublishKeepsMaintainersFromBodyOnFirstPublish(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	p := newPublish("x", "1.0.0", tarballOf("x", "1.0.0"))
	p.doc["maintainers"] = []any{map[string]any{"name": "alice", "email": "a@example.com"}}
	expectStatus(t, hs.publishAs("writer", "", p), http.StatusCreated)
	p = newPublish("x", "1.1.0", tarballOf("x", "1.1.0"))
	p.doc["maintainers"] = []any{map[string]any{"name": "mallory", "email": "m@example.com"}}
	expectStatus(t, hs.publishAs("writer", "", p), http.StatusCreated)
	want := []any{map[string]any{"name": "alice", "email": "a@example.com"}}
	if got := hs.packument("reader", "x")["maintainers"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("maintainers = %v, want %v (a publish does not replace them)", got, want)
	}
}

func TestConcurrentPublishesOfNewPackageKeepEveryVersion(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	handlers := []*Handler{hs.h, hs.newHandler()}
	const n = 32
	codes := make([]int, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := fmt.Sprintf("1.0.%d", i)
			p := newPublish("x", v, tarballOf("x", v))
			w := hs.doOn(handlers[i%2], call{method: http.MethodPut, path: "/x", body: p.body(), user: "writer"})
			codes[i], bodies[i] = w.Code, w.Body.String()
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusCreated {
			t.Errorf("publish of 1.0.%d: %d %s", i, c, bodies[i])
		}
	}
	for _, h := range handlers {
		w := hs.doOn(h, call{method: http.MethodGet, path: "/x", user: "reader"})
		expectStatus(t, w, http.StatusOK)
		doc := decodeBody(t, w)
		if got := len(versionsOf(doc)); got != n {
			t.Fatalf("%d versions present, want %d: %v", got, n, versionsOf(doc))
		}
		for i := range n {
			v := fmt.Sprintf("1.0.%d", i)
			integrity := versionOf(doc, v)["dist"].(map[string]any)["integrity"]
			tw := hs.doOn(h, call{method: http.MethodGet, path: tarballURLOf(doc, v), user: "reader"})
			expectStatus(t, tw, http.StatusOK)
			sum := sha512.Sum512(tw.Body.Bytes())
			if got := "sha512-" + base64.StdEncoding.EncodeToString(sum[:]); got != integrity {
				t.Fatalf("tarball of %s has integrity %s, document says %v", v, got, integrity)
			}
			if !bytes.Equal(tw.Body.Bytes(), tarballOf("x", v)) {
				t.Fatalf("tarball of %s has the wrong content", v)
			}
		}
	}
	if objs := hs.objects("npm/packages/x/tarballs"); len(objs) != n {
		t.Fatalf("%d tarballs stored, want %d", len(objs), n)
	}
	if objs := hs.objects("npm/staging"); len(objs) != 0 {
		t.Fatalf("staging objects left: %v", objs)
	}
}

func TestConcurrentPublishesOfOneVersionCreateItOnce(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	handlers := []*Handler{hs.h, hs.newHandler()}
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			content := []byte(fmt.Sprintf("attempt %d", i))
			p := newPublish("x", "1.0.0", content)
			codes[i] = hs.doOn(handlers[i%2], call{method: http.MethodPut, path: "/x", body: p.body(), user: "writer"}).Code
		}()
	}
	wg.Wait()
	created := 0
	for _, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusForbidden:
		default:
			t.Fatalf("statuses %v: want 201 once and 403 for the rest", codes)
		}
	}
	if created != 1 {
		t.Fatalf("statuses %v: want exactly one 201", codes)
	}
	doc := hs.packument("reader", "x")
	w := hs.get("reader", tarballURLOf(doc, "1.0.0"))
	expectStatus(t, w, http.StatusOK)
	sum := sha512.Sum512(w.Body.Bytes())
	if got := versionOf(doc, "1.0.0")["dist"].(map[string]any)["integrity"]; got != "sha512-"+base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("served tarball does not match the winning document's integrity %v", got)
	}
	if objs := hs.objects("npm/packages/x/tarballs"); len(objs) != 1 || !strings.HasSuffix(objs[0], hex.EncodeToString(sum[:])) {
		t.Fatalf("tarballs stored: %v, want only the winner's", objs)
	}
}

func TestUploadsInProgressReturnsToZero(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	hs.publishAs("reader", "", newPublish("x", "1.1.0", tarballOf("x", "1.1.0")))
	if n := hs.h.UploadsInProgress(); n != 0 {
		t.Fatalf("UploadsInProgress = %d after the publishes ended", n)
	}
}
