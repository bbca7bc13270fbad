package s3

import (
	"slices"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/storage"
)

func walkKeys(t *testing.T, d *Driver, prefix string) []storage.Info {
	t.Helper()
	var infos []storage.Info
	if err := d.Walk(t.Context(), prefix, func(info storage.Info) error {
		infos = append(infos, info)
		return nil
	}); err != nil {
		t.Fatalf("Walk(%q): %v", prefix, err)
	}
	return infos
}

// TestWalkMergesAppendedKeysInOrder: keys made of parts (upload sessions)
// are walked among whole objects in key order, with the size of their
// contiguous parts; a whole object over stale parts shows once; parts of
// the prefix itself and of keys outside it do not show.
func TestWalkMergesAppendedKeysInOrder(t *testing.T) {
	d := newTestDriver(t, func(o *Options) { o.Prefix = "store" })
	ctx := t.Context()
	appendAll(t, d, "u/b/data", []byte("bb"), []byte("b"))
	appendAll(t, d, "u/d/data", []byte("dddd"))
	appendAll(t, d, "u", []byte("the prefix itself"))
	appendAll(t, d, "v/data", []byte("outside"))
	appendAll(t, d, "u/c", []byte("stale parts"))
	for _, k := range []string{"u/a", "u/c", "u/e"} {
		if _, err := d.Put(ctx, k, strings.NewReader(k), storage.Condition{}); err != nil {
			t.Fatalf("Put(%s): %v", k, err)
		}
	}
	infos := walkKeys(t, d, "u")
	var keys []string
	for _, info := range infos {
		keys = append(keys, info.Key)
		if st, err := d.Stat(ctx, info.Key); err != nil || st.Size != info.Size || !st.ModTime.Equal(info.ModTime) {
			t.Errorf("Walk's %+v; Stat's %+v, %v", info, st, err)
		}
	}
	if want := []string{"u/a", "u/b/data", "u/c", "u/d/data", "u/e"}; !slices.Equal(keys, want) {
		t.Fatalf("Walk(u) visited %q, want %q", keys, want)
	}
}

// TestDeleteManyRemovesPartsAndStaleParts: DeleteMany of appended keys and
// of a whole object over stale parts leaves nothing in the bucket.
func TestDeleteManyRemovesPartsAndStaleParts(t *testing.T) {
	d := newTestDriver(t)
	ctx := t.Context()
	appendAll(t, d, "uploads/1/data", []byte("one"), []byte("more"))
	appendAll(t, d, "blobs/x", []byte("appended"))
	if _, err := d.Put(ctx, "blobs/x", strings.NewReader("whole"), storage.Condition{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := d.Put(ctx, "blobs/y", strings.NewReader("y"), storage.Condition{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := d.DeleteMany(ctx, []string{"blobs/x", "uploads/1/data", "blobs/y"}); err != nil {
		t.Fatalf("DeleteMany: %v", err)
	}
	if names := bucketObjects(t, d); len(names) != 0 {
		t.Fatalf("bucket holds %q after DeleteMany, want nothing", names)
	}
}

func TestCommonPrefix(t *testing.T) {
	for _, tc := range []struct {
		keys []string
		want string
	}{
		{[]string{"a/b/c"}, "a/b/c"},
		{[]string{"a/b/c", "a/b/d"}, "a/b"},
		{[]string{"a/bc", "a/bd"}, "a"},
		{[]string{"a/b", "a/b/c"}, "a/b"},
		{[]string{"a", "b"}, ""},
	} {
		if got := commonPrefix(tc.keys); got != tc.want {
			t.Errorf("commonPrefix(%q) = %q, want %q", tc.keys, got, tc.want)
		}
	}
}
