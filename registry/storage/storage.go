// Package storage defines the small interface through which the protocol
// handlers reach persistent state, and the errors every backend returns.
//
// The interface knows nothing about OCI or npm: it stores opaque objects under
// slash-separated keys. Keys are made of segments that never start with a dot
// (backends use dot-names for their own temporary and lock files) and never
// contain "..", NUL or backslashes; callers build them with Join, which checks.
//
// Every write is atomic: an object is either absent, or present with its whole
// content. Backends achieve that by writing to a temporary name and renaming
// (filesystem) or by the store's own atomic PUT (S3).
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Errors returned by every Driver. Callers test them with errors.Is.
var (
	// ErrNotFound means the object (or prefix) does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrPreconditionFailed means a conditional write found another version
	// than the one it was conditioned on.
	ErrPreconditionFailed = errors.New("storage: precondition failed")
	// ErrInvalidOffset means an Append did not start at the object's current size.
	ErrInvalidOffset = errors.New("storage: append offset does not match size")
	// ErrInvalidKey means a key would escape the store or is malformed.
	ErrInvalidKey = errors.New("storage: invalid key")
	// ErrUnavailable means the store cannot answer now (throttled, timed
	// out, unreachable); the same request may succeed later.
	ErrUnavailable = errors.New("storage: unavailable")
	// ErrFull means the store has no room left for a write (IsFull).
	ErrFull = errors.New("storage: full")
)

// IsUnavailable reports whether err means the store could not answer now:
// ErrUnavailable, a network error or a deadline. Protocol handlers answer
// such errors with 503 and Retry-After instead of 500.
//
// A bare errno (syscall.Errno, in the *fs.PathError of a file operation)
// has net.Error's methods too, so it counts only when it is a timeout
// (ETIMEDOUT, EAGAIN): a full disk, a permission or an I/O error is not the
// store being away for a moment, and a client told to retry would retry in
// vain.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if !errors.As(err, &ne) {
		return false
	}
	if errno, ok := ne.(syscall.Errno); ok {
		return errno.Timeout()
	}
	return true
}

