package filesystem_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

// bigDir writes n objects into one directory, whose modification time it
// then sets an hour back, and returns their keys.
func bigDir(t *testing.T, d storage.Driver, root string, n int) []string {
	t.Helper()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("big/%05d", i)
		if _, err := d.Put(t.Context(), keys[i], strings.NewReader(""), storage.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(root, "big"), old, old); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestPageReusesNamesOfUnchangedDirectory: a large directory whose time
// is safely past is read once; its names serve later pages while the time
// stays the same (shown by a file removed behind the driver's back, with
// the time put back).
func TestPageReusesNamesOfUnchangedDirectory(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	keys := bigDir(t, d, root, 300)
	if got, err := d.Page(t.Context(), "big", keys[10], 5); err != nil || !slices.Equal(got, keys[11:16]) {
		t.Fatalf("Page = %q, %v; want %q", got, err, keys[11:16])
	}
	dir := filepath.Join(root, "big")
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "00012")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dir, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Page(t.Context(), "big", keys[10], 5); !slices.Equal(got, keys[11:16]) {
		t.Fatalf("Page of the unchanged directory = %q, want the kept names %q", got, keys[11:16])
	}
}

// TestPageSeesChangesToAKeptDirectory: writing or deleting in a directory
// whose names are kept changes its time, and the next page reads it again.
func TestPageSeesChangesToAKeptDirectory(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	ctx := t.Context()
	keys := bigDir(t, d, root, 300)
	if got, _ := d.Page(ctx, "big", keys[298], 5); !slices.Equal(got, keys[299:]) {
		t.Fatalf("Page = %q, want %q", got, keys[299:])
	}
	if _, err := d.Put(ctx, "big/99999", strings.NewReader(""), storage.Condition{}); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, keys[299]); err != nil {
		t.Fatal(err)
	}
	if got, want := mustPage(t, d, "big", keys[298], 5), []string{"big/99999"}; !slices.Equal(got, want) {
		t.Fatalf("Page after a write and a delete = %q, want %q", got, want)
	}
}

func mustPage(t *testing.T, d storage.Pager, prefix, after string, limit int) []string {
	t.Helper()
	keys, err := d.Page(t.Context(), prefix, after, limit)
	if err != nil {
		t.Fatalf("Page: %v", err)
	}
	return keys
}
