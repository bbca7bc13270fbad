package npm

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/storage"
)

func TestDocCacheStaysBounded(t *testing.T) {
	c := newDocCache(2)
	for _, name := range []string{"a", "b", "c", "d"} {
		c.put(name, &cachedDoc{version: name})
		if len(c.entries) > 2 {
			t.Fatalf("%d entries after putting %s, max 2", len(c.entries), name)
		}
		if got := c.get(name); got == nil || got.version != name {
			t.Fatalf("the entry just put is missing: %v", got)
		}
	}
	c.drop("d")
	if c.get("d") != nil {
		t.Fatal("dropped entry still served")
	}
}

func TestCorruptDocumentIsInternalErrorWithoutDetails(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	if _, err := hs.store.Put(context.Background(), packumentKey("x"), strings.NewReader(`{"name":"x","versions":`), storage.Condition{}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/x", "/x/1.0.0", "/x/-/x-1.0.0.tgz"} {
		w := hs.get("reader", path)
		expectError(t, w, http.StatusInternalServerError, "internal error")
		if strings.Contains(w.Body.String(), "decode") || strings.Contains(w.Body.String(), "npm/packages") {
			t.Fatalf("500 leaks details: %s", w.Body.String())
		}
	}
	// Writes refuse too, and leave the document as it is.
	w := hs.publishAs("writer", "", newPublish("x", "1.1.0", tarballOf("x", "1.1.0")))
	expectStatus(t, w, http.StatusInternalServerError)
	if objs := hs.objects("npm/staging"); len(objs) != 0 {
		t.Fatalf("staging objects left: %v", objs)
	}
}

func TestPackumentsSurviveARestart(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	tb := hs.mustPublish("@acme/x", "1.0.0")
	before := hs.packument("reader", "@acme/x")
	restarted := hs.newHandler()
	w := hs.doOn(restarted, call{method: http.MethodGet, path: "/@acme%2fx", user: "reader"})
	expectStatus(t, w, http.StatusOK)
	if after := decodeBody(t, w); after["_rev"] != before["_rev"] || len(versionsOf(after)) != 1 {
		t.Fatalf("after restart: %v", after)
	}
	w = hs.doOn(restarted, call{method: http.MethodGet, path: "/@acme/x/-/x-1.0.0.tgz", user: "reader"})
	expectStatus(t, w, http.StatusOK)
	if w.Body.String() != string(tb) {
		t.Fatal("tarball differs after restart")
	}
}
