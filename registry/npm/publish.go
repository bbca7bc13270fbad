package npm

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/storage"
)

// staged is a tarball received into a staging object, with its digests.
type staged struct {
	key    string
	size   int64
	sha512 []byte
	sha1   []byte
}

// putPackage handles PUT /:pkg and PUT /:pkg/-rev/:rev: a publish when the
// body carries an attachment, else a change of the document (deprecate,
// unpublish a version, owners, star).
//
// Nothing of the body is read before the caller is known to be allowed at
// least to read the package (a star needs no more), so an unauthorised body
// costs nothing, and the answer does not depend on whether the package
// exists. Write is then checked at the first member that needs it, while
// the body streams (putLimits), and delete once the document shows that
// versions go (changePackage).
func (h *Handler) putPackage(q *request) error {
	name := q.route.pkg
	if err := q.Require(name, auth.ActionRead); err != nil {
		return err
	}
	canWrite := q.Allowed(name, auth.ActionWrite)
	if !canWrite && q.Caller.Anonymous {
		// Without write a PUT can only be a star, which needs an identity.
		return q.Require(name, auth.ActionWrite)
	}
	var st *staged
	var stageErr error // storage trouble while receiving, not a bad body
	defer func() {
		if st != nil && st.key != "" {
			h.store.Delete(context.WithoutCancel(q.R.Context()), st.key)
		}
	}()
	release, err := h.uploads.Acquire(&q.Call)
	if err != nil {
		return err
	}
	defer release()
	meta, atts, err := splitPublishBody(q.R.Body, h.putLimits(q, canWrite), func(file string, data io.Reader) error {
		if st != nil {
			return newError(http.StatusBadRequest, "a publish carries exactly one attachment")
		}
		if err := q.Require(name, auth.ActionWrite); err != nil {
			return err
		}
		var err error
		st, err = h.stage(q.R.Context(), data)
		var e *Error
		if err != nil && !errors.As(err, &e) {
			stageErr = err
		}
		return err
	})
	if stageErr != nil {
		return stageErr
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		if errors.Is(err, limit.ErrBodyTooSlow) {
			return err
		}
		if errors.Is(err, errBodyTooLarge) {
			return newError(http.StatusRequestEntityTooLarge, "%v", err)
		}
		return newError(http.StatusBadRequest, "invalid request body: %v", err)
	}
	incoming, err := decodePackument(meta)
	if err != nil {
		return newError(http.StatusBadRequest, "invalid JSON document: %v", err)
	}
	if len(atts) == 0 {
		return h.changePackage(q, incoming)
	}
	if st == nil {
		return newError(http.StatusBadRequest, "attachment %s has no data", truncate(atts[0].Name))
	}
	return h.publish(q, incoming, atts[0], st)
}

// Bounds of a PUT body from a caller who may read the package but not write
// it: all it can send is a star, whose _id, _rev, name and own entry of
// users are a few hundred bytes.
const (
	starBodyBytes  = 64 << 10
	starBodyValues = 256
)

// attachmentOverhead is what a publish body holds besides its document and
// its tarball's base64: the _attachments member, the attachment's name and
// fields, and whitespace between members.
const attachmentOverhead = 64 << 10

