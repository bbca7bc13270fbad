package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/storage"
)

// page returns storage.Page's keys, failing the test on an error.
func page(t *testing.T, d storage.Driver, prefix, after string, limit int) []string {
	t.Helper()
	keys, err := storage.Page(t.Context(), d, prefix, after, limit)
	if err != nil {
		t.Fatalf("Page(%q, %q, %d): %v", prefix, after, limit, err)
	}
	return keys
}

// testPageContinuesAfterAnyKey: a page is the keys Walk visits that sort
// after after, cut at limit, for after anywhere: a key, a directory, a
// string between keys or below a name that also has longer siblings
// ("a/b" before "a/b-c", "a/b.d/z" and "a/b/x"), before or past them all.
func testPageContinuesAfterAnyKey(t *testing.T, d storage.Driver) {
	for _, k := range walkTree {
		put(t, d, k, k)
	}
	afters := []string{"", "a", "a/", "a/b", "a/b,", "a/b-c", "a/b/", "a/b/c", "a/b/c/d/z", "a/b0", "a/b1", "a/bc/x", "ab", "b/a", "z", "zz", "\x00", "a/b/c/y\x00", "a/../b", "a/b/../z", "../x", "a/./b", "a//b"}
	for _, prefix := range []string{"", "a", "a/b", "b/a", "missing", "z"} {
		all := keysUnder(prefix)
		if prefix == "z" {
			all = nil // an object is no prefix
		}
		for _, after := range afters {
			var want []string
			for _, k := range all {
				if k > after {
					want = append(want, k)
				}
			}
			for _, limit := range []int{1, 3, 100} {
				w := want[:min(limit, len(want))]
				if got := page(t, d, prefix, after, limit); !slices.Equal(got, w) {
					t.Errorf("Page(%q, after %q, %d) = %q, want %q", prefix, after, limit, got, w)
				}
			}
		}
	}
	if got := page(t, d, "", "", 0); len(got) != 0 {
		t.Fatalf("Page with limit 0 = %q, want nothing", got)
	}
}

// testPagesWalkEverything: following each page's last key visits every
// object once, as one Walk does, appended ones too.
func testPagesWalkEverything(t *testing.T, d storage.Driver) {
	var want []string
	for i := range 25 {
		k := fmt.Sprintf("idx/%c/%02d,", 'a'+i%3, i)
		put(t, d, k, "")
		want = append(want, k)
	}
	if _, err := d.Append(t.Context(), "idx/b/appended", 0, strings.NewReader("part")); err != nil {
		t.Fatalf("Append: %v", err)
	}
	want = append(want, "idx/b/appended")
	put(t, d, "idy/after", "")
	put(t, d, "idx,", "")
	slices.Sort(want)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("paging does not end")
		}
		keys := page(t, d, "idx", after, 4)
		got = append(got, keys...)
		if len(keys) < 4 {
			break
		}
		after = keys[len(keys)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages of 4 visited\n%q\nwant\n%q", got, want)
	}
}

// testPageAfterADeeperKey: a page that starts below a "directory" (a/b/c,)
// goes on past its end to the next siblings of its parents, at every
// limit (MinIO ends such a listing early, not truncated).
func testPageAfterADeeperKey(t *testing.T, d storage.Driver) {
	names := []string{"a,", "a-c,", "a.b,", "a/b,", "a/b-c,", "a/b/c,", "a0,", "a__x,", "ab,", "b,"}
	var all []string
	for _, n := range names {
		all = append(all, "c/r/"+n)
		put(t, d, "c/r/"+n, "")
	}
	slices.Sort(all)
	for i, after := range all {
		for limit := 1; limit <= 4; limit++ {
			want := all[i+1 : min(i+1+limit, len(all))]
			if got := page(t, d, "c/r", after, limit); !slices.Equal(got, want) {
				t.Errorf("Page(c/r, after %q, %d) = %q, want %q", after, limit, got, want)
			}
		}
	}
}
