package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/internal/protocol"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/storage"
)

// Manifest media types the registry accepts.
const (
	MediaTypeOCIManifest  = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex     = ocispec.MediaTypeImageIndex
	MediaTypeDockerV2     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerV2List = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func isIndex(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerV2List }

func knownManifestType(mt string) bool {
	switch mt {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerV2, MediaTypeDockerV2List:
		return true
	}
	return false
}

// manifestDoc is the union of the fields of image manifests and indexes that
// the registry checks.
type manifestDoc struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
}

// referrerArtifactType is the artifact type the referrers API reports.
func (m *manifestDoc) referrerArtifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if m.Config != nil && !isIndex(m.MediaType) {
		return m.Config.MediaType
	}
	return ""
}

// reference is a manifest reference: a tag or a digest.
type reference struct {
	tag    string
	digest digest.Digest
}

func parseReference(ref string) (reference, error) {
	if strings.Contains(ref, ":") {
		d, err := ParseDigest(ref)
		if err != nil {
			return reference{}, newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest %q: %v", truncate(ref), err)
		}
		return reference{digest: d}, nil
	}
	if !ValidTag(ref) {
		return reference{}, newError(http.StatusBadRequest, CodeManifestInvalid, "invalid tag %q", truncate(ref))
	}
	return reference{tag: ref}, nil
}

// resolve finds the digest a reference names in a repository.
func (h *Handler) resolve(q *request, name string, ref reference) (digest.Digest, error) {
	if ref.digest != "" {
		return ref.digest, nil
	}
	b, err := h.reads.read(q.R.Context(), tagKey(name, ref.tag))
	if errors.Is(err, storage.ErrNotFound) {
		return "", newError(http.StatusNotFound, CodeManifestUnknown, "tag %s unknown in repository %s", ref.tag, name)
	}
	if err != nil {
		return "", err
	}
	d, err := ParseDigest(string(bytes.TrimSpace(b)))
	if err != nil {
		return "", fmt.Errorf("tag %s of %s holds a bad digest: %w", ref.tag, name, err)
	}
	return d, nil
}

// revisionMediaType returns the media type of a manifest in a repository, or
// MANIFEST_UNKNOWN.
func (h *Handler) revisionMediaType(q *request, name string, d digest.Digest) (string, error) {
	b, err := h.reads.readImmutable(q.R.Context(), revisionKey(name, d))
	if errors.Is(err, storage.ErrNotFound) {
		return "", newError(http.StatusNotFound, CodeManifestUnknown, "manifest %s unknown in repository %s", d, name)
	}
	return string(b), err
}