// putLimits says what of a PUT body is kept, and refuses what the caller may
// not send, as soon as the member that says so arrives. A caller who may
// write keeps the whole document, within MaxDocumentSize and one JSON value
// per 16 bytes of it (`npm deprecate` of a realistic 3,000-version package
// sends 441,000, under half of that). A caller who may only read can only star: a
// member that would change the package is a 403 at once, and everything but
// _id, _rev, name and the caller's own entry of users is read past, never
// buffered. users is cut to the caller's entry for every caller: no change
// uses the rest. The body as a whole, what is read past included, is
// bounded too: by the document limit for a star (the `users` npm sends back
// holds every user's entry), plus one tarball for a caller who may write.
func (h *Handler) putLimits(q *request, canWrite bool) bodyLimits {
	lim := bodyLimits{maxBytes: h.opts.MaxDocumentSize, maxValues: h.opts.MaxDocumentSize / 16, ownEntry: q.Subject(),
		maxBody: int64(h.opts.MaxDocumentSize)}
	if canWrite {
		// The document, one tarball in base64, and room for the members
		// that carry it.
		lim.maxBody += (h.opts.MaxTarballSize+2)/3*4 + attachmentOverhead
		lim.member = func(key string) (memberRule, error) {
			switch key {
			case "users":
				return keepOwnEntry, nil
			case "_attachments":
				if h.opts.DisablePublish {
					return 0, newError(http.StatusMethodNotAllowed, "publishing is disabled on this registry")
				}
			}
			return keepMember, nil
		}
		return lim
	}
	lim.maxBytes, lim.maxValues = min(lim.maxBytes, starBodyBytes), starBodyValues
	lim.member = func(key string) (memberRule, error) {
		switch key {
		case "_id", "_rev", "name":
			return keepMember, nil
		case "users":
			return keepOwnEntry, nil
		case "versions", "_attachments", "dist-tags", "maintainers":
			return 0, q.Require(q.route.pkg, auth.ActionWrite)
		}
		return skipMember, nil
	}
	return lim
}

// stage streams a decoded tarball into a staging object, hashing it.
func (h *Handler) stage(ctx context.Context, data io.Reader) (*staged, error) {
	id := make([]byte, 16)
	rand.Read(id)
	st := &staged{key: "npm/staging/" + hex.EncodeToString(id)}
	s512, s1 := sha512.New(), sha1.New()
	limited := &io.LimitedReader{R: base64.NewDecoder(base64.StdEncoding, data), N: h.opts.MaxTarballSize + 1}
	info, err := h.store.Put(ctx, st.key, io.TeeReader(limited, io.MultiWriter(s512, s1)), storage.Condition{})
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, newError(http.StatusBadRequest, "attachment data is not valid base64")
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, newError(http.StatusBadRequest, "the request body ended inside the attachment")
		}
		if errors.Is(err, errBodyTooLarge) {
			return nil, newError(http.StatusRequestEntityTooLarge, "%v", err)
		}
		return nil, fmt.Errorf("stage tarball: %w", err)
	}
	if info.Size > h.opts.MaxTarballSize {
		h.store.Delete(ctx, st.key)
		return nil, newError(http.StatusRequestEntityTooLarge, "tarball exceeds %d bytes", h.opts.MaxTarballSize)
	}
	st.size, st.sha512, st.sha1 = info.Size, s512.Sum(nil), s1.Sum(nil)
	return st, nil
}

// publish checks a new version against its tarball, stores the tarball under
// its content digest and merges the version into the document. Nothing
// becomes visible unless all of it succeeds.
func (h *Handler) publish(q *request, incoming packument, att attachment, st *staged) error {
	name := q.route.pkg
	version, vm, err := checkPublish(name, incoming, att, st)
	if err != nil {
		return err
	}
	ctx := q.R.Context()
	if err := h.refuseNewCaseVariant(ctx, name); err != nil {
		return err
	}
	sum := hex.EncodeToString(st.sha512)
	final := tarballKey(name, sum)
	// A tarball stored already (a crashed publish's, being retried) may be
	// the collector's candidate right now. The marker, kept until after
	// the document's swap, protects it: a collector that lists staging
	// after the marker is written sees it, or the new document once it is
	// gone, and moves the tarball back; one that listed before had
	// quarantined it before the Move below, which re-creates it (gc.go).
	switch _, err := h.store.Stat(ctx, final); {
	case err == nil:
		marker := st.key + "-publishing"
		if _, err := h.store.Put(ctx, marker, strings.NewReader(""), storage.Condition{}); err != nil {
			return fmt.Errorf("mark the publish: %w", err)
		}
		// Deferred first, so it runs last: after the swap, and after the
		// cleanup of a publish that failed.
		defer h.store.Delete(context.WithoutCancel(ctx), marker)
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("stat tarball: %w", err)
	}
	if err := h.store.Move(ctx, st.key, final); err != nil {
		return fmt.Errorf("store tarball: %w", err)
	}
	st.key = final // from here on, the deferred cleanup must not delete blindly
	committed := false
	defer func() {
		if !committed {
			h.dropUnreferencedTarball(context.WithoutCancel(ctx), name, sum)
		}
		st.key = ""
	}()

	tags := map[string]string{}
	for t, v := range incoming.distTags() {
		if s := str(v); s == version {
			tags[t] = s // checkPublish checked the names
		}
	}
	if len(tags) == 0 {
		tags["latest"] = version
	}
	user := q.Subject()
	next, err := h.packages.update(ctx, name, func(cur *draft) (*draft, error) {
		return mergePublish(cur, incoming, name, version, vm, tags, user)
	})
	if err != nil {
		return err
	}
	committed = true
	h.emitPublished(q, name, version, tags)
	writeJSON(q.W, q.R, http.StatusCreated, map[string]any{"ok": true, "id": name, "rev": next.packument["_rev"]})
	return nil
}

