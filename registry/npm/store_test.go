package npm

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/unireg/unireg/registry/storage"
)

func TestDocCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	doc := packument{"name": "x", "readme": strings.Repeat("r", 1000)}
	one := decodedSize(map[string]any(newCachedDoc(doc, "").doc))
	c := newDocCache(3 * one)
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		c.get("a") // a is read all the time
		c.put(name, newCachedDoc(doc, name))
		if got := c.get(name); got == nil || got.version != name {
			t.Fatalf("the entry just put is missing: %v", got)
		}
		if c.bytes() > 3*one {
			t.Fatalf("%d bytes after putting %s, max %d", c.bytes(), name, 3*one)
		}
	}
	for name, want := range map[string]bool{"a": true, "b": false, "c": false, "d": true, "e": true} {
		if got := c.get(name) != nil; got != want {
			t.Errorf("%s cached: %v, want %v", name, got, want)
		}
	}
	c.drop("d")
	if c.get("d") != nil || c.bytes() != 2*one {
		t.Fatalf("dropped entry still served, or still charged: %d bytes", c.bytes())
	}
	// A document alone above the budget is served, not kept.
	c.put("huge", newCachedDoc(packument{"readme": strings.Repeat("r", 4000)}, "h"))
	if c.get("huge") != nil || c.bytes() != 2*one {
		t.Fatalf("a document above the budget was cached: %d bytes", c.bytes())
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

// cachedDocs lists what the document cache holds.
func cachedDocs(c *docCache) map[string]*cachedDoc {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*cachedDoc{}
	for name, e := range c.entries {
		out[name] = e.Value.(*cachedDoc)
	}
	return out
}

// heldBytes is what the cache holds at the least: each document's stored
// JSON (decoded, it takes more) and every rendered copy.
func heldBytes(t *testing.T, hs *harness) int64 {
	t.Helper()
	var n int64
	for name, d := range cachedDocs(hs.h.packages.cache) {
		n += int64(len(hs.storedPackument(name)))
		d.mu.Lock()
		for _, r := range d.rendered {
			n += int64(len(r.plain) + len(r.gzipped))
		}
		d.mu.Unlock()
	}
	return n
}

// The document cache is bounded by bytes, not by a count of documents: many
// documents read under many host names (the base URL is part of what is
// rendered) keep it under its bound, and the document in use stays.
func TestDocCacheIsBoundedByBytes(t *testing.T) {
	const bound = 2 << 20
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.DocumentCacheSize = bound }})
	noise := make([]byte, 75<<10)
	for i := range 20 {
		rand.Read(noise)
		p := newPublish(fmt.Sprintf("pkg%d", i), "1.0.0", tarballOf("pkg", "1.0.0"))
		p.doc["readme"] = base64.StdEncoding.EncodeToString(noise) // 100 KB that gzip cannot shrink much
		expectStatus(t, hs.publishAs("writer", "", p), http.StatusCreated)
	}
	for round := range 10 {
		for i := range 20 {
			for _, name := range []string{"pkg0", fmt.Sprintf("pkg%d", i)} {
				for _, accept := range []string{"application/json", mediaTypeAbbreviated} {
					w := hs.do(call{method: http.MethodGet, path: fmt.Sprintf("http://host%d.example/npm/%s", round, name), user: "reader",
						header: map[string]string{"Accept": accept, "Accept-Encoding": "gzip"}})
					expectStatus(t, w, http.StatusOK)
				}
			}
			if held := heldBytes(t, hs); held > bound {
				t.Fatalf("round %d, pkg%d: the cache holds at least %d bytes, bound %d", round, i, held, bound)
			}
		}
	}
	if _, ok := cachedDocs(hs.h.packages.cache)["pkg0"]; !ok {
		t.Fatal("the document read most often was evicted")
	}
	if held, charged := heldBytes(t, hs), hs.h.packages.cache.bytes(); charged < held || charged > bound {
		t.Fatalf("the cache is charged %d bytes, holds at least %d, bound %d", charged, held, bound)
	}
}

// Reads of many documents under many hosts while they change, with a
// budget that keeps evicting: run with -race.
func TestDocCacheUnderConcurrentReadsAndWrites(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.DocumentCacheSize = 64 << 10 }})
	for i := range 4 {
		hs.mustPublish(fmt.Sprintf("p%d", i), "1.0.0")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				name := fmt.Sprintf("p%d", (g+i)%4)
				if g == 0 && i%10 == 0 {
					hs.mustPublishAs("writer", name, fmt.Sprintf("2.0.%d", i))
					continue
				}
				w := hs.do(call{method: http.MethodGet, path: fmt.Sprintf("http://h%d.example/npm/%s", i%12, name), user: "reader"})
				if w.Code != http.StatusOK {
					t.Errorf("GET %s: %d", name, w.Code)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b := hs.h.packages.cache.bytes(); b > 64<<10 || b < 0 {
		t.Fatalf("cache charged %d bytes", b)
	}
}
