package npm

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage"
)

// packageNames lists every package in storage.
func (h *Handler) packageNames(ctx context.Context) ([]string, error) {
	top, err := h.store.List(ctx, packagesKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range top {
		if !strings.HasPrefix(n, "@") {
			names = append(names, n)
			continue
		}
		scoped, err := h.store.List(ctx, packagesKey+"/"+n)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		for _, s := range scoped {
			names = append(names, n+"/"+s)
		}
	}
	return names, nil
}

// search answers /-/v1/search over names, descriptions and keywords, among
// the packages the caller may read. Every term must match. It reads every
// packument, so a caller who could see nothing gets the empty answer without
// a read.
func (h *Handler) search(q *request) error {
	if h.opts.DisableSearch {
		return newError(http.StatusNotFound, "search is disabled on this registry")
	}
	if err := q.Identify(); err != nil {
		return err
	}
	query := q.R.URL.Query()
	terms := strings.Fields(strings.ToLower(query.Get("text")))
	size := boundedInt(query.Get("size"), 20, 1, 250)
	from := boundedInt(query.Get("from"), 0, 0, 1<<20)
	var names []string
	if q.MaySeeSome(auth.ActionRead) {
		var err error
		if names, err = h.packageNames(q.R.Context()); err != nil {
			return err
		}
	}
	var hits []map[string]any
	for _, name := range names {
		if !q.Allowed(name, auth.ActionRead) {
			continue
		}
		c, err := h.packages.cached(q.R.Context(), name)
		if err != nil || c == nil {
			continue
		}
		if hit := searchHit(c.doc, terms); hit != nil {
			hits = append(hits, hit)
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		return str(obj(hits[i]["package"])["name"]) < str(obj(hits[j]["package"])["name"])
	})
	total := len(hits)
	if from > len(hits) {
		from = len(hits)
	}
	hits = hits[from:]
	if len(hits) > size {
		hits = hits[:size]
	}
	if hits == nil {
		hits = []map[string]any{}
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"objects": hits, "total": total, "time": now()})
	return nil
}

func boundedInt(s string, def, lo, hi int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return min(max(n, lo), hi)
}

// searchHit returns the search result for a package, or nil when a term does
// not match its name, description or keywords.
func searchHit(p packument, terms []string) map[string]any {
	latest := p.version(str(p.distTags()["latest"]))
	description := str(p["description"])
	var keywords []any
	if latest != nil {
		if description == "" {
			description = str(latest["description"])
		}
		keywords, _ = latest["keywords"].([]any)
	}
	haystack := strings.ToLower(p.name() + " " + description)
	for _, k := range keywords {
		haystack += " " + strings.ToLower(str(k))
	}
	for _, t := range terms {
		if !strings.Contains(haystack, t) {
			return nil
		}
	}
	maintainers := []map[string]string{}
	for _, m := range asSlice(p["maintainers"]) {
		mm := obj(m)
		maintainers = append(maintainers, map[string]string{"username": str(mm["name"]), "email": str(mm["email"])})
	}
	publisher := map[string]string{"username": "", "email": ""}
	if len(maintainers) > 0 {
		publisher = maintainers[0]
	}
	if keywords == nil {
		keywords = []any{}
	}
	return map[string]any{
		"package": map[string]any{
			"name": p.name(), "version": str(p.distTags()["latest"]), "description": description,
			"keywords": keywords, "date": p.times()["modified"], "links": map[string]any{},
			"publisher": publisher, "maintainers": maintainers,
		},
		"score":       map[string]any{"final": 1, "detail": map[string]any{"quality": 1, "popularity": 1, "maintenance": 1}},
		"searchScore": 1,
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