// emitPublished reports a publish and the dist-tags it moved. The tag is in
// the published event, for audits that keep one line per publish, and gets
// its own dist-tag.set, like one set with `npm dist-tag add`: a consumer
// tracking where tags point needs no second rule for publishes (as OCI
// reports a push by tag with manifest.pushed and tag.moved).
func (h *Handler) emitPublished(q *request, name, version string, tags map[string]string) {
	names := slices.Sorted(maps.Keys(tags))
	h.emit(q, Event{Action: "package.published", Package: name, Version: version, Tag: strings.Join(names, ",")})
	for _, t := range names {
		h.emit(q, Event{Action: "dist-tag.set", Package: name, Tag: t, Version: version})
	}
}

// checkPublish validates the publish document against the received tarball.
func checkPublish(name string, incoming packument, att attachment, st *staged) (string, map[string]any, error) {
	bad := func(format string, args ...any) (string, map[string]any, error) {
		return "", nil, newError(http.StatusBadRequest, format, args...)
	}
	if n := incoming.name(); n != name {
		return bad("document name %q does not match the URL's package %q", n, name)
	}
	if id := str(incoming["_id"]); id != "" && id != name {
		return bad("document _id %q does not match the package %q", id, name)
	}
	versions := incoming.versions()
	if len(versions) != 1 {
		return bad("a publish carries exactly one version, got %d", len(versions))
	}
	var version string
	var vm map[string]any
	for v, m := range versions {
		version, vm = v, obj(m)
	}
	if !validVersion(version) {
		return bad("version %q is not a valid semantic version", version)
	}
	if vm == nil || str(vm["name"]) != name || str(vm["version"]) != version {
		return bad("versions[%q] must have name %q and version %q", version, name, version)
	}
	// npm names the attachment after the full name (@scope/name-1.0.0.tgz);
	// the tarball's file name drops the scope.
	if want := name + "-" + version + ".tgz"; att.Name != want && att.Name != tarballFileName(name, version) {
		return bad("attachment is named %q; for %s@%s it must be %q", att.Name, name, version, want)
	}
	if att.Length >= 0 && att.Length != st.size {
		return bad("attachment declares %d bytes but carries %d", att.Length, st.size)
	}
	dist := distOf(vm)
	if dist == nil {
		return bad("versions[%q].dist is missing", version)
	}
	integrity := str(dist["integrity"])
	want512 := "sha512-" + base64.StdEncoding.EncodeToString(st.sha512)
	if integrity == "" {
		return bad("versions[%q].dist.integrity (sha512) is missing", version)
	}
	if hexSum, ok := sha512HexOfIntegrity(integrity); !ok || hexSum != hex.EncodeToString(st.sha512) {
		return bad("integrity mismatch: the tarball is %s, dist.integrity says %s", want512, truncate(integrity))
	}
	// npm compares the base64 text, not the digest it decodes to: an
	// integrity with stray padding bits would be stored and never install.
	if !slices.Contains(strings.Fields(integrity), want512) {
		return bad("integrity mismatch: the tarball is %s, dist.integrity says %s (not canonical base64)", want512, truncate(integrity))
	}
	if shasum := str(dist["shasum"]); shasum != "" && shasum != hex.EncodeToString(st.sha1) {
		return bad("shasum mismatch: the tarball is %s, dist.shasum says %s", hex.EncodeToString(st.sha1), truncate(shasum))
	}
	// A tag refused here fails the publish: dropping it would publish the
	// version under latest instead, which the publisher did not ask for.
	for t := range incoming.distTags() {
		if err := checkTag(t); err != nil {
			return "", nil, err
		}
	}
	return version, vm, nil
}