func (h *Handler) getManifest(q *request) error {
	name := q.route.name
	if err := q.Require(name, auth.ActionPull); err != nil {
		return err
	}
	ref, err := parseReference(q.route.ref)
	if err != nil {
		return err
	}
	if q.cache != nil {
		if err := h.fillManifest(q, q.cache, name, ref); err != nil {
			return err
		}
	}
	d, err := h.resolve(q, name, ref)
	if err != nil {
		return err
	}
	mt, err := h.revisionMediaType(q, name, d)
	if err != nil {
		return err
	}
	if q.cache != nil {
		h.touchCached(q.R.Context(), "manifests/"+name+"/"+string(d.Algorithm())+"/"+d.Encoded())
	}
	body, err := h.reads.readImmutable(q.R.Context(), blobKey(d))
	if errors.Is(err, storage.ErrNotFound) {
		// The collector may hold it while it verifies (gc.go).
		body, _, err = storage.ReadAll(q.R.Context(), h.store, quarantineKey(d))
		if errors.Is(err, storage.ErrNotFound) { // moved back between the two looks
			body, err = h.reads.readImmutable(q.R.Context(), blobKey(d))
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return newError(http.StatusNotFound, CodeManifestUnknown, "manifest %s unknown", d)
	}
	if err != nil {
		return err
	}
	hd := q.W.Header()
	hd.Set("Content-Type", mt)
	hd.Set("Docker-Content-Digest", d.String())
	etag := `"` + d.String() + `"`
	hd.Set("ETag", etag)
	if protocol.ETagMatches(q.R.Header.Get("If-None-Match"), etag) {
		q.W.WriteHeader(http.StatusNotModified)
		return nil
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	q.W.WriteHeader(http.StatusOK)
	if q.R.Method != http.MethodHead {
		q.W.Write(body)
	}
	return nil
}

// readManifestBody reads at most MaxManifestSize bytes of the request body.
func (h *Handler) readManifestBody(q *request) ([]byte, error) {
	max := h.opts.MaxManifestSize
	if q.R.ContentLength > max {
		return nil, newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest of %d bytes exceeds the limit of %d", q.R.ContentLength, max)
	}
	body, err := io.ReadAll(io.LimitReader(q.R.Body, max+1))
	if err != nil {
		return nil, newError(http.StatusBadRequest, CodeManifestInvalid, "read manifest: %v", err)
	}
	if int64(len(body)) > max {
		return nil, newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "manifest exceeds the limit of %d bytes", max)
	}
	return body, nil
}

func (h *Handler) putManifest(q *request) error {
	name := q.route.name
	if err := q.Require(name, auth.ActionPush); err != nil {
		return err
	}
	ref, err := parseReference(q.route.ref)
	if err != nil {
		return err
	}
	tags, err := tagParams(q, ref)
	if err != nil {
		return err
	}
	body, err := h.readManifestBody(q)
	if err != nil {
		return err
	}
	doc, mediaType, err := parseManifest(q.R.Header.Get("Content-Type"), body)
	if err != nil {
		return err
	}
	alg := digest.Canonical
	if ref.digest != "" {
		alg = ref.digest.Algorithm()
	}
	d := alg.FromBytes(body)
	if ref.digest != "" && d != ref.digest {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "manifest digest is %s, not %s", d, ref.digest)
	}
	if err := h.checkReferencedBlobs(q, name, doc, mediaType); err != nil {
		return err
	}
	if err := h.storeManifest(q, name, d, mediaType, body, doc, tags); err != nil {
		return err
	}
	hd := q.W.Header()
	hd.Set("Location", h.opts.Prefix+"/"+name+"/manifests/"+d.String())
	hd.Set("Docker-Content-Digest", d.String())
	// OCI-Subject tells the client the referrers API indexed the manifest;
	// without it the client maintains the referrers fallback tag itself,
	// which is the only way referrers stay findable when the API is off.
	if doc.Subject != nil && !h.opts.DisableReferrers {
		hd.Set("OCI-Subject", doc.Subject.Digest.String())
	}
	if len(tags) > 0 {
		hd.Set("OCI-Tag", strings.Join(tags, ","))
	}
	hd.Set("Content-Length", "0")
	q.W.WriteHeader(http.StatusCreated)
	return nil
}

// tagParams returns the tags a PUT sets: the reference's tag and ?tag=.
func tagParams(q *request, ref reference) ([]string, error) {
	var tags []string
	if ref.tag != "" {
		tags = append(tags, ref.tag)
	}
	for _, t := range q.R.URL.Query()["tag"] {
		if !ValidTag(t) {
			return nil, newError(http.StatusBadRequest, CodeManifestInvalid, "invalid tag %q", truncate(t))
		}
		tags = append(tags, t)
	}
	return tags, nil
}

// parseManifest checks a manifest body and returns it with its media type.
func parseManifest(contentType string, body []byte) (*manifestDoc, string, error) {
	invalid := func(format string, args ...any) (*manifestDoc, string, error) {
		return nil, "", newError(http.StatusBadRequest, CodeManifestInvalid, format, args...)
	}
	if err := limit.JSONDepth(body, limit.DefaultJSONDepth); err != nil {
		return invalid("%v", err)
	}
	var doc manifestDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		return invalid("manifest is not valid JSON: %v", err)
	}
	if err := checkMemberNames(body); err != nil {
		return invalid("%v", err)
	}
	mediaType := doc.MediaType
	if contentType != "" {
		ct, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return invalid("invalid Content-Type %q", truncate(contentType))
		}
		if mediaType != "" && mediaType != ct {
			return invalid("Content-Type %s does not match the manifest's mediaType %s", ct, mediaType)
		}
		mediaType = ct
	}
	if !knownManifestType(mediaType) {
		return invalid("unsupported manifest media type %q", truncate(mediaType))
	}
	doc.MediaType = mediaType
	if doc.SchemaVersion != 2 {
		return invalid("schemaVersion must be 2")
	}
	if isIndex(mediaType) {
		if doc.Config != nil || doc.Layers != nil {
			return invalid("an index has no config or layers")
		}
		for i, m := range doc.Manifests {
			if err := checkDescriptor(m); err != nil {
				return invalid("manifests[%d]: %v", i, err)
			}
		}
	} else {
		if doc.Config == nil {
			return invalid("an image manifest needs a config")
		}
		if err := checkDescriptor(*doc.Config); err != nil {
			return invalid("config: %v", err)
		}
		for i, l := range doc.Layers {
			if err := checkDescriptor(l); err != nil {
				return invalid("layers[%d]: %v", i, err)
			}
		}
	}
	if doc.Subject != nil {
		if err := checkDescriptor(*doc.Subject); err != nil {
			return invalid("subject: %v", err)
		}
	}
	return &doc, mediaType, nil
}

