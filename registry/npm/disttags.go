package npm

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/unireg/unireg/registry/auth"
)

// setDistTag handles PUT /-/package/:pkg/dist-tags/:tag with a JSON string.
func (h *Handler) setDistTag(q *request) error {
	name, tag := q.route.pkg, q.route.arg
	if err := q.Require(name, auth.ActionWrite); err != nil {
		return err
	}
	if err := checkTag(tag); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(q.R.Body, 1024))
	if err != nil {
		return newError(http.StatusBadRequest, "read body: %v", err)
	}
	var version string
	if err := json.Unmarshal(b, &version); err != nil {
		return newError(http.StatusBadRequest, "the body must be a JSON string naming a version")
	}
	next, err := h.packages.update(q.R.Context(), name, func(cur *draft) (*draft, error) {
		if cur == nil {
			return nil, newError(http.StatusNotFound, "package %s not found", name)
		}
		if cur.version(version) == nil {
			return nil, newError(http.StatusBadRequest, "version %s of %s is not published", version, name)
		}
		cur.distTags()[tag] = version
		ts := now()
		cur.times()["modified"] = ts
		cur.packument["_rev"] = nextRev(str(cur.packument["_rev"]), []byte(tag+version+ts))
		return cur, nil
	})
	if err != nil {
		return err
	}
	h.emit(q, Event{Action: "dist-tag.set", Package: name, Tag: tag, Version: version})
	// yarn classic checks for ok; npm ignores the body.
	writeJSON(q.W, q.R, http.StatusCreated, map[string]any{"ok": true, "dist-tags": next.distTags()})
	return nil
}

// removeDistTag handles DELETE /-/package/:pkg/dist-tags/:tag. `latest`
// cannot be removed: yarn and pnpm need it.
func (h *Handler) removeDistTag(q *request) error {
	name, tag := q.route.pkg, q.route.arg
	if err := q.Require(name, auth.ActionWrite); err != nil {
		return err
	}
	if tag == "latest" {
		return newError(http.StatusBadRequest, "the latest dist-tag cannot be removed; point it at another version instead")
	}
	next, err := h.packages.update(q.R.Context(), name, func(cur *draft) (*draft, error) {
		if cur == nil {
			return nil, newError(http.StatusNotFound, "package %s not found", name)
		}
		if _, ok := cur.distTags()[tag]; !ok {
			return nil, newError(http.StatusNotFound, "dist-tag %s of %s not found", tag, name)
		}
		delete(cur.distTags(), tag)
		ts := now()
		cur.times()["modified"] = ts
		cur.packument["_rev"] = nextRev(str(cur.packument["_rev"]), []byte("rm"+tag+ts))
		return cur, nil
	})
	if err != nil {
		return err
	}
	h.emit(q, Event{Action: "dist-tag.removed", Package: name, Tag: tag})
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": true, "dist-tags": next.distTags()})
	return nil
}
