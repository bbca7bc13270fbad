package oci

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage"
)

// serveReferrers answers GET /v2/<name>/referrers/<digest> with an image
// index of the manifests whose subject is that digest, optionally filtered by
// ?artifactType=.
func (h *Handler) serveReferrers(q *request) error {
	if h.opts.DisableReferrers {
		return newError(http.StatusNotFound, CodeUnsupported, "the referrers API is disabled")
	}
	name := q.route.name
	if err := q.Require(name, auth.ActionPull); err != nil {
		return err
	}
	subject, err := ParseDigest(q.route.ref)
	if err != nil {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest %q: %v", truncate(q.route.ref), err)
	}
	filter := q.R.URL.Query().Get("artifactType")
	ctx := q.R.Context()
	entries, err := h.store.List(ctx, referrersKey(name, subject))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	descs := []ocispec.Descriptor{}
	for _, e := range entries {
		b, _, err := storage.ReadAll(ctx, h.store, referrersKey(name, subject)+"/"+e)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var d ocispec.Descriptor
		if err := json.Unmarshal(b, &d); err != nil {
			continue
		}
		// The entry is written before the manifest's revision link: skip
		// entries whose push never completed or whose manifest was deleted.
		if _, err := h.store.Stat(ctx, revisionKey(name, d.Digest)); err != nil {
			continue
		}
		if filter != "" && d.ArtifactType != filter {
			continue
		}
		descs = append(descs, d)
	}
	if filter != "" {
		q.W.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	b, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: descs,
	})
	if err != nil {
		return err
	}
	q.W.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	q.W.WriteHeader(http.StatusOK)
	_, _ = q.W.Write(b)
	return nil
}