// The members the registry reads of a manifest and of a descriptor.
var (
	manifestMembers   = []string{"schemaVersion", "mediaType", "artifactType", "config", "layers", "manifests", "subject", "annotations"}
	descriptorMembers = []string{"mediaType", "digest", "size", "urls", "annotations", "data", "platform", "artifactType"}
)

// checkMemberNames refuses a manifest that readers could see differently:
// encoding/json matches member names case-insensitively and keeps the last
// of duplicates, where other clients match exactly or keep the first, so
// "Config" or a second "mediaType" would make the registry validate one
// manifest while a client pulls another.
func checkMemberNames(body []byte) error {
	if err := checkObjectMembers(body, manifestMembers); err != nil {
		return err
	}
	var descs struct {
		Config    json.RawMessage   `json:"config"`
		Layers    []json.RawMessage `json:"layers"`
		Manifests []json.RawMessage `json:"manifests"`
		Subject   json.RawMessage   `json:"subject"`
	}
	if err := json.Unmarshal(body, &descs); err != nil {
		return err
	}
	for _, d := range append(append(descs.Layers, descs.Manifests...), descs.Config, descs.Subject) {
		if err := checkObjectMembers(d, descriptorMembers); err != nil {
			return err
		}
	}
	return nil
}

// checkObjectMembers checks the member names of a JSON object (or null)
// against the names the registry reads.
func checkObjectMembers(obj json.RawMessage, names []string) error {
	if len(obj) == 0 || string(obj) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // the opening brace
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		for _, n := range names {
			if key == n && seen[n] {
				return fmt.Errorf("member %q appears twice", n)
			}
			if key != n && strings.EqualFold(key, n) {
				return fmt.Errorf("member %q differs from %q only in case", truncate(key), n)
			}
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

func checkDescriptor(d ocispec.Descriptor) error {
	if _, err := ParseDigest(d.Digest.String()); err != nil {
		return fmt.Errorf("digest %q: %v", truncate(d.Digest.String()), err)
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size")
	}
	if d.MediaType == "" {
		return fmt.Errorf("empty mediaType")
	}
	return nil
}

// checkReferencedBlobs requires the config and layers of an image manifest
// to exist in the repository (layers may be missing with AllowSparse).
// Indexes may be sparse (their children need not be here), and a subject may
// arrive after its referrers, as the spec allows.
func (h *Handler) checkReferencedBlobs(q *request, name string, doc *manifestDoc, mediaType string) error {
	for _, desc := range h.requiredBlobs(doc, mediaType) {
		ok, err := h.blobInRepo(q, name, desc.Digest)
		if err != nil {
			return err
		}
		if !ok {
			e := newError(http.StatusBadRequest, CodeManifestBlobUnknown, "blob %s is not in repository %s", desc.Digest, name)
			e.Detail = map[string]string{"digest": desc.Digest.String()}
			return e
		}
	}
	return nil
}

// requiredBlobs are the blobs an image manifest needs in its repository:
// its config and (unless AllowSparse) its layers, foreign layers (which
// live elsewhere by definition) aside. Indexes may be sparse, and a
// subject may arrive after its referrers, as the spec allows.
func (h *Handler) requiredBlobs(doc *manifestDoc, mediaType string) []ocispec.Descriptor {
	if isIndex(mediaType) {
		return nil
	}
	refs := []ocispec.Descriptor{*doc.Config}
	if !h.opts.AllowSparse {
		refs = append(refs, doc.Layers...)
	}
	return slices.DeleteFunc(refs, func(d ocispec.Descriptor) bool { return len(d.URLs) > 0 })
}

// storeManifest writes content, referrer entry, revision link and tags, in
// that order: each step only makes visible what the previous ones completed.
func (h *Handler) storeManifest(q *request, name string, d digest.Digest, mediaType string, body []byte, doc *manifestDoc, tags []string) error {
	ctx := q.R.Context()
	if _, err := h.store.Stat(ctx, blobKey(d)); errors.Is(err, storage.ErrNotFound) {
		if _, err := h.store.Put(ctx, blobKey(d), bytes.NewReader(body), storage.Condition{}); err != nil {
			return fmt.Errorf("store manifest %s: %w", d, err)
		}
	} else if err != nil {
		return err
	}
	epoch, err := h.collectorEpoch(ctx, name)
	if err != nil {
		return err
	}
	if err := h.noteRepository(ctx, name); err != nil {
		return err
	}
	_, revErr := h.store.Stat(ctx, revisionKey(name, d))
	newRevision := errors.Is(revErr, storage.ErrNotFound)
	if doc.Subject != nil {
		desc := ocispec.Descriptor{
			MediaType: mediaType, Digest: d, Size: int64(len(body)),
			ArtifactType: doc.referrerArtifactType(), Annotations: doc.Annotations,
		}
		b, _ := json.Marshal(desc)
		if _, err := h.store.Put(ctx, referrerKey(name, doc.Subject.Digest, d), bytes.NewReader(b), storage.Condition{}); err != nil {
			return fmt.Errorf("record referrer %s: %w", d, err)
		}
	}
	if _, err := h.store.Put(ctx, revisionKey(name, d), strings.NewReader(mediaType), storage.Condition{}); err != nil {
		return fmt.Errorf("link manifest %s: %w", d, err)
	}
	h.reads.drop(revisionKey(name, d)) // its media type may have changed
	// Linked: now the blobs must still be there. A collector that swept
	// one after the check above is seen here, before anything is
	// acknowledged (gc.go).
	confirm := func() error {
		var required []ocispec.Descriptor
		if q.cache == nil { // a cached manifest's blobs come when pulled
			required = h.requiredBlobs(doc, mediaType)
		}
		err := h.confirmBlobs(ctx, name, d, body, required)
		if err != nil && newRevision {
			h.unlinkFailedPush(ctx, name, d, doc)
		}
		return err
	}
	if err := confirm(); err != nil {
		return err
	}
	h.emit(q, Event{Action: "manifest.pushed", Repository: name, Digest: d.String(), MediaType: mediaType})
	for _, t := range tags {
		if err := h.moveTag(q, name, t, d, mediaType); err != nil {
			return err
		}
	}
	return h.outlastCollector(ctx, name, epoch, d, mediaType, tags, confirm)
}

func (h *Handler) deleteManifest(q *request) error {
	if h.opts.DisableDelete {
		return newError(http.StatusMethodNotAllowed, CodeUnsupported, "deletion is disabled")
	}
	name := q.route.name
	if err := q.Require(name, auth.ActionDelete); err != nil {
		return err
	}
	ref, err := parseReference(q.route.ref)
	if err != nil {
		return err
	}
	ctx := q.R.Context()
	if ref.tag != "" {
		if err := h.deleteTag(q, name, ref.tag); err != nil {
			return err
		}
		q.W.WriteHeader(http.StatusAccepted)
		return nil
	}
	d := ref.digest
	if _, err := h.revisionMediaType(q, name, d); err != nil {
		return err
	}
	if err := h.untagDigest(q, name, d); err != nil {
		return err
	}
	err = h.store.Delete(ctx, revisionKey(name, d))
	h.reads.drop(revisionKey(name, d)) // a read racing the delete may still cache it, for at most the recheck interval
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := h.dropReferrer(q, name, d); err != nil {
		return err
	}
	h.emit(q, Event{Action: "manifest.deleted", Repository: name, Digest: d.String()})
	q.W.WriteHeader(http.StatusAccepted)
	return nil
}

// dropReferrer removes the referrer entry of a deleted manifest.
func (h *Handler) dropReferrer(q *request, name string, d digest.Digest) error {
	ctx := q.R.Context()
	b, _, err := storage.ReadAll(ctx, h.store, blobKey(d))
	if err != nil {
		return nil // content gone: nothing to learn the subject from
	}
	var doc manifestDoc
	if json.Unmarshal(b, &doc) != nil || doc.Subject == nil {
		return nil
	}
	err = h.store.Delete(ctx, referrerKey(name, doc.Subject.Digest, d))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}
