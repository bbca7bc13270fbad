package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unireg/unireg/registry/storage"
)

var _ storage.Pager = (*Driver)(nil)

// Page implements storage.Pager: a walk in key order, as Walk's, that
// reads only the directories on the way to after and those after it, and
// stops at limit. A directory of many names would still cost a read of all
// of them every page; the driver keeps their sorted names (dirCache) while
// the directory's modification time says it did not change.
func (d *Driver) Page(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	dir := d.root
	if prefix != "" {
		var err error
		if dir, err = d.path(prefix); err != nil {
			return nil, err
		}
	}
	if limit <= 0 {
		return nil, nil
	}
	p := pager{d: d, after: after, limit: limit}
	if err := p.dir(ctx, dir, prefix); err != nil && err != errPageFull {
		return nil, err
	}
	return p.keys, nil
}

// errPageFull stops a page's walk.
var errPageFull = errors.New("page full")

type pager struct {
	d     *Driver
	after string
	limit int
	keys  []string
}

func (p *pager) dir(ctx context.Context, dir, prefix string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	base := ""
	if prefix != "" {
		base = prefix + "/"
	}
	rel, under := strings.CutPrefix(p.after, base)
	if !under && p.after > base {
		return nil // every key here sorts before after
	}
	entries, err := p.d.names.read(dir)
	if err != nil {
		return fmt.Errorf("page %s: %w", prefix, err)
	}
	if under && rel != "" {
		i := sort.Search(len(entries), func(i int) bool { return entries[i].sortKey() > rel })
		// The one directory whose keys after may be among.
		if i > 0 && entries[i-1].dir && strings.HasPrefix(rel, entries[i-1].sortKey()) {
			i--
		}
		entries = entries[i:]
	}
	return p.entries(ctx, dir, base, entries)
}

func (p *pager) entries(ctx context.Context, dir, base string, entries []dirEntry) error {
	for _, e := range entries {
		key := base + e.name
		if e.dir {
			if err := p.dir(ctx, filepath.Join(dir, e.name), key); err != nil {
				return err
			}
			continue
		}
		if key <= p.after {
			continue
		}
		p.keys = append(p.keys, key)
		if len(p.keys) == p.limit {
			return errPageFull
		}
	}
	return nil
}

// dirEntry is a name of a directory, as Walk sees it: dot-names and links
// to directories are left out.
type dirEntry struct {
	name string
	dir  bool
}

// sortKey orders the entry among its siblings as its keys are ordered.
func (e dirEntry) sortKey() string {
	if e.dir {
		return e.name + "/"
	}
	return e.name
}

// Bounds of the names a dirCache keeps. Small directories are read again
// every time: that costs little and keeps the cache for the large ones.
const (
	cacheMinNames = 256
	cacheMaxNames = 1 << 19 // about 25 MB of names at most
	// cacheSettle is how old a directory's modification time must be for
	// its names to be kept: a change in the same tick of the file
	// system's clock may leave the time as it was, one later cannot.
	cacheSettle = 2 * time.Second
)

// dirCache keeps the sorted entries of large directories, each with the
// modification time it was read at; a directory whose time changed is
// read again. Its zero value is ready.
type dirCache struct {
	mu    sync.Mutex
	dirs  map[string]cachedDir
	names int // entries kept in all dirs
}

type cachedDir struct {
	modTime time.Time
	entries []dirEntry
}

// read returns the sorted entries of dir, none when it is missing or no
// directory.
func (c *dirCache) read(dir string) ([]dirEntry, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && !fi.IsDir()) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	cached, ok := c.dirs[dir]
	c.mu.Unlock()
	if ok && cached.modTime.Equal(fi.ModTime()) {
		return cached.entries, nil
	}
	entries, err := readEntries(dir)
	if err != nil {
		return nil, err
	}
	if len(entries) >= cacheMinNames && time.Since(fi.ModTime()) > cacheSettle {
		c.keep(dir, cachedDir{modTime: fi.ModTime(), entries: entries})
	}
	return entries, nil
}

func (c *dirCache) keep(dir string, cd cachedDir) {
	if len(cd.entries) > cacheMaxNames {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirs == nil {
		c.dirs = map[string]cachedDir{}
	}
	if old, ok := c.dirs[dir]; ok {
		c.names -= len(old.entries)
		delete(c.dirs, dir)
	}
	for other, old := range c.dirs { // any will do: the map's order is random
		if c.names+len(cd.entries) <= cacheMaxNames {
			break
		}
		c.names -= len(old.entries)
		delete(c.dirs, other)
	}
	c.dirs[dir] = cd
	c.names += len(cd.entries)
}

// readEntries reads dir's entries sorted by their keys.
func readEntries(dir string) ([]dirEntry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil // removed meanwhile
	}
	if err != nil {
		return nil, err
	}
	entries := make([]dirEntry, 0, len(des))
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		e := dirEntry{name: de.Name(), dir: de.IsDir()}
		if de.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(filepath.Join(dir, de.Name()))
			if err != nil || fi.IsDir() {
				continue // dangling, or a link to a directory: Walk skips it too
			}
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].sortKey() < entries[j].sortKey() })
	return entries, nil
}
