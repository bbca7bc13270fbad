// Package filesystem implements storage.Driver on a local directory.
//
// Writes go to a dot-named temporary file in the target directory, are synced,
// and renamed into place, so a crash never leaves a visible partial object.
// Conditional writes take an advisory lock (flock) from a fixed set of lock
// files under ROOT/.locks, so they are safe across processes sharing the
// directory, and so the lock files never grow with the number of keys.
package filesystem

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/unireg/unireg/registry/storage"
)

const lockStripes = 256

// Driver stores objects as files under Root.
type Driver struct {
	root  string
	names dirCache // for Page
}

var (
	_ storage.Driver       = (*Driver)(nil)
	_ storage.Walker       = (*Driver)(nil)
	_ storage.BatchDeleter = (*Driver)(nil)
)

// New returns a Driver rooted at dir, creating it when missing.
func New(dir string) (*Driver, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage root %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, ".locks"), 0o700); err != nil {
		return nil, fmt.Errorf("create storage root %s: %w", abs, err)
	}
	return &Driver{root: abs}, nil
}

// Root returns the absolute directory the driver stores under.
func (d *Driver) Root() string { return d.root }

func (d *Driver) path(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

func mapErr(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s: %w", key, storage.ErrNotFound)
	}
	return err
}

func infoOf(key string, fi fs.FileInfo) storage.Info {
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return storage.Info{
		Key:     key,
		Size:    fi.Size(),
		ModTime: fi.ModTime(),
		Version: fmt.Sprintf("%x-%x-%x", ino, fi.Size(), fi.ModTime().UnixNano()),
	}
}

// Stat implements storage.Driver.
func (d *Driver) Stat(_ context.Context, key string) (storage.Info, error) {
	p, err := d.path(key)
	if err != nil {
		return storage.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return storage.Info{}, mapErr(key, err)
	}
	if fi.IsDir() {
		return storage.Info{}, fmt.Errorf("%s is a directory: %w", key, storage.ErrNotFound)
	}
	return infoOf(key, fi), nil
}

// File is an open object backed by an *os.File. Handlers that serve it over
// HTTP pass the *os.File itself to net/http so the kernel can sendfile.
type File struct {
	*os.File
	info storage.Info
}

// Info implements storage.Object.
func (f *File) Info() storage.Info { return f.info }

// OSFile returns the underlying file.
func (f *File) OSFile() *os.File { return f.File }

// Open implements storage.Driver.
func (d *Driver) Open(_ context.Context, key string) (storage.Object, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, mapErr(key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is a directory: %w", key, storage.ErrNotFound)
	}
	return &File{File: f, info: infoOf(key, fi)}, nil
}

// Put implements storage.Driver.
func (d *Driver) Put(_ context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	p, err := d.path(key)
	if err != nil {
		return storage.Info{}, err
	}
	tmp, err := d.writeTemp(p, r)
	if err != nil {
		return storage.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		if os.Remove(tmp) == nil { // the Put failed after writing
			d.pruneEmptyDirs(filepath.Dir(p))
		}
	}()
	if cond != (storage.Condition{}) {
		unlock, err := d.lock(key)
		if err != nil {
			return storage.Info{}, err
		}
		defer unlock()
		if err := d.checkCondition(p, cond); err != nil {
			return storage.Info{}, fmt.Errorf("put %s: %w", key, err)
		}
	}
	if err := os.Rename(tmp, p); err != nil {
		return storage.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	syncDir(filepath.Dir(p))
	fi, err := os.Stat(p)
	if err != nil {
		return storage.Info{}, err
	}
	return infoOf(key, fi), nil
}

func (d *Driver) checkCondition(p string, cond storage.Condition) error {
	fi, err := os.Stat(p)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if cond.IfNoneMatch && exists {
		return storage.ErrPreconditionFailed
	}
	if cond.IfMatch != "" && (!exists || infoOf("", fi).Version != cond.IfMatch) {
		return storage.ErrPreconditionFailed
	}
	return nil
}

// writeTemp copies r into a synced temporary file beside p and returns its path.
func (d *Driver) writeTemp(p string, r io.Reader) (string, error) {
	var f *os.File
	err := d.inDir(filepath.Dir(p), func() (err error) {
		f, err = os.CreateTemp(filepath.Dir(p), ".tmp-*")
		return err
	})
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = copyToFile(f, 0, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		d.pruneEmptyDirs(filepath.Dir(p))
		return "", err
	}
	return name, nil
}

// TakeFile implements storage.FileTaker: the file at path, synced, is
// renamed to key's object (replacing it, as an unconditional Put). A file on
// another filesystem is not taken.
func (d *Driver) TakeFile(_ context.Context, key, path string) (bool, error) {
	p, err := d.path(key)
	if err != nil {
		return false, err
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return false, fmt.Errorf("take %s: %w", key, err)
	}
	err = d.inDir(filepath.Dir(p), func() error { return os.Rename(path, p) })
	if errors.Is(err, syscall.EXDEV) {
		d.pruneEmptyDirs(filepath.Dir(p))
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take %s: %w", key, err)
	}
	syncDir(filepath.Dir(p))
	return true, nil
}

// Append implements storage.Driver. Bytes past offset (left by a crash or a
// failed earlier append) are discarded first, so the caller's record of the
// offset stays the source of truth.
func (d *Driver) Append(_ context.Context, key string, offset int64, r io.Reader) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	f, err := d.openForAppend(p, offset)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return 0, fmt.Errorf("append %s at %d, object missing: %w", key, offset, storage.ErrInvalidOffset)
	}
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", key, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("lock %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() < offset {
		return 0, fmt.Errorf("append %s at %d, size %d: %w", key, offset, fi.Size(), storage.ErrInvalidOffset)
	}
	if fi.Size() > offset {
		if err := f.Truncate(offset); err != nil {
			return 0, err
		}
	}
	n, err := copyToFile(f, offset, r)
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		_ = f.Truncate(offset)
		return 0, fmt.Errorf("append %s: %w", key, err)
	}
	return n, nil
}

