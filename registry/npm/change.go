package npm

import (
	"context"
	"net/http"
	"reflect"

	"github.com/unireg/unireg/registry/auth"
)

// changePackage applies a document sent back by a client (after GET
// ?write=true): version removals (unpublish of one version, needs delete),
// deprecation messages, maintainers and dist-tags (need write), or a star
// (`users`, needs read). Version contents themselves never change.
func (h *Handler) changePackage(q *request, incoming packument) error {
	name := q.route.pkg
	if n := incoming.name(); n != "" && n != name {
		return newError(http.StatusBadRequest, "document name %q does not match the URL's package %q", n, name)
	}
	starOnly := incoming["versions"] == nil
	var removed []string
	var removedSums []string
	next, err := h.packages.update(q.R.Context(), name, func(cur packument) (packument, error) {
		if cur == nil {
			return nil, newError(http.StatusNotFound, "package %s not found", name)
		}
		removed, removedSums = nil, nil
		if starOnly {
			return h.applyStar(q, cur, incoming)
		}
		if err := q.Require(name, auth.ActionWrite); err != nil {
			return nil, err
		}
		inVersions := incoming.versions()
		for v, m := range cur.versions() {
			in := obj(inVersions[v])
			if in == nil {
				removed = append(removed, v)
				if s, ok := sha512HexOfIntegrity(str(distOf(obj(m))["integrity"])); ok {
					removedSums = append(removedSums, s)
				}
				continue
			}
			vm := obj(m)
			switch dep := in["deprecated"].(type) {
			case string:
				if dep == "" {
					delete(vm, "deprecated")
				} else {
					vm["deprecated"] = dep
				}
			case nil:
				delete(vm, "deprecated")
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
			rev := str(incoming["_rev"])
			if rev == "" {
				rev = q.route.rev
			}
			if rev != "" && rev != str(cur["_rev"]) {
				return nil, newError(http.StatusConflict, "%s changed since revision %s was read; fetch it again", name, rev)
			}
			if h.opts.DisableUnpublish {
				return nil, newError(http.StatusMethodNotAllowed, "unpublishing is disabled on this registry")
			}
			if err := q.Require(name, auth.ActionDelete); err != nil {
				return nil, err
			}
			for _, v := range removed {
				delete(cur.versions(), v)
			}
		}
		if m, ok := incoming["maintainers"].([]any); ok && len(m) > 0 {
			cur["maintainers"] = m
		}
		if tags := obj(incoming["dist-tags"]); tags != nil {
			next := map[string]any{}
			for t, v := range tags {
				if validTag(t) && cur.version(str(v)) != nil {
					next[t] = str(v)
				}
			}
			cur["dist-tags"] = next
		}
		cur.fixDistTags()
		if len(cur.versions()) == 0 {
			return nil, nil // the last version went: the package goes
		}
		ts := now()
		cur.times()["modified"] = ts
		cur["_rev"] = nextRev(str(cur["_rev"]), []byte("change"+ts))
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
	writeJSON(q.W, q.R, http.StatusOK, map[string]any{"ok": true, "id": name, "rev": next["_rev"]})
	return nil
}

// applyStar changes only the caller's entry of `users`.
func (h *Handler) applyStar(q *request, cur, incoming packument) (packument, error) {
	if err := q.Require(q.route.pkg, auth.ActionRead); err != nil {
		return nil, err
	}
	if q.Caller.Anonymous {
		return nil, newError(http.StatusUnauthorized, "authentication required to star")
	}
	user := q.Subject()
	users := child(cur, "users")
	in := obj(incoming["users"])
	if starred, _ := in[user].(bool); starred {
		users[user] = true
	} else {
		delete(users, user)
	}
	if reflect.DeepEqual(users, map[string]any{}) {
		delete(cur, "users")
	}
	cur["_rev"] = nextRev(str(cur["_rev"]), []byte("star"+user+now()))
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
	_, err := h.packages.update(q.R.Context(), name, func(cur packument) (packument, error) {
		found, sums = cur != nil, nil
		if cur == nil {
			return nil, nil
		}
		for _, v := range cur.versions() {
			if s, ok := sha512HexOfIntegrity(str(distOf(obj(v))["integrity"])); ok {
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
