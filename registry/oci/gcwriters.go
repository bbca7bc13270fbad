package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unireg/unireg/registry/storage"
)

// What writers do so that the garbage collector (gc.go) never takes what
// they rely on. Storage has no conditional delete, so the collector never
// deletes a blob in place: it moves it to quarantine, then verifies that
// nobody took a reference meanwhile. Writers announce themselves first and
// look second, so one of the two always sees the other
// (docs/storage-layout.md, "How the garbage collector stays safe").

// touchRef records an upload, link or mount of the blob now. Callers touch
// it before they look for the blob's content.
func (h *Handler) touchRef(ctx context.Context, d digest.Digest) error {
	if _, err := h.store.Put(ctx, blobRefKey(d), bytes.NewReader(nil), storage.Condition{}); err != nil {
		return fmt.Errorf("record reference to blob %s: %w", d, err)
	}
	return nil
}

// touchRefSoon renews the blob's ref unless this process did within a
// quarter of the collector's grace: for the HEAD of a pusher that will
// rely on the blob without uploading it. Best effort, like a pulled record.
func (h *Handler) touchRefSoon(ctx context.Context, d digest.Digest) {
	h.refs.Touch(ctx, blobRefKey(d))
}

// ensureBlob reports whether the blob's content exists, moving it back
// from the collector's quarantine when it is there.
func (h *Handler) ensureBlob(ctx context.Context, d digest.Digest) (bool, error) {
	_, err := h.store.Stat(ctx, blobKey(d))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	switch err := h.store.Move(ctx, quarantineKey(d), blobKey(d)); {
	case err == nil:
		return true, nil
	case !errors.Is(err, storage.ErrNotFound):
		return false, err
	}
	// Not in quarantine either, unless someone else just moved it back.
	_, err = h.store.Stat(ctx, blobKey(d))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// confirmBlobs checks, after a manifest's revision link is written, that
// its content and required blobs still exist: the content is written
// again when missing (the push holds it), a blob is taken back from
// quarantine. A blob that is gone fails the push with MANIFEST_BLOB_UNKNOWN.
func (h *Handler) confirmBlobs(ctx context.Context, name string, d digest.Digest, body []byte, required []ocispec.Descriptor) error {
	if ok, err := h.ensureBlob(ctx, d); err != nil {
		return err
	} else if !ok {
		if _, err := h.store.Put(ctx, blobKey(d), bytes.NewReader(body), storage.Condition{}); err != nil {
			return fmt.Errorf("store manifest %s: %w", d, err)
		}
	}
	for _, desc := range required {
		ok, err := h.ensureBlob(ctx, desc.Digest)
		if err != nil {
			return err
		}
		if !ok {
			e := newError(http.StatusBadRequest, CodeManifestBlobUnknown, "blob %s is not in repository %s (it was garbage collected; push it again)", desc.Digest, name)
			e.Detail = map[string]string{"digest": desc.Digest.String()}
			return e
		}
	}
	return nil
}

// unlinkFailedPush removes what a push that failed confirmBlobs made
// visible: its new revision link and referrer entry.
func (h *Handler) unlinkFailedPush(ctx context.Context, name string, d digest.Digest, doc *manifestDoc) {
	ctx = context.WithoutCancel(ctx)
	_ = h.store.Delete(ctx, revisionKey(name, d))
	h.reads.drop(revisionKey(name, d))
	if doc.Subject != nil {
		_ = h.store.Delete(ctx, referrerKey(name, doc.Subject.Digest, d))
	}
}

// collectorWait bounds how long a push waits for the collector to finish
// deleting in its repository.
const collectorWait = 30 * time.Second

// The collector's marker of a repository (deletingKey) says "deleting"
// while the collector deletes tags or manifests there and "idle" after;
// it is rewritten, never removed, so its version changes with every
// deletion phase.
const (
	markerDeleting = "deleting"
	markerIdle     = "idle"
)

// collectorEpoch is the version of the repository's collector marker ("" when
// there is none): a push reads it before it writes and again after.
func (h *Handler) collectorEpoch(ctx context.Context, name string) (string, error) {
	info, err := h.store.Stat(ctx, deletingKey(name))
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return info.Version, err
}

// outlastCollector makes a push win over a deletion phase of the collector
// that overlapped it (the marker's version changed since before): the
// collector may have decided, before the push, to delete the revision or a
// tag the push has just written. The push waits until the phase is over,
// then writes its revision link and tags again and confirms its blobs
// again. A phase entirely before the push deleted nothing it wrote; one
// entirely after it sees the push's writes (their times and contents
// changed) and keeps them.
func (h *Handler) outlastCollector(ctx context.Context, name string, before string, d digest.Digest, mediaType string, tags []string, confirm func() error) error {
	now, err := h.collectorEpoch(ctx, name)
	if err != nil {
		return err
	}
	if now == before {
		return nil
	}
	deadline := time.Now().Add(collectorWait)
	for time.Now().Before(deadline) {
		b, _, err := storage.ReadAll(ctx, h.store, deletingKey(name))
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if !strings.HasPrefix(string(b), markerDeleting) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, err := h.store.Put(ctx, revisionKey(name, d), strings.NewReader(mediaType), storage.Condition{}); err != nil {
		return fmt.Errorf("link manifest %s: %w", d, err)
	}
	h.reads.drop(revisionKey(name, d))
	if err := confirm(); err != nil {
		return err
	}
	for _, t := range tags {
		if _, err := h.store.Put(ctx, tagKey(name, t), strings.NewReader(d.String()), storage.Condition{}); err != nil {
			return fmt.Errorf("tag %s: %w", t, err)
		}
		h.reads.drop(tagKey(name, t))
	}
	return nil
}
