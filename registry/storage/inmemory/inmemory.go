// Package inmemory implements storage.Driver in process memory, for tests and
// examples. Content is lost when the process exits.
package inmemory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

type object struct {
	data    []byte
	modTime time.Time
	version uint64
}

// Driver keeps objects in a map guarded by a mutex.
type Driver struct {
	mu      sync.RWMutex
	objects map[string]*object
	counter uint64
	// sorted are the keys of objects in order, for Page; nil when a key
	// was added or removed since it was built.
	sorted []string
}

var (
	_ storage.Driver       = (*Driver)(nil)
	_ storage.Walker       = (*Driver)(nil)
	_ storage.BatchDeleter = (*Driver)(nil)
	_ storage.Pager        = (*Driver)(nil)
)

// New returns an empty in-memory store.
func New() *Driver { return &Driver{objects: map[string]*object{}} }

func (d *Driver) info(key string, o *object) storage.Info {
	return storage.Info{Key: key, Size: int64(len(o.data)), ModTime: o.modTime, Version: strconv.FormatUint(o.version, 16)}
}

// Stat implements storage.Driver.
func (d *Driver) Stat(_ context.Context, key string) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.objects[key]
	if !ok {
		return storage.Info{}, fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	return d.info(key, o), nil
}

type reader struct {
	*bytes.Reader
	info storage.Info
}

func (r reader) Close() error       { return nil }
func (r reader) Info() storage.Info { return r.info }

// Open implements storage.Driver. The reader sees a snapshot: later writes
// replace the slice rather than changing it.
func (d *Driver) Open(_ context.Context, key string) (storage.Object, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	o, ok := d.objects[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	return reader{Reader: bytes.NewReader(o.data), info: d.info(key, o)}, nil
}

// Put implements storage.Driver.
func (d *Driver) Put(_ context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return storage.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old, exists := d.objects[key]
	if cond.IfNoneMatch && exists {
		return storage.Info{}, storage.ErrPreconditionFailed
	}
	if cond.IfMatch != "" && (!exists || d.info(key, old).Version != cond.IfMatch) {
		return storage.Info{}, storage.ErrPreconditionFailed
	}
	o := d.store(key, data)
	return d.info(key, o), nil
}

func (d *Driver) store(key string, data []byte) *object {
	d.counter++
	if _, ok := d.objects[key]; !ok {
		d.sorted = nil
	}
	o := &object{data: data, modTime: time.Now(), version: d.counter}
	d.objects[key] = o
	return o
}

// Append implements storage.Driver.
func (d *Driver) Append(_ context.Context, key string, offset int64, r io.Reader) (int64, error) {
	if err := storage.ValidateKey(key); err != nil {
		return 0, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", key, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cur []byte
	if o, ok := d.objects[key]; ok {
		cur = o.data
	}
	if int64(len(cur)) < offset {
		return 0, fmt.Errorf("append %s at %d, size %d: %w", key, offset, len(cur), storage.ErrInvalidOffset)
	}
	next := make([]byte, 0, offset+int64(len(data)))
	next = append(append(next, cur[:offset]...), data...)
	d.store(key, next)
	return int64(len(data)), nil
}

// Move implements storage.Driver.
func (d *Driver) Move(_ context.Context, src, dst string) error {
	if err := storage.ValidateKey(src); err != nil {
		return err
	}
	if err := storage.ValidateKey(dst); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[src]
	if !ok {
		return fmt.Errorf("%s: %w", src, storage.ErrNotFound)
	}
	delete(d.objects, src)
	d.sorted = nil
	d.store(dst, o.data)
	return nil
}

// Delete implements storage.Driver.
func (d *Driver) Delete(_ context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.objects[key]; !ok {
		return fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	delete(d.objects, key)
	d.sorted = nil
	return nil
}

// DeleteAll implements storage.Driver.
func (d *Driver) DeleteAll(_ context.Context, prefix string) error {
	if err := storage.ValidateKey(prefix); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.objects {
		if k == prefix || strings.HasPrefix(k, prefix+"/") {
			delete(d.objects, k)
		}
	}
	d.sorted = nil
	return nil
}

// List implements storage.Driver.
func (d *Driver) List(_ context.Context, prefix string) ([]string, error) {
	start := ""
	if prefix != "" {
		if err := storage.ValidateKey(prefix); err != nil {
			return nil, err
		}
		start = prefix + "/"
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	seen := map[string]bool{}
	for k := range d.objects {
		if rest, ok := strings.CutPrefix(k, start); ok {
			name, _, _ := strings.Cut(rest, "/")
			seen[name] = true
		}
	}
	if len(seen) == 0 && prefix != "" {
		return nil, fmt.Errorf("%s: %w", prefix, storage.ErrNotFound)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// Walk implements storage.Walker over a sorted copy of the Infos under
// prefix, taken under the lock and visited after it is released, so fn may
// call the driver.
func (d *Driver) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	start := ""
	if prefix != "" {
		if err := storage.ValidateKey(prefix); err != nil {
			return err
		}
		start = prefix + "/"
	}
	d.mu.RLock()
	var infos []storage.Info
	for k, o := range d.objects {
		if strings.HasPrefix(k, start) {
			infos = append(infos, d.info(k, o))
		}
	}
	d.mu.RUnlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// DeleteMany implements storage.BatchDeleter under one lock.
func (d *Driver) DeleteMany(_ context.Context, keys []string) error {
	for _, key := range keys {
		if err := storage.ValidateKey(key); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, key := range keys {
		delete(d.objects, key)
	}
	d.sorted = nil
	return nil
}

// Page implements storage.Pager by a binary search in the sorted keys,
// which are sorted again after keys were added or removed.
func (d *Driver) Page(_ context.Context, prefix, after string, limit int) ([]string, error) {
	start := ""
	if prefix != "" {
		if err := storage.ValidateKey(prefix); err != nil {
			return nil, err
		}
		start = prefix + "/"
	}
	if limit <= 0 {
		return nil, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sorted == nil {
		d.sorted = make([]string, 0, len(d.objects))
		for k := range d.objects {
			d.sorted = append(d.sorted, k)
		}
		sort.Strings(d.sorted)
	}
	i := sort.SearchStrings(d.sorted, max(after, start))
	var keys []string
	for ; i < len(d.sorted) && len(keys) < limit; i++ {
		k := d.sorted[i]
		if !strings.HasPrefix(k, start) {
			break
		}
		if k > after {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// Ping implements storage.Driver.
func (d *Driver) Ping(context.Context) error { return nil }