// openForAppend opens p for writing, creating it (and its prefix) only when
// offset is 0: an append anywhere else needs the object to exist.
func (d *Driver) openForAppend(p string, offset int64) (*os.File, error) {
	if offset != 0 {
		return os.OpenFile(p, os.O_WRONLY, 0o644)
	}
	var f *os.File
	err := d.inDir(filepath.Dir(p), func() (err error) {
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o644)
		return err
	})
	return f, err
}

// Move implements storage.Driver.
func (d *Driver) Move(_ context.Context, src, dst string) error {
	ps, err := d.path(src)
	if err != nil {
		return err
	}
	pd, err := d.path(dst)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(ps); err != nil {
		return mapErr(src, err)
	}
	err = d.inDir(filepath.Dir(pd), func() error { return os.Rename(ps, pd) })
	if err != nil {
		return mapErr(src, err)
	}
	syncDir(filepath.Dir(pd))
	d.pruneEmptyDirs(filepath.Dir(ps))
	return nil
}

// Delete implements storage.Driver.
func (d *Driver) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return mapErr(key, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory: %w", key, storage.ErrNotFound)
	}
	if err := os.Remove(p); err != nil {
		return mapErr(key, err)
	}
	d.pruneEmptyDirs(filepath.Dir(p))
	return nil
}

// DeleteAll implements storage.Driver.
func (d *Driver) DeleteAll(_ context.Context, prefix string) error {
	p, err := d.path(prefix)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return err
	}
	d.pruneEmptyDirs(filepath.Dir(p))
	return nil
}

// List implements storage.Driver.
func (d *Driver) List(_ context.Context, prefix string) ([]string, error) {
	p := d.root
	if prefix != "" {
		var err error
		if p, err = d.path(prefix); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, mapErr(prefix, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Walk implements storage.Walker: one directory is read at a time, and its
// entries visited in key order (a directory's name sorts as name + "/", as
// its keys do among its siblings'). Dot-names (the driver's temporary and
// lock files) are skipped, as List skips them. Files and directories that
// vanish during the walk (a concurrent Delete) are skipped.
func (d *Driver) Walk(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	dir := d.root
	if prefix != "" {
		var err error
		if dir, err = d.path(prefix); err != nil {
			return err
		}
	}
	return d.walkDir(ctx, dir, prefix, fn)
}

func (d *Driver) walkDir(ctx context.Context, dir, prefix string, fn func(storage.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil // missing, removed meanwhile, or an object: nothing below
	}
	if err != nil {
		return fmt.Errorf("walk %s: %w", prefix, err)
	}
	sortKey := func(e fs.DirEntry) string {
		if e.IsDir() {
			return e.Name() + "/"
		}
		return e.Name()
	}
	sort.Slice(entries, func(i, j int) bool { return sortKey(entries[i]) < sortKey(entries[j]) })
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		key := e.Name()
		if prefix != "" {
			key = prefix + "/" + key
		}
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := d.walkDir(ctx, p, key, fn); err != nil {
				return err
			}
			continue
		}
		fi, err := os.Stat(p) // what Stat reports, through a symbolic link too
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("walk %s: %w", key, err)
		}
		if fi.IsDir() {
			continue // a link to a directory: Stat does not call it an object
		}
		if err := fn(infoOf(key, fi)); err != nil {
			return err
		}
	}
	return nil
}

// DeleteMany implements storage.BatchDeleter: one Delete a key, missing
// keys skipped; directories left empty are pruned as Delete prunes them.
func (d *Driver) DeleteMany(ctx context.Context, keys []string) error {
	for _, key := range keys {
		if err := storage.ValidateKey(key); err != nil {
			return err
		}
	}
	var first error
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) && first == nil {
			first = fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return first
}

// Ping implements storage.Driver: the root must exist and be writable.
func (d *Driver) Ping(_ context.Context) error {
	f, err := os.CreateTemp(d.root, ".ping-*")
	if err != nil {
		return fmt.Errorf("storage root %s not writable: %w", d.root, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// lock takes the exclusive advisory lock of key's stripe.
func (d *Driver) lock(key string) (func(), error) {
	h := fnv.New32a()
	h.Write([]byte(key))
	name := filepath.Join(d.root, ".locks", fmt.Sprintf("%02x", h.Sum32()%lockStripes))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock for %s: %w", key, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", key, err)
	}
	return func() { f.Close() }, nil // closing releases the flock
}

// pruneEmptyDirs removes dir and its parents below the root while they are
// empty, so a prefix disappears with its last object as in an object store.
func (d *Driver) pruneEmptyDirs(dir string) {
	for strings.HasPrefix(dir, d.root+string(filepath.Separator)) {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return // not empty
		}
		dir = filepath.Dir(dir)
	}
}

// inDir runs create after making dir, again if a concurrent pruneEmptyDirs
// removed dir in between.
func (d *Driver) inDir(dir string, create func() error) error {
	for attempt := 0; ; attempt++ {
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = create()
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return err
		}
	}
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}
