package npm

import (
	"context"
	"net/http"
	"reflect"

	"github.com/unireg/unireg/registry/auth"
)

// changePackage applies a document sent back by a client (after GET
// ?write=true): version removals (unpublish of one version, needs delete),
// deprecation messages, maintainers and dist-tags (need write). A body
// without versions changes only maintainers (`npm owner add/rm`, needs
// write) and the caller's star (`users`, needs read). Version contents
// themselves never change.
func (h *Handler) changePackage(q *request, incoming packument) error {
	name := q.route.pkg
	if n := incoming.name(); n != "" && n != name {
		return newError(http.StatusBadRequest, "document name %q does not match the URL's package %q", n, name)
	}
	if id := str(incoming["_id"]); id != "" && id != name {
		return newError(http.StatusBadRequest, "document _id %q does not match the URL's package %q", id, name)
	}
	partial := incoming["versions"] == nil
	var maintainers []any
	if m, ok := incoming["maintainers"]; ok && (partial || len(asSlice(m)) > 0) {
		// A whole document without maintainers (one stored without
		// them) leaves them alone; `npm owner` always sends some.
		var err error
		if maintainers, err = normalizeMaintainers(m); err != nil {
			return err
		}
	}
	var removed []string
	var removedSums []string
	next, err := h.packages.update(q.R.Context(), name, func(cur *draft) (*draft, error) {
		if cur == nil {
			return nil, newError(http.StatusNotFound, "package %s not found", name)
		}
		removed, removedSums = nil, nil
		if partial {
			return h.applyPartial(q, cur, incoming, maintainers)
		}
		if err := q.Require(name, auth.ActionWrite); err != nil {
			return nil, err
		}
		inVersions := incoming.versions()
		for v, m := range cur.versions() {
			in := obj(inVersions[v])
			if in == nil {
				removed = append(removed, v)
				if s, ok := sha512HexOfIntegrity(str(distOf(m)["integrity"])); ok {
					removedSums = append(removedSums, s)
				}
				continue
			}
			// Only a version whose message changes is copied: the
			// others' segments stay as they are.
			dep, isString := in["deprecated"].(string)
			if !isString && in["deprecated"] != nil {
				continue // not a message (nor null): left alone
			}
			switch old, had := m["deprecated"]; {
			case dep == "" && had:
				delete(cur.edit(v), "deprecated")
			case dep != "" && str(old) != dep:
				cur.edit(v)["deprecated"] = dep
			}
		}
		for v := range inVersions {
			if cur.version(v) == nil {
				return nil, newError(http.StatusBadRequest, "version %s is not published; publish it with its tarball", v)
			}
		}
		if len(removed) > 0 {
			// Versions missing from a document read before the last write
			// may have been published since: refuse, as CouchDB does.
			if err := checkRev(q, cur, incoming); err != nil {
				return nil, err
			}
			if h.opts.DisableUnpublish {
				return nil, newError(http.StatusMethodNotAllowed, "unpublishing is disabled on this registry")
			}
			if err := q.Require(name, auth.ActionDelete); err != nil {
				return nil, err
			}
			for _, v := range removed {
				cur.remove(v)
			}
		}
		if maintainers != nil {
			cur.packument["maintainers"] = maintainers
		}
		if tags := obj(incoming["dist-tags"]); tags != nil {
			next, err := changedTags(cur, tags)
			if err != nil {
				return nil, err
			}
			cur.packument["dist-tags"] = next
		}
		cur.fixDistTags()
		if len(cur.versions()) == 0 {
			return nil, nil // the last version went: the package goes
		}
		ts := now()
		cur.times()["modified"] = ts
		cur.packument["_rev"] = nextRev(str(cur.packument["_rev"]), []byte("change"+ts))
		return cur, nil
	})
	if err != nil {
		return err
	}
	ctx := context.WithoutCancel(q.R.Context())
	for _, s := range removedSums {
		h.dropUnreferencedTarball(ctx, name, s)
	}
	for _, v := range removed {
		h.emit(q, Event{Action: "version.unpublished", Package: name, Version: v})
	}
	if next == nil {
		// The tarballs went above, one by one: a DeleteAll of the package's
		// prefix would also take a publish that landed since the update.
		h.emit(q, Event{Action: "package.unpublished", Package: name})
		writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": true, "id": name})
		return nil
	}
	if len(removed) == 0 {
		h.emit(q, Event{Action: "package.changed", Package: name})
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": true, "id": name, "rev": next.packument["_rev"]})
	return nil
}

// changedTags is the dist-tags of a whole document sent back: tags naming a
// version the package lacks go (an unpublished version's), a tag kept as
// the document had it stays whatever its name, and one added or moved must
// be a valid tag, else the change is refused.
func changedTags(cur *draft, tags map[string]any) (map[string]any, error) {
	next := map[string]any{}
	for t, v := range tags {
		version := str(v)
		if cur.version(version) == nil {
			continue
		}
		if str(cur.distTags()[t]) != version {
			if err := checkTag(t); err != nil {
				return nil, err
			}
		}
		next[t] = version
	}
	return next, nil
}

// checkRev refuses a change made to a document older than the current one,
// when the client says which revision it read (in the body or the URL).
func checkRev(q *request, cur *draft, incoming packument) error {
	rev := str(incoming["_rev"])
	if rev == "" {
		rev = q.route.rev
	}
	if rev != "" && rev != str(cur.packument["_rev"]) {
		return newError(http.StatusConflict, "%s changed since revision %s was read; fetch it again", q.route.pkg, truncate(rev))
	}
	return nil
}

// applyPartial applies a body without versions: maintainers from a caller
// who may write (`npm owner add/rm`, which sends {_id, _rev, maintainers}
// read just before, so a stale revision is a conflict: another owner
// change would be lost), and the caller's star. dist-tags have their own
// endpoint; anything else in the body is ignored.
func (h *Handler) applyPartial(q *request, cur *draft, incoming packument, maintainers []any) (*draft, error) {
	if maintainers != nil {
		if err := q.Require(q.route.pkg, auth.ActionWrite); err != nil {
			return nil, err
		}
		if err := checkRev(q, cur, incoming); err != nil {
			return nil, err
		}
		cur.packument["maintainers"] = maintainers
		ts := now()
		cur.times()["modified"] = ts
		cur.packument["_rev"] = nextRev(str(cur.packument["_rev"]), []byte("owners"+ts))
		if _, star := incoming["users"]; !star {
			return cur, nil
		}
	}
	return h.applyStar(q, cur, incoming)
}

// applyStar changes only the caller's entry of `users`.
func (h *Handler) applyStar(q *request, cur *draft, incoming packument) (*draft, error) {
	if err := q.Require(q.route.pkg, auth.ActionRead); err != nil {
		return nil, err
	}
	if q.Caller.Anonymous {
		return nil, newError(http.StatusUnauthorized, "authentication required to star")
	}
	user := q.Subject()
	users := child(cur.packument, "users")
	in := obj(incoming["users"])
	if starred, _ := in[user].(bool); starred {
		users[user] = true
	} else {
		delete(users, user)
	}
	if reflect.DeepEqual(users, map[string]any{}) {
		delete(cur.packument, "users")
	}
	cur.packument["_rev"] = nextRev(str(cur.packument["_rev"]), []byte("star"+user+now()))
	return cur, nil
}

// unpublishPackage handles DELETE /:pkg/-rev/:rev: the document goes first,
// then the tarballs it pointed at.
func (h *Handler) unpublishPackage(q *request) error {
	name := q.route.pkg
	if h.opts.DisableUnpublish {
		return newError(http.StatusMethodNotAllowed, "unpublishing is disabled on this registry")
	}
	if err := q.Require(name, auth.ActionDelete); err != nil {
		return err
	}
	found := false
	var sums []string
	_, err := h.packages.update(q.R.Context(), name, func(cur *draft) (*draft, error) {
		found, sums = cur != nil, nil
		if cur == nil {
			return nil, nil
		}
		for _, v := range cur.versions() {
			if s, ok := sha512HexOfIntegrity(str(distOf(v)["integrity"])); ok {
				sums = append(sums, s)
			}
		}
		return nil, nil
	})
	if err != nil {
		return err
	}
	if !found {
		return newError(http.StatusNotFound, "package %s not found", name)
	}
	// Tarball by tarball, each unless the current document uses it: a
	// DeleteAll of the prefix would also take a publish that landed since.
	ctx := context.WithoutCancel(q.R.Context())
	for _, s := range sums {
		h.dropUnreferencedTarball(ctx, name, s)
	}
	h.emit(q, Event{Action: "package.unpublished", Package: name})
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": true, "id": name})
	return nil
}

// deleteTarball handles the last step of unpublishing one version. The
// tarball was already dropped when the document stopped pointing at it; a
// tarball still in use is refused.
func (h *Handler) deleteTarball(q *request) error {
	name := q.route.pkg
	if err := q.Require(name, auth.ActionDelete); err != nil {
		return err
	}
	c, err := h.packages.cached(q.R.Context(), name)
	if err != nil {
		return err
	}
	if c != nil {
		if _, inUse := c.files[q.route.arg]; inUse {
			return newError(http.StatusConflict, "tarball %s is still used by a published version of %s", q.route.arg, name)
		}
	}
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": true})
	return nil
}
