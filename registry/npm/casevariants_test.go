package npm

import (
	"net/http"
	"testing"
)

// TestLegacyNamesPublishAndRead: a name valid only for old packages
// (capitals) publishes, and its document, version and tarball are served.
func TestLegacyNamesPublishAndRead(t *testing.T) {
	for _, name := range []string{"JSONStream", "@acme/JSONStream", "a(b)!"} {
		t.Run(name, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			tb := hs.mustPublish(name, "1.3.5")
			doc := hs.packument("reader", name)
			if doc["name"] != name || distTagsOf(doc)["latest"] != "1.3.5" {
				t.Fatalf("document: %v", doc)
			}
			expectStatus(t, hs.get("reader", "/"+escapeName(name)+"/1.3.5"), http.StatusOK)
			w := hs.get("reader", tarballURLOf(doc, "1.3.5"))
			expectStatus(t, w, http.StatusOK)
			if w.Body.String() != string(tb) {
				t.Fatalf("tarball %q", w.Body.String())
			}
		})
	}
}

// TestNewCaseVariantOfAPackageIsRefused: a new package whose name differs
// from a package held here only by case is refused, as the public registry
// refuses it; the existing package takes new versions, and a package
// deleted does not count.
func TestNewCaseVariantOfAPackageIsRefused(t *testing.T) {
	for _, tt := range []struct{ existing, variant string }{
		{"JSONStream", "jsonstream"},
		{"jsonstream", "JSONStream"},
		{"JSONStream", "JsonStream"},
		{"@acme/JSONStream", "@acme/jsonstream"},
	} {
		t.Run(tt.variant, func(t *testing.T) {
			hs := newHarness(t, defaultUsers())
			hs.mustPublish(tt.existing, "1.0.0")
			p := newPublish(tt.variant, "1.0.0", tarballOf(tt.variant, "1.0.0"))
			expectError(t, hs.publishAs("writer", "", p), http.StatusConflict, "differs only in case from the existing package "+tt.existing)
			expectStatus(t, hs.get("reader", "/"+escapeName(tt.variant)), http.StatusNotFound)
			if objs := hs.objects(packageKey(tt.variant)); len(objs) != 0 {
				t.Fatalf("a refused publish left %v", objs)
			}
			hs.mustPublish(tt.existing, "1.0.1")
		})
	}

	t.Run("other scopes and deleted packages do not count", func(t *testing.T) {
		hs := newHarness(t, defaultUsers())
		hs.mustPublish("@acme/lib", "1.0.0")
		hs.mustPublish("@other/LIB", "1.0.0")
		hs.mustPublish("LIB", "1.0.0")
		expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/LIB/-rev/x", user: "admin"}), http.StatusOK)
		hs.mustPublish("lib", "1.0.0")
	})
}

// TestAllowCaseVariantsHoldsBoth: with Settings.AllowCaseVariants (the
// --npm-allow-case-variants of a migration) both names publish and each
// keeps its own document.
func TestAllowCaseVariantsHoldsBoth(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.AllowCaseVariants = true }})
	hs.mustPublish("JSONStream", "1.0.0")
	hs.mustPublish("jsonstream", "2.0.0")
	if v := versionsOf(hs.packument("reader", "JSONStream")); len(v) != 1 || v[0] != "1.0.0" {
		t.Fatalf("JSONStream versions %v", v)
	}
	if v := versionsOf(hs.packument("reader", "jsonstream")); len(v) != 1 || v[0] != "2.0.0" {
		t.Fatalf("jsonstream versions %v", v)
	}
}
