package filesystem_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/storage"
)

// TestWalkHidesTheDriversOwnFiles: the lock files of conditional writes and
// the temporary file a crashed Put leaves are no objects, as List hides
// them; Walk hides them too, and DeleteMany leaves them to the driver.
func TestWalkHidesTheDriversOwnFiles(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	ctx := t.Context()
	if _, err := d.Put(ctx, "repo/state", strings.NewReader("s"), storage.Condition{IfNoneMatch: true}); err != nil {
		t.Fatalf("conditional Put: %v", err) // takes a lock file under .locks
	}
	if err := os.WriteFile(filepath.Join(root, "repo", ".tmp-crashed"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	var keys []string
	err := storage.Walk(ctx, d, "", func(info storage.Info) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if !slices.Equal(keys, []string{"repo/state"}) {
		t.Fatalf("Walk visited %q, want [repo/state] (files on disk: %q)", keys, files(t, root))
	}
}
