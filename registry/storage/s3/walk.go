package s3

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/unireg/unireg/registry/storage"
)

var (
	_ storage.Walker       = (*Driver)(nil)
	_ storage.BatchDeleter = (*Driver)(nil)
)

// Walk implements storage.Walker with one recursive ListObjectsV2 stream of
// the prefix (1,000 keys a request, nothing held but the current page),
// merged in key order with the keys that exist only as appended parts,
// which it collects first from one listing of their .appends directory:
// those are upload sessions in progress, few. Version is left empty: a
// listing does not carry the nonce of the user metadata, which would cost
// a HEAD per object. ModTime is cut to the second, as a HEAD (Stat) reports
// it, where the listing carries milliseconds.
func (d *Driver) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if prefix != "" {
		if err := storage.ValidateKey(prefix); err != nil {
			return err
		}
	}
	appended, err := d.appendedUnder(ctx, prefix)
	if err != nil {
		return fmt.Errorf("walk %s: %w", prefix, err)
	}
	dir := d.dir(prefix)
	for oi := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("walk %s: %w", prefix, d.mapErr(oi.Err))
		}
		if storage.ValidateKey(strings.TrimPrefix(oi.Key, dir)) != nil {
			continue // the driver's own objects (.appends), or a "directory" marker another tool made
		}
		key := strings.TrimPrefix(oi.Key, d.prefix)
		for len(appended) > 0 && appended[0].Key < key {
			if err := fn(appended[0]); err != nil {
				return err
			}
			appended = appended[1:]
		}
		if len(appended) > 0 && appended[0].Key == key {
			appended = appended[1:] // a whole object wins over stale parts
		}
		if err := fn(storage.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified.Truncate(time.Second)}); err != nil {
			return err
		}
	}
	for _, info := range appended {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// appendedUnder returns the Infos (without Version) of the keys under
// prefix that Append made of parts, sorted by key. A key's content is the
// contiguous run of its parts from offset 0, as for Stat; a key without one
// does not exist.
func (d *Driver) appendedUnder(ctx context.Context, prefix string) ([]storage.Info, error) {
	type listedPart struct {
		part
		modTime time.Time
	}
	byKey := map[string][]listedPart{}
	for oi := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: d.partsDir(prefix), Recursive: true}) {
		if oi.Err != nil {
			return nil, d.mapErr(oi.Err)
		}
		key, start, ok := d.partOf(oi.Key)
		if !ok || (prefix != "" && !strings.HasPrefix(key, prefix+"/")) {
			continue // not a part, or a part of prefix itself, which is not under it
		}
		byKey[key] = append(byKey[key], listedPart{part{name: oi.Key, start: start, size: oi.Size, etag: oi.ETag}, oi.LastModified})
	}
	infos := make([]storage.Info, 0, len(byKey))
	for key, listed := range byKey {
		slices.SortFunc(listed, func(a, b listedPart) int { return cmp.Compare(a.start, b.start) })
		parts := make([]part, len(listed))
		for i, p := range listed {
			parts[i] = p.part
		}
		chain, _ := contiguous(parts)
		if len(chain) == 0 {
			continue
		}
		last := listed[len(chain)-1]
		infos = append(infos, storage.Info{Key: key, Size: last.end(), ModTime: last.modTime.Truncate(time.Second)})
	}
	slices.SortFunc(infos, func(a, b storage.Info) int { return strings.Compare(a.Key, b.Key) })
	return infos, nil
}

// partOf parses the name of a part object: the key it belongs to and the
// offset it starts at.
func (d *Driver) partOf(name string) (key string, start int64, ok bool) {
	rest, ok := strings.CutPrefix(name, d.partsDir(""))
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", 0, false
	}
	key, base := rest[:i], rest[i+1:]
	start, err := strconv.ParseInt(base, 10, 64)
	if len(base) != offsetDigits || err != nil || start < 0 || storage.ValidateKey(key) != nil {
		return "", 0, false
	}
	return key, start, true
}

