package oci

import (
	"net/http"
	"slices"
	"testing"
)

// A repository made by a blob upload or a mount alone, with no manifest,
// is in the catalog.
func TestCatalogListsRepositoriesOfBlobsOnly(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	d := hs.pushBlob("admin", "uploaded", []byte("layer"))
	expectStatus(t, hs.do(call{method: "POST", path: "/v2/mounted/blobs/uploads/?mount=" + d.String() + "&from=uploaded", user: "admin"}), http.StatusCreated)
	if _, err := hs.store.Stat(t.Context(), catalogIndexedKey); err != nil {
		t.Fatalf("flag: %v", err)
	}
	if got := catalogWalk(t, hs, "admin", 1); !slices.Equal(got, []string{"mounted", "uploaded"}) {
		t.Fatalf("catalog %q", got)
	}
}
