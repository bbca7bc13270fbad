package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage"
)

// maxPageSize bounds ?n= for tag and catalog pages.
const maxPageSize = 10000

// page applies the `n` and `last` parameters to a sorted list, and reports
// whether more entries follow.
func page(q *request, all []string) ([]string, bool, error) {
	n, last, err := pageQuery(q)
	if err != nil {
		return nil, false, err
	}
	if last != "" {
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		all = all[i:]
	}
	if n < 0 || n >= len(all) {
		return all, false, nil
	}
	return all[:n], true, nil
}

// pageQuery parses the `n` and `last` parameters of a list: n is -1 when
// absent (the whole list), capped at maxPageSize, and `last` is exclusive.
func pageQuery(q *request) (n int, last string, err error) {
	query := q.R.URL.Query()
	v := query.Get("n")
	if v == "" {
		return -1, query.Get("last"), nil
	}
	n, err = strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, "", newError(http.StatusBadRequest, CodeUnsupported, "invalid page size n=%q", truncate(v))
	}
	return min(n, maxPageSize), query.Get("last"), nil
}

// writeNextLink sets the Link header of a paginated list.
func writeNextLink(q *request, path string, n int, last string) {
	v := url.Values{}
	v.Set("n", strconv.Itoa(n))
	v.Set("last", last)
	q.W.Header().Set("Link", "<"+path+"?"+v.Encode()+`>; rel="next"`)
}

// serveTags lists a repository's tags a page at a time: one key per tag,
// so a page is a storage.Page of n+1 keys after last's, not a listing of
// every tag.
func (h *Handler) serveTags(q *request) error {
	name := q.route.name
	if err := q.Require(name, auth.ActionPull); err != nil {
		return err
	}
	n, last, err := pageQuery(q)
	if err != nil {
		return err
	}
	tags, more, err := h.tagPage(q.R.Context(), name, last, n)
	if err != nil {
		return err
	}
	if len(tags) == 0 {
		if _, err := h.store.List(q.R.Context(), repoKey(name)); errors.Is(err, storage.ErrNotFound) {
			return newError(http.StatusNotFound, CodeNameUnknown, "repository %s unknown", name)
		} else if err != nil {
			return err
		}
	}
	if more && len(tags) > 0 {
		writeNextLink(q, h.opts.Prefix+"/"+name+"/tags/list", len(tags), tags[len(tags)-1])
	}
	return writeJSON(q, http.StatusOK, map[string]any{"name": name, "tags": tags})
}

// tagPage returns the first n tags (every one for n < 0) after last, never
// nil, and whether more follow. Tags hold no "/", so the keys' order is
// the tags' order and last's key bounds the page exactly.
func (h *Handler) tagPage(ctx context.Context, name, last string, n int) ([]string, bool, error) {
	want := math.MaxInt
	if n >= 0 {
		want = n + 1 // one more says whether a next page exists
	}
	prefix := tagsKey(name)
	after := ""
	if last != "" {
		after = prefix + "/" + last
	}
	tags := []string{}
	for len(tags) < want {
		batch := min(want-len(tags), catalogBatch)
		keys, err := storage.Page(ctx, h.store, prefix, after, batch)
		if err != nil {
			return nil, false, fmt.Errorf("tags of %s: %w", name, err)
		}
		for _, key := range keys {
			if tag := strings.TrimPrefix(key, prefix+"/"); !strings.Contains(tag, "/") {
				tags = append(tags, tag)
			}
		}
		if len(keys) < batch {
			break
		}
		after = keys[len(keys)-1]
	}
	if n >= 0 && len(tags) > n {
		return tags[:n], true, nil
	}
	return tags, false, nil
}

func writeJSON(q *request, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	q.W.Header().Set("Content-Type", "application/json")
	q.W.Header().Set("Content-Length", strconv.Itoa(len(b)))
	q.W.WriteHeader(status)
	if q.R.Method != http.MethodHead {
		_, _ = q.W.Write(b)
	}
	return nil
}

// moveTag points a tag of the repository at d, with its tag.moved event.
// It is the one place a tag is written.
func (h *Handler) moveTag(q *request, name, tag string, d digest.Digest, mediaType string) error {
	if _, err := h.store.Put(q.R.Context(), tagKey(name, tag), strings.NewReader(d.String()), storage.Condition{}); err != nil {
		return fmt.Errorf("tag %s: %w", tag, err)
	}
	h.emit(q, Event{Action: "tag.moved", Repository: name, Digest: d.String(), Tag: tag, MediaType: mediaType})
	return nil
}

// deleteTag removes one tag of the repository, with its tag.deleted event;
// an unknown tag is MANIFEST_UNKNOWN.
func (h *Handler) deleteTag(q *request, name, tag string) error {
	err := h.store.Delete(q.R.Context(), tagKey(name, tag))
	if errors.Is(err, storage.ErrNotFound) {
		return newError(http.StatusNotFound, CodeManifestUnknown, "tag %s unknown in repository %s", tag, name)
	}
	if err != nil {
		return err
	}
	h.emit(q, Event{Action: "tag.deleted", Repository: name, Tag: tag})
	return nil
}

// untagDigest removes every tag of the repository that points at d, each
// with its tag.deleted event: an audit trail must not lose a tag silently.
func (h *Handler) untagDigest(q *request, name string, d digest.Digest) error {
	ctx := q.R.Context()
	tags, err := h.store.List(ctx, tagsKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, t := range tags {
		b, _, err := storage.ReadAll(ctx, h.store, tagKey(name, t))
		if err != nil {
			continue
		}
		if string(bytes.TrimSpace(b)) == d.String() {
			err := h.store.Delete(ctx, tagKey(name, t))
			if errors.Is(err, storage.ErrNotFound) {
				continue // removed meanwhile, by a request that reports it
			}
			if err != nil {
				return err
			}
			h.emit(q, Event{Action: "tag.deleted", Repository: name, Digest: d.String(), Tag: t})
		}
	}
	return nil
}