// DeleteMany implements storage.BatchDeleter with DeleteObjects requests of
// up to 1,000 keys (minio-go batches them): first the parts of keys that
// Append made (found by one listing of the .appends directory of the keys'
// longest common prefix, usually empty), then the whole objects, so that a
// failure in between never lets stale parts show again. Missing keys are
// no error to DeleteObjects.
func (d *Driver) DeleteMany(ctx context.Context, keys []string) error {
	want := make(map[string]bool, len(keys))
	unique := make([]string, 0, len(keys))
	for _, key := range keys {
		if err := storage.ValidateKey(key); err != nil {
			return err
		}
		if !want[key] {
			want[key] = true
			unique = append(unique, key)
		}
	}
	if len(unique) == 0 {
		return nil
	}
	var parts []string
	for oi := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: d.partsDir(commonPrefix(unique)), Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("delete many: list parts: %w", d.mapErr(oi.Err))
		}
		if key, _, ok := d.partOf(oi.Key); ok && want[key] {
			parts = append(parts, oi.Key)
		}
	}
	if err := d.remove(ctx, parts); err != nil {
		return fmt.Errorf("delete many: parts: %w", d.mapErr(err))
	}
	err := d.removeAll(ctx, func(yield func(minio.ObjectInfo) bool) {
		for _, key := range unique {
			if !yield(minio.ObjectInfo{Key: d.object(key)}) {
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("delete many: %w", d.mapErr(err))
	}
	return nil
}

// commonPrefix returns the longest run of leading segments that every key
// starts with ("" when they share none): every key is that prefix or under it.
func commonPrefix(keys []string) string {
	common := strings.Split(keys[0], "/")
	for _, key := range keys[1:] {
		segs := strings.Split(key, "/")
		n := 0
		for n < len(common) && n < len(segs) && common[n] == segs[n] {
			n++
		}
		common = common[:n]
	}
	return strings.Join(common, "/")
}

var _ storage.Pager = (*Driver)(nil)

// Page implements storage.Pager with recursive ListObjectsV2 requests from
// after (StartAfter, MaxKeys what the page still needs), merged as Walk
// merges its listing with the keys that exist only as appended parts, from
// one listing of their .appends directory. A listing that ends short is
// asked again after its last key until one comes back empty: MinIO ends a
// listing whose StartAfter lies in a deeper "directory" early, answering
// one key of two and not truncated.
func (d *Driver) Page(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	if prefix != "" {
		if err := storage.ValidateKey(prefix); err != nil {
			return nil, err
		}
	}
	if limit <= 0 {
		return nil, nil
	}
	appended, err := d.appendedUnder(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("page %s: %w", prefix, err)
	}
	for len(appended) > 0 && appended[0].Key <= after {
		appended = appended[1:]
	}
	dir := d.dir(prefix)
	start := ""
	if bound := validPrefix(after); bound != "" && d.object(bound) > dir {
		start = d.object(bound)
	}
	var keys []string
	add := func(key string) bool {
		if key <= after {
			return true // between the valid bound and after
		}
		keys = append(keys, key)
		return len(keys) < limit
	}
	for {
		listed := 0
		opts := minio.ListObjectsOptions{Prefix: dir, Recursive: true, StartAfter: start, MaxKeys: min(limit-len(keys), 1000)}
		for oi := range d.client.ListObjectsIter(ctx, d.bucket, opts) {
			if oi.Err != nil {
				return nil, fmt.Errorf("page %s: %w", prefix, d.mapErr(oi.Err))
			}
			listed++
			start = oi.Key
			if storage.ValidateKey(strings.TrimPrefix(oi.Key, dir)) != nil {
				continue // the driver's own objects, or a "directory" marker another tool made
			}
			key := strings.TrimPrefix(oi.Key, d.prefix)
			for len(appended) > 0 && appended[0].Key < key {
				if !add(appended[0].Key) {
					return keys, nil
				}
				appended = appended[1:]
			}
			if len(appended) > 0 && appended[0].Key == key {
				appended = appended[1:]
			}
			if !add(key) {
				return keys, nil
			}
		}
		if listed == 0 {
			break
		}
	}
	for _, info := range appended {
		if !add(info.Key) {
			break
		}
	}
	return keys, nil
}

// validPrefix returns the longest run of after's leading segments that is
// a valid key ("" when none is): the store refuses a StartAfter such as
// "a/../b", and one that sorts no later than after lists the same keys
// after it, and a few before, which Page leaves out.
func validPrefix(after string) string {
	if storage.ValidateKey(after) == nil {
		return after
	}
	segs := strings.Split(after, "/")
	n := 0
	for n < len(segs) && storage.ValidateKey(segs[n]) == nil {
		n++
	}
	return strings.Join(segs[:n], "/")
}
