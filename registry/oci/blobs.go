package oci

import (
	"errors"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/storage"
)

// blobInRepo reports whether the repository links the blob.
func (h *Handler) blobInRepo(q *request, name string, d digest.Digest) (bool, error) {
	_, err := h.store.Stat(q.R.Context(), layerLinkKey(name, d))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (h *Handler) getBlob(q *request) error {
	name := q.route.name
	if err := q.Require(name, auth.ActionPull); err != nil {
		return err
	}
	d, err := ParseDigest(q.route.ref)
	if err != nil {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest %q: %v", truncate(q.route.ref), err)
	}
	ok, err := h.blobInRepo(q, name, d)
	if err != nil {
		return err
	}
	if !ok && q.cache != nil {
		// Fetched, or confirmed and linked (nil): then served as stored.
		if err := h.fillBlob(q, q.cache, name, d); err != nil {
			return err
		}
		ok = true
	}
	if !ok {
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob %s unknown to repository %s", d, name)
	}
	if q.cache != nil {
		h.touchCached(q.R.Context(), "blobs/"+string(d.Algorithm())+"/"+d.Encoded())
	} else if q.R.Method == http.MethodHead && q.Allowed(name, auth.ActionPush) {
		// A pusher that finds the blob here skips its upload and pushes a
		// manifest next: for the collector that is as good as an upload.
		// The ref first, then the content must be in place (taken back
		// from quarantine when the collector holds it), so the answer
		// "here" stays true until the manifest push.
		h.touchRefSoon(q.R.Context(), d)
		if _, err := h.ensureBlob(q.R.Context(), d); err != nil {
			return err
		}
	}
	if h.opts.RedirectBlobs && q.R.Method == http.MethodGet {
		if rd, ok := h.store.(storage.Redirector); ok {
			// As Distribution does: the client fetches the content from the
			// storage itself, with a short-lived presigned URL.
			u, err := rd.RedirectURL(q.R.Context(), blobKey(d), 20*time.Minute)
			if err != nil {
				return err
			}
			q.W.Header().Set("Docker-Content-Digest", d.String())
			http.Redirect(q.W, q.R, u, http.StatusTemporaryRedirect)
			return nil
		}
	}
	return q.ServeObject(h.store, protocol.Object{
		Key:      blobKey(d),
		Fallback: quarantineKey(d),
		Headers:  map[string]string{"Docker-Content-Digest": d.String(), "ETag": `"` + d.String() + `"`, "Cache-Control": "max-age=31536000"},
		NotFound: newError(http.StatusNotFound, CodeBlobUnknown, "blob %s unknown", d),
	})
}

func (h *Handler) deleteBlob(q *request) error {
	if h.opts.DisableDelete {
		return newError(http.StatusMethodNotAllowed, CodeUnsupported, "deletion is disabled")
	}
	name := q.route.name
	if err := q.Require(name, auth.ActionDelete); err != nil {
		return err
	}
	d, err := ParseDigest(q.route.ref)
	if err != nil {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest %q: %v", truncate(q.route.ref), err)
	}
	// Only the repository's link goes: the content stays for other
	// repositories and for the garbage collector to judge.
	err = h.store.Delete(q.R.Context(), layerLinkKey(name, d))
	if errors.Is(err, storage.ErrNotFound) {
		return newError(http.StatusNotFound, CodeBlobUnknown, "blob %s unknown to repository %s", d, name)
	}
	if err != nil {
		return err
	}
	h.emit(q, Event{Action: "blob.deleted", Repository: name, Digest: d.String()})
	q.W.WriteHeader(http.StatusAccepted)
	return nil
}