// IsFull reports whether err means the store has no room for what was
// written: ErrFull (a driver's own, such as S3's storage full), a full
// filesystem (ENOSPC) or an exhausted quota (EDQUOT). Protocol handlers
// answer 507 Insufficient Storage, naming it, instead of 500.
func IsFull(err error) bool {
	return errors.Is(err, ErrFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
	// Version identifies this exact content of the object: it changes on
	// every write. Pass it to Put as Condition.IfMatch for a compare-and-swap.
	Version string
}

// Condition makes Put conditional.
type Condition struct {
	// IfMatch, when set, requires the current version to equal it.
	IfMatch string
	// IfNoneMatch requires that the object does not exist yet.
	IfNoneMatch bool
}

// Object is an open stored object: it can be read sequentially, seeked (for
// HTTP Range requests) and closed. The filesystem backend returns an *os.File
// inside, so net/http can use sendfile.
type Object interface {
	io.ReadSeekCloser
	Info() Info
}

// Driver is the storage backend. All methods are safe for concurrent use, by
// several goroutines and (for the shipped backends) by several processes
// sharing the same underlying store.
type Driver interface {
	// Stat returns the object's metadata, or ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Open opens the object for reading, or returns ErrNotFound.
	Open(ctx context.Context, key string) (Object, error)
	// Put stores the whole content of r under key, atomically replacing any
	// previous object, subject to cond. It returns the new object's Info.
	Put(ctx context.Context, key string, r io.Reader, cond Condition) (Info, error)
	// Append writes r at offset into the object at key and returns the bytes
	// written. Offset 0 creates the object when missing; an offset beyond the
	// object's size (or on a missing object) is ErrInvalidOffset. Bytes the
	// object held past offset are discarded first: the caller's record of the
	// offset (an upload session's state) is the truth, even after a crash
	// between writing data and recording it. Data is durable when Append
	// returns; a failed Append leaves the object no shorter than offset and
	// with nothing of r. Appends to one key must not run concurrently (upload
	// sessions serialise them through a compare-and-swap of their state).
	Append(ctx context.Context, key string, offset int64, r io.Reader) (int64, error)
	// Move renames src to dst, replacing dst: dst appears atomically, whole;
	// src is removed afterwards (on S3 a crash in between leaves both).
	Move(ctx context.Context, src, dst string) error
	// Delete removes one object. Deleting a missing object returns ErrNotFound.
	Delete(ctx context.Context, key string) error
	// DeleteAll removes every object under prefix (a "directory"); a missing
	// prefix is not an error.
	DeleteAll(ctx context.Context, prefix string) error
	// List returns the names (not keys) of the direct children of prefix:
	// objects and "directories" alike, sorted. A missing prefix returns
	// ErrNotFound; the root ("") of an empty store is an empty list.
	List(ctx context.Context, prefix string) ([]string, error)
	// Ping reports whether the backend is reachable and usable.
	Ping(ctx context.Context) error
}

// Redirector is implemented by backends whose objects clients can fetch
// directly (S3 presigned URLs). Handlers may redirect a download there
// instead of streaming it through the registry.
type Redirector interface {
	// RedirectURL returns a URL from which the object at key can be fetched
	// without credentials, valid for expiry.
	RedirectURL(ctx context.Context, key string, expiry time.Duration) (string, error)
}

// A FileTaker is implemented by backends that can take a complete local
// file as the object at key by renaming it (a filesystem, when the file is
// on the same one): the pull-through cache's downloads then cost one write,
// not two. taken is false, with nothing changed, when it cannot; the caller
// then Puts the content. The file is synced before it is taken.
type FileTaker interface {
	TakeFile(ctx context.Context, key, path string) (taken bool, err error)
}

// A Walker is implemented by backends that can stream every object under a
// prefix, recursively, without holding the tree in memory (S3 lists 1,000
// keys a request). Use the function Walk, which falls back to List and Stat
// on other backends.
type Walker interface {
	// Walk calls fn with the Info of every object whose key starts with
	// prefix + "/" (every object of the store for prefix ""), in lexical
	// (byte-wise) order of the keys; "directories" are not objects, and an
	// object named prefix itself is not under it. A missing prefix walks
	// nothing and is not an error. Walk stops at the first error fn returns
	// and returns that error unchanged. Key, Size and ModTime are what Stat
	// reports; Version is Stat's too, or empty where the backend cannot tell
	// it without a request per object (S3): Stat the key when it matters.
	// A walk is no snapshot: an object written or deleted while it runs may
	// or may not be visited, one that exists throughout is visited once.
	Walk(ctx context.Context, prefix string, fn func(Info) error) error
}

// A Pager is implemented by backends that can list the keys under a
// prefix from any point in key order, at a cost in proportion to the page
// and not to what sorts before it (S3's ListObjectsV2 with StartAfter; a
// filesystem that skips the directories wholly before it). Use the
// function Page, which falls back to Walk on other backends. Indexes made
// of empty marker objects (the OCI catalog) page through it.
type Pager interface {
	// Page returns the keys of at most limit objects under prefix (as Walk
	// visits them: every object for prefix ""), in lexical (byte-wise)
	// order, that sort strictly after after: "" starts at the first, the
	// last key of a page continues after it. after need not be a key that
	// exists, nor a valid one. A missing prefix, or limit 0 or less, is an
	// empty page and no error. Like a walk, a page is no snapshot.
	Page(ctx context.Context, prefix, after string, limit int) ([]string, error)
}

// A BatchDeleter is implemented by backends that delete many objects in
// few requests (S3's DeleteObjects, 1,000 keys a call). Use the function
// DeleteMany, which falls back to Delete on other backends.
type BatchDeleter interface {
	// DeleteMany removes the objects at keys, as Delete does each, except
	// that a missing key is not an error. An invalid key fails the call
	// before anything is deleted. On any other failure it returns the
	// first error, naming its key; the other keys may or may not be gone.
	DeleteMany(ctx context.Context, keys []string) error
}

// Walk calls fn for every object under prefix as Walker.Walk documents:
// through d's Walk when d is a Walker, otherwise by List and Stat of every
// name, one directory at a time.
func Walk(ctx context.Context, d Driver, prefix string, fn func(Info) error) error {
	if w, ok := d.(Walker); ok {
		return w.Walk(ctx, prefix, fn)
	}
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return err
		}
	}
	return walkByList(ctx, d, prefix, fn)
}