// mergePublish adds a version to the current document (nil for a new
// package). It is called again on every compare-and-swap retry. The
// readme is kept once, at the top level, where the latest version's goes
// (as the public registry does): the versions carry none.
func mergePublish(cur *draft, incoming packument, name, version string, vm map[string]any, tags map[string]string, user string) (*draft, error) {
	ts := now()
	if cur == nil {
		cur = newDraft(packument{"_id": name, "name": name, "time": map[string]any{"created": ts}})
		if m, err := normalizeMaintainers(incoming["maintainers"]); err == nil {
			cur.packument["maintainers"] = m
		} else {
			cur.packument["maintainers"] = []any{map[string]any{"name": user, "email": ""}}
		}
	}
	if cur.version(version) != nil {
		return nil, errVersionUsed(version, false)
	}
	if _, ok := cur.times()[version]; ok {
		return nil, errVersionUsed(version, true)
	}
	stored := make(map[string]any, len(vm)+1)
	for k, v := range vm {
		stored[k] = v
	}
	delete(stored, "readme")
	delete(stored, "readmeFilename")
	stored["_id"] = name + "@" + version
	dist := map[string]any{}
	for k, v := range distOf(vm) {
		dist[k] = v
	}
	dist["tarball"] = name + "/-/" + tarballFileName(name, version)
	stored["dist"] = dist
	cur.add(version, stored)
	for t, v := range tags {
		cur.distTags()[t] = v
	}
	cur.fixDistTags()
	times := cur.times()
	times[version] = ts
	times["modified"] = ts
	// The package's description and readme follow its latest version.
	if str(cur.distTags()["latest"]) == version {
		for _, f := range []string{"description", "readme", "readmeFilename", "keywords", "license", "homepage", "repository", "bugs", "author"} {
			if v, ok := incoming[f]; ok {
				cur.packument[f] = v
			} else if v, ok := vm[f]; ok {
				cur.packument[f] = v
			}
		}
	}
	cur.packument["_rev"] = nextRev(str(cur.packument["_rev"]), []byte(version+ts))
	return cur, nil
}

// errVersionUsed refuses a publish of a version the package has or had: a
// name@version is never reused, since lockfiles pin its integrity. The
// public registry's words, which npm prints.
func errVersionUsed(version string, unpublished bool) error {
	if unpublished {
		return newError(http.StatusForbidden, "You cannot publish over the previously published versions: %s (it was unpublished; a version is never reused: publish a new one)", version)
	}
	return newError(http.StatusForbidden, "You cannot publish over the previously published versions: %s", version)
}

// dropUnreferencedTarball deletes a stored tarball unless the package's
// current document points at it (another publish of identical content).
func (h *Handler) dropUnreferencedTarball(ctx context.Context, name, sum string) {
	cur, _, err := h.packages.load(ctx, name)
	if err != nil {
		return
	}
	if cur != nil {
		for _, v := range cur.versions() {
			if s, ok := sha512HexOfIntegrity(str(distOf(obj(v))["integrity"])); ok && s == sum {
				return
			}
		}
	}
	h.store.Delete(ctx, tarballKey(name, sum))
}

// truncate shortens client input quoted in a message.
func truncate(s string) string { return protocol.Truncate(s, 100) }
