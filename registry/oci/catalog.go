package oci

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"

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

// serveCatalog lists the repositories the caller may pull. The walk costs in
// proportion to the registry, so a caller who could see nothing gets its
// answer without one.
func (h *Handler) serveCatalog(q *request) error {
	if err := q.Identify(); err != nil {
		return err
	}
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
	if more && len(list) > 0 {
		writeNextLink(q, h.opts.Prefix+"/_catalog", len(list), list[len(list)-1])
	}
	if list == nil {
		list = []string{}
	}
	return writeJSON(q, http.StatusOK, map[string]any{"repositories": list})
}
