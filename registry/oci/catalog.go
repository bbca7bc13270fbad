package oci

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage"
)

// walkRepositories calls fn for every repository, depth first, until fn
// returns false or an error. A directory is a repository when it holds a
// "_layers" or "_manifests" child.
func (h *Handler) walkRepositories(ctx context.Context, fn func(repo string) (bool, error)) error {
	_, err := h.walkDir(ctx, "", fn)
	return err
}

func (h *Handler) walkDir(ctx context.Context, rel string, fn func(string) (bool, error)) (bool, error) {
	key := "repositories"
	if rel != "" {
		key += "/" + rel
	}
	children, err := h.store.List(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	isRepo := false
	for _, c := range children {
		if c == "_layers" || c == "_manifests" {
			isRepo = true
		}
	}
	if isRepo && rel != "" {
		if cont, err := fn(rel); !cont || err != nil {
			return false, err
		}
	}
	for _, c := range children {
		if strings.HasPrefix(c, "_") {
			continue
		}
		next := c
		if rel != "" {
			next = rel + "/" + c
		}
		if cont, err := h.walkDir(ctx, next, fn); !cont || err != nil {
			return false, err
		}
	}
	return true, nil
}

// serveCatalog lists the repositories the caller may pull, a page at a
// time through the catalog index (catalogindex.go): a page costs what its
// names cost, not what sorts before them. A caller who could see nothing
// gets its answer without a look at the store.
func (h *Handler) serveCatalog(q *request) error {
	if err := q.Identify(); err != nil {
		return err
	}
	n, last, err := pageQuery(q)
	if err != nil {
		return err
	}
	var list []string
	more := false
	if q.MaySeeSome(auth.ActionPull) {
		indexed, err := h.catalogIndexed(q.R.Context())
		if err != nil {
			return err
		}
		if !indexed {
			return h.serveCatalogByWalk(q)
		}
		if list, more, err = h.catalogPage(q, last, n); err != nil {
			return err
		}
	}
	if q.Caller.Anonymous && len(list) == 0 && q.Gated() {
		// Challenged only when nothing at all is visible, as without pages.
		seesSome := false
		if last != "" && q.MaySeeSome(auth.ActionPull) {
			if _, seesSome, err = h.catalogPage(q, "", 0); err != nil {
				return err
			}
		}
		if !seesSome {
			return h.challenge(&q.Call, []string{"registry:catalog:*"}, "authentication required")
		}
	}
	return h.writeCatalog(q, list, more)
}

// catalogBatch is the most markers one storage.Page call asks for
// (S3 lists 1,000 keys a request).
const catalogBatch = 1000

// catalogChecks bounds the repositories a catalog page checks at once.
const catalogChecks = 16

// catalogPage returns the first n (every one for n < 0) repositories after
// last that the caller may pull and that still hold something, and whether
// more follow: it reads markers in key order until it has n+1 names. A
// marker the caller may not pull costs its share of a listing only; the
// look into a repository is for the names the page shows. A caller who may
// see few of many repositories therefore pages through the markers between
// its names (1,000 a request), never through the repositories.
func (h *Handler) catalogPage(q *request, last string, n int) ([]string, bool, error) {
	ctx := q.R.Context()
	want := math.MaxInt
	if n >= 0 {
		want = n + 1 // one more says whether a next page exists
	}
	after := ""
	if last != "" {
		after = catalogMarkerKey(last)
	}
	batch := min(want, catalogBatch)
	var names []string
	for len(names) < want {
		keys, err := storage.Page(ctx, h.store, catalogMarkersKey, after, batch)
		if err != nil {
			return nil, false, fmt.Errorf("catalog: %w", err)
		}
		var candidates []string
		for _, key := range keys {
			// A name below last can sort after its marker when last is no
			// valid name ("a+" and "a,"): the comparison keeps last exclusive.
			if name, ok := markerName(key); ok && name > last && q.Allowed(name, auth.ActionPull) {
				candidates = append(candidates, name)
			}
		}
		for len(candidates) > 0 && len(names) < want {
			k := min(len(candidates), want-len(names))
			live, err := h.liveRepositories(ctx, candidates[:k])
			if err != nil {
				return nil, false, err
			}
			names = append(names, live...)
			candidates = candidates[k:]
		}
		if len(keys) < batch {
			break
		}
		after = keys[len(keys)-1]
		batch = min(catalogBatch, max(want-len(names), 2*batch))
	}
	if n >= 0 && len(names) > n {
		return names[:n], true, nil
	}
	return names, false, nil
}

// liveRepositories returns, in order, the names whose repository still
// holds a link: a marker outlives its repository's deletion.
func (h *Handler) liveRepositories(ctx context.Context, names []string) ([]string, error) {
	live := make([]bool, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, catalogChecks)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			live[i], errs[i] = h.repositoryExists(ctx, name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []string
	for i, name := range names {
		if live[i] {
			out = append(out, name)
		}
	}
	return out, nil
}

// repositoryExists reports whether the repository holds links: as for
// walkRepositories, a "_layers" or "_manifests" child.
func (h *Handler) repositoryExists(ctx context.Context, name string) (bool, error) {
	children, err := h.store.List(ctx, repoKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("catalog: repository %s: %w", name, err)
	}
	return slices.Contains(children, "_layers") || slices.Contains(children, "_manifests"), nil
}

// serveCatalogByWalk is the catalog of a store whose index is not whole
// yet: a walk of every repository for every page.
func (h *Handler) serveCatalogByWalk(q *request) error {
	var repos []string
	if q.MaySeeSome(auth.ActionPull) {
		err := h.walkRepositories(q.R.Context(), func(repo string) (bool, error) {
			if q.Allowed(repo, auth.ActionPull) {
				repos = append(repos, repo)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	if q.Caller.Anonymous && len(repos) == 0 && q.Gated() {
		return h.challenge(&q.Call, []string{"registry:catalog:*"}, "authentication required")
	}
	sort.Strings(repos)
	list, more, err := page(q, repos)
	if err != nil {
		return err
	}
	return h.writeCatalog(q, list, more)
}

func (h *Handler) writeCatalog(q *request, list []string, more bool) error {
	if more && len(list) > 0 {
		writeNextLink(q, h.opts.Prefix+"/_catalog", len(list), list[len(list)-1])
	}
	if list == nil {
		list = []string{}
	}
	return writeJSON(q, http.StatusOK, map[string]any{"repositories": list})
}
