package oci

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

func TestTagListPaginatesWithLink(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	body := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`)
	for _, tag := range []string{"c", "a", "e", "b", "d"} {
		expectStatus(t, putManifest(hs, "r", tag, MediaTypeOCIIndex, body), http.StatusCreated)
	}
	var got []string
	path := "/v2/r/tags/list?n=2"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		w := hs.do(call{method: "GET", path: path, user: "admin"})
		expectStatus(t, w, http.StatusOK)
		var list struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		json.Unmarshal(w.Body.Bytes(), &list)
		if list.Name != "r" || len(list.Tags) > 2 {
			t.Fatalf("page %s", w.Body.String())
		}
		got = append(got, list.Tags...)
		path = ""
		if link := w.Header().Get("Link"); link != "" {
			path = link[1 : len(link)-len(`>; rel="next"`)]
		}
	}
	if want := []string{"a", "b", "c", "d", "e"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("paged tags %v, want %v", got, want)
	}
	w := hs.do(call{method: "GET", path: "/v2/r/tags/list?last=c", user: "admin"})
	if w.Body.String() != `{"name":"r","tags":["d","e"]}` {
		t.Fatalf("last=c: %s", w.Body.String())
	}
	expectError(t, hs.do(call{method: "GET", path: "/v2/r/tags/list?n=-1", user: "admin"}), http.StatusBadRequest, CodeUnsupported)
	expectError(t, hs.do(call{method: "GET", path: "/v2/nothing/tags/list", user: "admin"}), http.StatusNotFound, CodeNameUnknown)
}

func TestCatalogListsOnlyPullableRepositories(t *testing.T) {
	hs := newHarness(t, map[string][]string{
		"admin": {"*"},
		"a-dev": {"oci:repository:team-a/*:pull"},
	})
	body := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`)
	for _, repo := range []string{"team-a/one", "team-a/two/deep", "team-b/x", "team-ax/y"} {
		expectStatus(t, putManifest(hs, repo, "v1", MediaTypeOCIIndex, body), http.StatusCreated)
	}
	catalog := func(user, query string) []string {
		w := hs.do(call{method: "GET", path: "/v2/_catalog" + query, user: user})
		expectStatus(t, w, http.StatusOK)
		var c struct {
			Repositories []string `json:"repositories"`
		}
		json.Unmarshal(w.Body.Bytes(), &c)
		return c.Repositories
	}
	if got, want := catalog("admin", ""), []string{"team-a/one", "team-a/two/deep", "team-ax/y", "team-b/x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("admin catalog %v, want %v", got, want)
	}
	if got, want := catalog("a-dev", ""), []string{"team-a/one", "team-a/two/deep"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("team-a catalog %v, want %v", got, want)
	}
	if got, want := catalog("admin", "?n=1&last=team-a/two/deep"), []string{"team-ax/y"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("paged catalog %v, want %v", got, want)
	}
	w := hs.do(call{method: "GET", path: "/v2/_catalog"})
	expectStatus(t, w, http.StatusUnauthorized)
}

// A client cannot make one page cost more than maxPageSize entries: a larger
// n is served as maxPageSize with a Link to the rest, as the spec allows.
func TestPageSizeIsBounded(t *testing.T) {
	all := make([]string, maxPageSize+5)
	for i := range all {
		all[i] = fmt.Sprintf("t%06d", i)
	}
	for _, n := range []string{"20000", "99999999999"} {
		q := &request{Call: protocol.Call{R: httptest.NewRequest("GET", "/v2/a/tags/list?n="+n, nil)}}
		got, more, err := page(q, all)
		if err != nil || len(got) != maxPageSize || !more {
			t.Errorf("n=%s: %d entries, more %v, err %v; want %d and more", n, len(got), more, err, maxPageSize)
		}
	}
	for _, n := range []string{"-1", "ten", "1e3"} {
		q := &request{Call: protocol.Call{R: httptest.NewRequest("GET", "/v2/a/tags/list?n="+n, nil)}}
		if _, _, err := page(q, all); err == nil {
			t.Errorf("n=%s accepted", n)
		}
	}
}

// A page of 10 of a repository's 1,000 tags reads 11 keys, not the 1,000.
func TestTagPageReadsItsSizeNotTheRepositorys(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	hs := newHarnessOn(t, store, map[string][]string{"admin": {"*"}})
	for i := range 1000 {
		if _, err := store.Put(t.Context(), tagKey("r", fmt.Sprintf("v%04d", i)), strings.NewReader("sha256:x"), storage.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	store.takeListed()
	w := hs.do(call{method: "GET", path: "/v2/r/tags/list?n=10&last=v0500", user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if !strings.HasPrefix(w.Body.String(), `{"name":"r","tags":["v0501",`) || w.Header().Get("Link") == "" {
		t.Fatalf("page %s, Link %q", w.Body, w.Header().Get("Link"))
	}
	if listed := store.takeListed(); listed > 11 {
		t.Fatalf("a page of 10 of 1,000 tags listed %d names, want 11", listed)
	}
}
