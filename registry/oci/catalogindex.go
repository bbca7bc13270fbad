package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/unireg/unireg/registry/storage"
)

// The catalog index (docs/storage-layout.md): one empty marker object per
// repository, so that a page of the catalog is a page of keys
// (storage.Page) and not a walk of every repository.
//
//	catalog/oci/repositories/<name>,   a repository was created (empty)
//	catalog/oci/indexed                every repository made before the index has its marker
//
// The comma sorts below every character of a name ('-', '.', '/', digits,
// letters, '_'), so the markers' key order is the lexical order of the
// names the catalog answers in: "a," < "a-c," < "a.b," < "a/b,". The
// marker is written before the repository's first link and never removed:
// a marker whose repository holds no link any more (deleted, collected) is
// skipped by the catalog, so a deletion needs no write here and shows on
// every replica at once.
const (
	catalogMarkersKey = "catalog/oci/repositories"
	catalogIndexedKey = "catalog/oci/indexed"
)

func catalogMarkerKey(name string) string { return catalogMarkersKey + "/" + name + "," }

// markerName returns the repository a marker key names.
func markerName(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, catalogMarkersKey+"/")
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, ",")
	return name, ok && name != ""
}

// maxNotedRepositories bounds the names a process remembers as noted.
const maxNotedRepositories = 100000

// catalogIndex is what a Handler knows of the index; its zero value is
// ready.
type catalogIndex struct {
	mu        sync.Mutex
	noted     map[string]bool // repositories whose marker exists
	indexed   bool            // catalogIndexedKey exists
	checked   bool            // noteRepository looked whether the store is new
	migrating bool
}

// noteRepository makes sure the repository has its catalog marker; every
// write that links something into a repository calls it first, so a
// repository is never visible without one. After the first time a process
// costs nothing.
func (h *Handler) noteRepository(ctx context.Context, name string) error {
	c := &h.catalog
	c.mu.Lock()
	noted, checked := c.noted[name], c.checked
	c.mu.Unlock()
	if noted {
		return nil
	}
	if !checked {
		// A store that starts with the index never needs the migration.
		if _, err := h.catalogIndexedNow(ctx); err != nil {
			return fmt.Errorf("catalog index: %w", err)
		}
		c.mu.Lock()
		c.checked = true
		c.mu.Unlock()
	}
	key := catalogMarkerKey(name)
	_, err := h.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		_, err = h.store.Put(ctx, key, bytes.NewReader(nil), storage.Condition{})
	}
	if err != nil {
		return fmt.Errorf("catalog marker of %s: %w", name, err)
	}
	c.mu.Lock()
	if c.noted == nil || len(c.noted) >= maxNotedRepositories {
		c.noted = map[string]bool{}
	}
	c.noted[name] = true
	c.mu.Unlock()
	return nil
}

// catalogIndexed reports whether the index holds every repository. Until
// it does, it starts (once per process at a time) the migration of a store
// written before the index, in the background: a walk that notes every
// repository, then the flag. A repository pushed meanwhile notes itself.
func (h *Handler) catalogIndexed(ctx context.Context) (bool, error) {
	c := &h.catalog
	c.mu.Lock()
	indexed, migrating := c.indexed, c.migrating
	c.mu.Unlock()
	if indexed || migrating {
		return indexed, nil
	}
	_, err := h.store.Stat(ctx, catalogIndexedKey)
	if err == nil {
		c.mu.Lock()
		c.indexed = true
		c.mu.Unlock()
		return true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	// A read writes nothing into a store without repositories (its
	// first push writes the flag); the walk of it costs one listing.
	if repos, err := h.store.List(ctx, "repositories"); errors.Is(err, storage.ErrNotFound) || (err == nil && len(repos) == 0) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	c.mu.Lock()
	start := !c.migrating && !c.indexed
	if start {
		c.migrating = true
	}
	c.mu.Unlock()
	if start {
		go h.indexCatalog(context.WithoutCancel(ctx))
	}
	return false, nil
}

// catalogIndexedNow looks whether the flag exists, and writes it when the
// store holds no repository at all: every one made from now on notes
// itself. Writes call it, before their first marker.
func (h *Handler) catalogIndexedNow(ctx context.Context) (bool, error) {
	_, err := h.store.Stat(ctx, catalogIndexedKey)
	if errors.Is(err, storage.ErrNotFound) {
		var repos []string
		repos, err = h.store.List(ctx, "repositories")
		if errors.Is(err, storage.ErrNotFound) || (err == nil && len(repos) == 0) {
			_, err = h.store.Put(ctx, catalogIndexedKey, bytes.NewReader(nil), storage.Condition{})
		} else if err == nil {
			return false, nil
		}
	}
	if err != nil {
		return false, err
	}
	c := &h.catalog
	c.mu.Lock()
	c.indexed = true
	c.mu.Unlock()
	return true, nil
}

// indexCatalog writes the marker of every repository the walk finds, then
// the flag that the index is whole.
func (h *Handler) indexCatalog(ctx context.Context) {
	err := h.walkRepositories(ctx, func(repo string) (bool, error) {
		return true, h.noteRepository(ctx, repo)
	})
	if err == nil {
		_, err = h.store.Put(ctx, catalogIndexedKey, bytes.NewReader(nil), storage.Condition{})
	}
	c := &h.catalog
	c.mu.Lock()
	c.migrating = false
	c.indexed = c.indexed || err == nil
	c.mu.Unlock()
	if err != nil {
		h.opts.Logger.Warn("index the catalog; the next catalog request tries again", "error", err)
		return
	}
	h.opts.Logger.Info("catalog indexed")
}