// walkByList walks prefix with List and Stat. A name can be an object and
// a "directory" at once; the object's key sorts as name, the keys below it
// as name + "/", which is what orders them among their siblings.
func walkByList(ctx context.Context, d Driver, prefix string, fn func(Info) error) error {
	names, err := d.List(ctx, prefix)
	if errors.Is(err, ErrNotFound) {
		return nil // a missing or emptied prefix holds nothing
	}
	if err != nil {
		return err
	}
	type entry struct {
		sortKey string
		info    *Info // the object, or nil for the objects below the name
	}
	var entries []entry
	for _, name := range names {
		key := name
		if prefix != "" {
			key = prefix + "/" + name
		}
		info, err := d.Stat(ctx, key)
		switch {
		case err == nil:
			entries = append(entries, entry{name, &info})
		case !errors.Is(err, ErrNotFound):
			return err
		}
		entries = append(entries, entry{sortKey: name + "/"})
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return strings.Compare(a.sortKey, b.sortKey) })
	for _, e := range entries {
		if e.info != nil {
			if err := fn(*e.info); err != nil {
				return err
			}
			continue
		}
		sub := strings.TrimSuffix(e.sortKey, "/")
		if prefix != "" {
			sub = prefix + "/" + sub
		}
		if err := walkByList(ctx, d, sub, fn); err != nil {
			return err
		}
	}
	return nil
}

// Page returns a page of the keys under prefix as Pager.Page documents:
// through d's Page when d is a Pager, otherwise by a Walk from the start of
// prefix, which costs what sorts before after too.
func Page(ctx context.Context, d Driver, prefix, after string, limit int) ([]string, error) {
	if p, ok := d.(Pager); ok {
		return p.Page(ctx, prefix, after, limit)
	}
	if limit <= 0 {
		return nil, nil
	}
	var keys []string
	err := Walk(ctx, d, prefix, func(info Info) error {
		if info.Key <= after {
			return nil
		}
		keys = append(keys, info.Key)
		if len(keys) == limit {
			return errPageFull
		}
		return nil
	})
	if err != nil && err != errPageFull {
		return nil, err
	}
	return keys, nil
}

// errPageFull stops the walk of Page's fallback.
var errPageFull = errors.New("storage: page full")

// DeleteMany removes the objects at keys as BatchDeleter.DeleteMany
// documents: through d's DeleteMany when d is a BatchDeleter, otherwise
// with one Delete a key.
func DeleteMany(ctx context.Context, d Driver, keys []string) error {
	if b, ok := d.(BatchDeleter); ok {
		return b.DeleteMany(ctx, keys)
	}
	for _, key := range keys {
		if err := ValidateKey(key); err != nil {
			return err
		}
	}
	var first error
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.Delete(ctx, key); err != nil && !errors.Is(err, ErrNotFound) && first == nil {
			first = fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return first
}

// Join builds a key from segments, refusing anything that could escape the
// store or alias another key.
func Join(segments ...string) (string, error) {
	if len(segments) == 0 {
		return "", fmt.Errorf("%w: no segments", ErrInvalidKey)
	}
	for _, s := range segments {
		if err := checkSegments(s); err != nil {
			return "", err
		}
	}
	return strings.Join(segments, "/"), nil
}

// ValidateKey checks a complete key with the rules of Join.
func ValidateKey(key string) error { return checkSegments(key) }

func checkSegments(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty segment", ErrInvalidKey)
	}
	for _, seg := range strings.Split(s, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: empty segment in %q", ErrInvalidKey, s)
		case seg[0] == '.':
			return fmt.Errorf("%w: segment %q starts with a dot", ErrInvalidKey, seg)
		case strings.ContainsAny(seg, "\x00\\"):
			return fmt.Errorf("%w: segment %q has a forbidden character", ErrInvalidKey, seg)
		}
	}
	return nil
}

// ReadAll reads a whole (small) object into memory. Use it for metadata only,
// never for blobs.
func ReadAll(ctx context.Context, d Driver, key string) ([]byte, Info, error) {
	obj, err := d.Open(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, Info{}, fmt.Errorf("read %s: %w", key, err)
	}
	return b, obj.Info(), nil
}
