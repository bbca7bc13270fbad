package oci

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage"
)

// uploadState is the persisted state of an upload session. It lives in
// storage, next to the data, so a session survives restarts and can be
// continued by any replica. HashState is the marshalled state of the running
// hash, so finishing never re-reads the data.
type uploadState struct {
	Repository string    `json:"repository"`
	Algorithm  string    `json:"algorithm"`
	Offset     int64     `json:"offset"`
	HashState  []byte    `json:"hashState"`
	StartedAt  time.Time `json:"startedAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// session is an upload session loaded for one request.
type session struct {
	id      string
	state   uploadState
	version string // storage version of the state object, for compare-and-swap
}

var uploadIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func newUploadID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (h *Handler) uploadLocation(name, id string) string {
	return h.opts.Prefix + "/" + name + "/blobs/uploads/" + id
}

// startUpload handles POST /v2/<name>/blobs/uploads/: a cross-repository
// mount, a monolithic upload with ?digest=, or the start of a session.
func (h *Handler) startUpload(q *request) error {
	name := q.route.name
	if err := q.Require(name, auth.ActionPush); err != nil {
		return err
	}
	query := q.R.URL.Query()
	if mount := query.Get("mount"); mount != "" {
		d, err := ParseDigest(mount)
		if err != nil {
			return newError(http.StatusBadRequest, CodeDigestInvalid, "invalid mount digest: %v", err)
		}
		mounted, err := h.mount(q, name, d, query.Get("from"))
		if err != nil || mounted {
			return err
		}
	}
	algorithm := digest.Canonical
	if a := query.Get("digest-algorithm"); a != "" {
		algorithm = digest.Algorithm(a)
		if err := checkAlgorithm(algorithm); err != nil {
			return newError(http.StatusBadRequest, CodeDigestInvalid, "%v", err)
		}
	}
	var want digest.Digest
	if dg := query.Get("digest"); dg != "" {
		d, err := ParseDigest(dg)
		if err != nil {
			return newError(http.StatusBadRequest, CodeDigestInvalid, "invalid digest: %v", err)
		}
		want, algorithm = d, d.Algorithm()
	}
	if want != "" {
		return h.putWhole(q, nil, want)
	}
	s, err := h.createSession(q.R.Context(), name, algorithm)
	if err != nil {
		return err
	}
	h.writeUploadHeaders(q, s)
	q.W.WriteHeader(http.StatusAccepted)
	return nil
}

// mount links a blob from another repository. Without from, it looks for the
// blob in repositories the caller may pull, so a digest alone never opens
// another tenant's content. It reports false when the client should get a
// normal upload session instead.
func (h *Handler) mount(q *request, name string, d digest.Digest, from string) (bool, error) {
	ctx := q.R.Context()
	var found bool
	if from != "" {
		if !ValidName(from) {
			return false, newError(http.StatusBadRequest, CodeNameInvalid, "invalid from repository %q", truncate(from))
		}
		from, _ = h.cachedName(from, "") // docker.io/nginx is docker.io/library/nginx
		if !q.Allowed(from, auth.ActionPull) {
			if q.Caller.Anonymous || (q.Caller.Issued() && !q.Caller.AskedFor(from)) {
				// Let the token flow ask for the source too, as Distribution does.
				return false, h.challenge(&q.Call, []string{
					auth.DockerScope{Type: auth.TypeRepository, Name: name, Actions: []string{auth.ActionPull, auth.ActionPush}}.String(),
					auth.DockerScope{Type: auth.TypeRepository, Name: from, Actions: []string{auth.ActionPull}}.String(),
				}, "insufficient_scope")
			}
			return false, nil
		}
		ok, err := h.blobInRepo(q, from, d)
		if err != nil {
			return false, err
		}
		found = ok
	} else {
		ok, err := h.mountSource(q, name, d)
		if err != nil {
			return false, err
		}
		found = ok
	}
	if !found {
		return false, nil
	}
	// A mount counts as an upload for the collector: the ref first, then
	// the content must still be there (or come back from quarantine).
	if err := h.touchRef(ctx, d); err != nil {
		return false, err
	}
	if ok, err := h.ensureBlob(ctx, d); err != nil || !ok {
		return false, err // swept: the client uploads it instead
	}
	if err := h.noteRepository(ctx, name); err != nil {
		return false, err
	}
	if _, err := h.store.Put(ctx, layerLinkKey(name, d), bytes.NewReader(nil), storage.Condition{}); err != nil {
		return false, fmt.Errorf("link mounted blob: %w", err)
	}
	h.emit(q, Event{Action: "blob.mounted", Repository: name, Digest: d.String()})
	q.W.Header().Set("Location", h.opts.Prefix+"/"+name+"/blobs/"+d.String())
	q.W.Header().Set("Docker-Content-Digest", d.String())
	q.W.WriteHeader(http.StatusCreated)
	return true, nil
}

// A mount without from looks for a source among the repositories the
// caller may pull, and the look is bounded, so that a POST costs the same
// in a registry of ten repositories and of a hundred thousand: the blob
// must exist at all (one Stat: a digest nobody pushed costs nothing more),
// then at most mountSourceMarkers catalog markers are read, in key order,
// and at most mountSourceChecks of the caller's repositories are looked
// into. A blob beyond them, or a store whose catalog index is not whole
// yet, gets a normal upload session: the client pushes it (the spec lets a
// registry answer any mount so), or names its source with from.
const (
	mountSourceMarkers = 10 * catalogBatch
	mountSourceChecks  = 100
)

// mountSource reports whether a repository other than name that the caller
// may pull (or mount from) links d, within the bounds above.
func (h *Handler) mountSource(q *request, name string, d digest.Digest) (bool, error) {
	ctx := q.R.Context()
	if _, err := h.store.Stat(ctx, blobKey(d)); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if indexed, err := h.catalogIndexed(ctx); err != nil || !indexed {
		return false, err
	}
	after, read, checks := "", 0, 0
	for read < mountSourceMarkers && checks < mountSourceChecks {
		keys, err := storage.Page(ctx, h.store, catalogMarkersKey, after, catalogBatch)
		if err != nil {
			return false, fmt.Errorf("mount: %w", err)
		}
		read += len(keys)
		for _, key := range keys {
			repo, ok := markerName(key)
			if !ok || repo == name || !(q.Allowed(repo, auth.ActionPull) || q.Caller.MayMountFrom(repo)) {
				continue
			}
			if checks++; checks > mountSourceChecks {
				return false, nil
			}
			if ok, err := h.blobInRepo(q, repo, d); err != nil || ok {
				return ok, err
			}
		}
		if len(keys) < catalogBatch {
			break
		}
		after = keys[len(keys)-1]
	}
	return false, nil
}

func (h *Handler) createSession(ctx context.Context, name string, algorithm digest.Algorithm) (*session, error) {
	hs, err := algorithm.Hash().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	s := &session{id: newUploadID(), state: uploadState{
		Repository: name, Algorithm: string(algorithm), HashState: hs, StartedAt: now, UpdatedAt: now,
	}}
	if _, err := h.store.Put(ctx, uploadDataKey(s.id), bytes.NewReader(nil), storage.Condition{IfNoneMatch: true}); err != nil {
		return nil, fmt.Errorf("create upload data: %w", err)
	}
	if err := h.saveSession(ctx, s, storage.Condition{IfNoneMatch: true}); err != nil {
		return nil, err
	}
	return s, nil
}

func (h *Handler) saveSession(ctx context.Context, s *session, cond storage.Condition) error {
	b, err := json.Marshal(s.state)
	if err != nil {
		return err
	}
	info, err := h.store.Put(ctx, uploadStateKey(s.id), bytes.NewReader(b), cond)
	if errors.Is(err, storage.ErrPreconditionFailed) {
		return newError(http.StatusConflict, CodeBlobUploadInvalid, "upload %s was changed concurrently", s.id)
	}
	if err != nil {
		return fmt.Errorf("save upload state: %w", err)
	}
	s.version = info.Version
	return nil
}

// loadSession checks that the caller may push to the route's repository,
// then reads the session of the route, checking it belongs to that
// repository.
func (h *Handler) loadSession(q *request) (*session, error) {
	if err := q.Require(q.route.name, auth.ActionPush); err != nil {
		return nil, err
	}
	id := q.route.ref
	unknown := newError(http.StatusNotFound, CodeBlobUploadUnknown, "upload %s unknown", truncate(id))
	if !uploadIDRE.MatchString(id) {
		return nil, unknown
	}
	b, info, err := storage.ReadAll(q.R.Context(), h.store, uploadStateKey(id))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, unknown
	}
	if err != nil {
		return nil, err
	}
	s := &session{id: id, version: info.Version}
	if err := json.Unmarshal(b, &s.state); err != nil {
		return nil, fmt.Errorf("decode upload state %s: %w", id, err)
	}
	if s.state.Repository != q.route.name {
		return nil, unknown
	}
	return s, nil
}

func (s *session) hasher() (hash.Hash, error) {
	hh := digest.Algorithm(s.state.Algorithm).Hash()
	if err := hh.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.state.HashState); err != nil {
		return nil, fmt.Errorf("restore hash state: %w", err)
	}
	return hh, nil
}

// appendReader streams body onto the session's data, hashing it on the way,
// and records the new offset and hash state; want is the length the request
// declared, negative for none.
func (h *Handler) appendReader(q *request, s *session, body io.Reader, want int64) error {
	ctx := q.R.Context()
	hh, err := s.hasher()
	if err != nil {
		return err
	}
	declared := want
	if declared < 0 {
		declared = q.R.ContentLength
	}
	if h.exceedsMaxBlobSize(s.state.Offset, declared) {
		return h.endTooLarge(ctx, s, s.state.Offset+declared)
	}
	if want >= 0 {
		body = io.LimitReader(body, want+1)
	}
	var limited *blobSizeReader
	if h.opts.MaxBlobSize > 0 {
		limited = &blobSizeReader{r: body, left: h.opts.MaxBlobSize - s.state.Offset}
		body = limited
	}
	done, err := h.uploads.Acquire(&q.Call)
	if err != nil {
		return err
	}
	n, err := h.store.Append(ctx, uploadDataKey(s.id), s.state.Offset, io.TeeReader(body, hh))
	done()
	// Asked of the reader rather than of err: a backend need not keep the
	// reader's error in its chain.
	if limited != nil && limited.crossed() {
		return h.endTooLarge(ctx, s, -1)
	}
	if err != nil {
		return fmt.Errorf("append upload %s: %w", s.id, err)
	}
	if want >= 0 && n != want {
		return newError(http.StatusBadRequest, CodeSizeInvalid, "chunk has %d bytes, Content-Range/Content-Length declared %d", n, want)
	}
	hs, err := hh.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	s.state.Offset += n
	s.state.HashState = hs
	s.state.UpdatedAt = time.Now().UTC()
	return h.saveSession(ctx, s, storage.Condition{IfMatch: s.version})
}

// exceedsMaxBlobSize reports whether an upload that holds offset bytes and
// declares n more (negative: undeclared) would exceed MaxBlobSize.
func (h *Handler) exceedsMaxBlobSize(offset, n int64) bool {
	return h.opts.MaxBlobSize > 0 && n > 0 && n > h.opts.MaxBlobSize-offset
}

// blobTooLarge is the refusal of a blob above MaxBlobSize; size is its
// length, negative when the body declared none.
func (h *Handler) blobTooLarge(size int64) error {
	if size < 0 {
		return newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "the blob exceeds the registry's limit of %d bytes", h.opts.MaxBlobSize)
	}
	return newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid, "a blob of %d bytes exceeds the registry's limit of %d bytes", size, h.opts.MaxBlobSize)
}

// endTooLarge ends an upload that would exceed MaxBlobSize: the blob can
// never be accepted, so the session and its data go at once rather than
// waiting for the purger.
func (h *Handler) endTooLarge(ctx context.Context, s *session, size int64) error {
	if err := h.store.DeleteAll(ctx, uploadDirKey(s.id)); err != nil {
		return fmt.Errorf("remove upload %s above the blob size limit: %w", s.id, err)
	}
	return h.blobTooLarge(size)
}

// errBlobTooLarge fails the reads of a body that crosses MaxBlobSize, so
// that storage keeps nothing of it.
var errBlobTooLarge = errors.New("blob exceeds the size limit")

// blobSizeReader passes at most left bytes of r, and fails with
// errBlobTooLarge as soon as r has more.
type blobSizeReader struct {
	r    io.Reader
	left int64
}

func (b *blobSizeReader) crossed() bool { return b.left < 0 }

func (b *blobSizeReader) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, errBlobTooLarge
	}
	// One byte past the limit is enough to know the body crosses it.
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.r.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return n + int(b.left), errBlobTooLarge
	}
	return n, err
}

// parseContentRange parses "start-end" (inclusive), with or without a
// "bytes " unit.
func parseContentRange(v string) (start, end int64, err error) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "bytes ")
	a, b, ok := strings.Cut(v, "-")
	if !ok {
		return 0, 0, fmt.Errorf("content range %q is not start-end", truncate(v))
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(strings.TrimSuffix(b, "/*"), 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, fmt.Errorf("content range %q is not start-end", truncate(v))
	}
	return start, end, nil
}

// maxChunk bounds a declared chunk length, keeping the arithmetic safe.
const maxChunk = 1 << 50

func (h *Handler) patchUpload(q *request) error {
	s, err := h.loadSession(q)
	if err != nil {
		return err
	}
	if err := h.appendChunk(q, s); err != nil {
		return err
	}
	h.writeUploadHeaders(q, s)
	q.W.WriteHeader(http.StatusAccepted)
	return nil
}

// appendChunk appends the request body, honouring a Content-Range: a chunk
// that does not start where the data ends gets 416 and the current Range.
func (h *Handler) appendChunk(q *request, s *session) error {
	cr := q.R.Header.Get("Content-Range")
	if cr == "" {
		want := int64(-1)
		if q.R.ContentLength >= 0 && q.R.Header.Get("Content-Length") != "" {
			want = q.R.ContentLength
		}
		return h.appendReader(q, s, q.R.Body, want)
	}
	start, end, err := parseContentRange(cr)
	if err != nil || end-start >= maxChunk {
		h.writeUploadHeaders(q, s)
		return newError(http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid, "invalid Content-Range")
	}
	if start != s.state.Offset {
		h.writeUploadHeaders(q, s)
		return newError(http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid,
			"chunk starts at %d but the upload has %d bytes", start, s.state.Offset)
	}
	length := end - start + 1
	if q.R.ContentLength >= 0 && q.R.Header.Get("Content-Length") != "" && q.R.ContentLength != length {
		return newError(http.StatusBadRequest, CodeSizeInvalid, "Content-Length %d does not match Content-Range %s", q.R.ContentLength, truncate(cr))
	}
	return h.appendReader(q, s, q.R.Body, length)
}

func (h *Handler) writeUploadHeaders(q *request, s *session) {
	hd := q.W.Header()
	hd.Set("Location", h.uploadLocation(q.route.name, s.id))
	hd.Set("Docker-Upload-UUID", s.id)
	last := s.state.Offset - 1
	if last < 0 {
		last = 0
	}
	hd.Set("Range", "0-"+strconv.FormatInt(last, 10))
	hd.Set("Content-Length", "0")
}

func (h *Handler) finishUpload(q *request) error {
	s, err := h.loadSession(q)
	if err != nil {
		return err
	}
	d, err := ParseDigest(q.R.URL.Query().Get("digest"))
	if err != nil {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "missing or invalid ?digest=: %v", err)
	}
	if q.R.ContentLength != 0 && s.state.Offset == 0 && q.R.Header.Get("Content-Range") == "" {
		return h.putWhole(q, s, d) // the whole blob in this request
	}
	if q.R.ContentLength != 0 {
		if err := h.appendChunk(q, s); err != nil {
			return err
		}
	}
	return h.commit(q, s, d)
}

// putWhole stores the body of a monolithic upload (POST with ?digest=, or
// the PUT of a session that has no data yet) straight under its blob key,
// not through the session's data: hashed as it streams, its reader fails
// at the end when the digest is not the one declared, and every driver's
// Put stores nothing when its reader fails. So a mismatch leaves no trace,
// and on S3 the blob is one multipart upload, completed only once the
// digest matched, instead of an upload copied into the blob afterwards. s
// is the session the PUT ends, nil for a POST.
func (h *Handler) putWhole(q *request, s *session, want digest.Digest) error {
	ctx := q.R.Context()
	if err := checkAlgorithm(want.Algorithm()); err != nil {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "%v", err)
	}
	if h.exceedsMaxBlobSize(0, q.R.ContentLength) {
		return h.blobTooLarge(q.R.ContentLength)
	}
	var body io.Reader = q.R.Body
	var limited *blobSizeReader
	if h.opts.MaxBlobSize > 0 {
		limited = &blobSizeReader{r: body, left: h.opts.MaxBlobSize}
		body = limited
	}
	verified := &digestReader{r: body, hash: want.Algorithm().Hash(), want: want}
	done, err := h.uploads.Acquire(&q.Call)
	if err != nil {
		return err
	}
	// The ref first, then the look for existing content, as in commit.
	err = h.touchRef(ctx, want)
	if err == nil {
		var exists bool
		if exists, err = h.ensureBlob(ctx, want); err == nil && exists {
			_, err = io.Copy(io.Discard, verified) // the content is there: check the body only
		} else if err == nil {
			_, err = h.store.Put(ctx, blobKey(want), verified, storage.Condition{})
		}
	}
	done()
	// Asked of the readers rather than of err, as in appendReader.
	if limited != nil && limited.crossed() {
		if s != nil {
			return h.endTooLarge(ctx, s, -1)
		}
		return h.blobTooLarge(-1)
	}
	if verified.got != "" {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "digest mismatch: uploaded content is %s, not %s", verified.got, want)
	}
	if err != nil {
		return fmt.Errorf("store blob %s: %w", want, err)
	}
	return h.linkPushed(q, s, want)
}

// linkPushed links a pushed blob whose content is in place into the
// repository, removes the session it came through (nil: none), and answers
// 201.
func (h *Handler) linkPushed(q *request, s *session, want digest.Digest) error {
	ctx := q.R.Context()
	if err := h.noteRepository(ctx, q.route.name); err != nil {
		return err
	}
	if _, err := h.store.Put(ctx, layerLinkKey(q.route.name, want), bytes.NewReader(nil), storage.Condition{}); err != nil {
		return fmt.Errorf("link blob %s: %w", want, err)
	}
	if s != nil {
		if err := h.store.DeleteAll(ctx, uploadDirKey(s.id)); err != nil {
			h.opts.Logger.Warn("remove finished upload", "upload", s.id, "error", err)
		}
	}
	h.emit(q, Event{Action: "blob.pushed", Repository: q.route.name, Digest: want.String()})
	hd := q.W.Header()
	hd.Set("Location", h.opts.Prefix+"/"+q.route.name+"/blobs/"+want.String())
	hd.Set("Docker-Content-Digest", want.String())
	hd.Set("Content-Length", "0")
	q.W.WriteHeader(http.StatusCreated)
	return nil
}

// errDigestMismatch fails the last read of a body whose digest is not the
// declared one, so that storage keeps nothing of it.
var errDigestMismatch = errors.New("the content does not match its digest")

// digestReader hashes r as it is read and, at its end, returns
// errDigestMismatch instead of io.EOF when the digest is not want (got
// then holds the content's digest).
type digestReader struct {
	r    io.Reader
	hash hash.Hash
	want digest.Digest
	got  digest.Digest
}

func (d *digestReader) Read(p []byte) (int, error) {
	if d.got != "" {
		return 0, errDigestMismatch
	}
	n, err := d.r.Read(p)
	d.hash.Write(p[:n])
	if err == io.EOF {
		if got := digest.NewDigest(d.want.Algorithm(), d.hash); got != d.want {
			d.got = got
			return n, errDigestMismatch
		}
	}
	return n, err
}

// commit checks the digest of the session's data and moves it into the blob
// store, then links it into the repository. Until the link exists the blob is
// invisible, so a crash at any point leaves no partial blob in sight.
func (h *Handler) commit(q *request, s *session, want digest.Digest) error {
	ctx := q.R.Context()
	got, err := h.sessionDigest(ctx, s, want.Algorithm())
	if err != nil {
		return err
	}
	if got != want {
		return newError(http.StatusBadRequest, CodeDigestInvalid, "digest mismatch: uploaded content is %s, not %s", got, want)
	}
	// The ref first, then the look for existing content: the collector's
	// verification of a blob it is sweeping then either sees this upload
	// or has already taken the content away, which this upload puts back
	// (gc.go).
	if err := h.touchRef(ctx, want); err != nil {
		return err
	}
	if ok, err := h.ensureBlob(ctx, want); err != nil {
		return err
	} else if !ok {
		if err := h.store.Move(ctx, uploadDataKey(s.id), blobKey(want)); err != nil {
			return fmt.Errorf("commit blob %s: %w", want, err)
		}
	}
	return h.linkPushed(q, s, want)
}

// sessionDigest returns the digest of the uploaded data. With the session's
// own algorithm that is the saved hash state; another algorithm (a client
// that asks for sha512 only when it finishes) costs one re-read.
func (h *Handler) sessionDigest(ctx context.Context, s *session, alg digest.Algorithm) (digest.Digest, error) {
	if err := checkAlgorithm(alg); err != nil {
		return "", newError(http.StatusBadRequest, CodeDigestInvalid, "%v", err)
	}
	if string(alg) == s.state.Algorithm {
		hh, err := s.hasher()
		if err != nil {
			return "", err
		}
		return digest.NewDigest(alg, hh), nil
	}
	obj, err := h.store.Open(ctx, uploadDataKey(s.id))
	if err != nil {
		return "", err
	}
	defer obj.Close()
	dg, err := alg.FromReader(io.LimitReader(obj, s.state.Offset))
	if err != nil {
		return "", fmt.Errorf("hash upload %s: %w", s.id, err)
	}
	return dg, nil
}

func (h *Handler) uploadStatus(q *request) error {
	s, err := h.loadSession(q)
	if err != nil {
		return err
	}
	h.writeUploadHeaders(q, s)
	q.W.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) cancelUpload(q *request) error {
	s, err := h.loadSession(q)
	if err != nil {
		return err
	}
	if err := h.store.DeleteAll(q.R.Context(), uploadDirKey(s.id)); err != nil {
		return fmt.Errorf("cancel upload %s: %w", s.id, err)
	}
	q.W.Header().Set("Content-Length", "0")
	q.W.WriteHeader(http.StatusNoContent)
	return nil
}

// PurgeUploads removes upload sessions untouched for longer than the
// configured UploadMaxAge. It returns how many it removed.
func (h *Handler) PurgeUploads(ctx context.Context) (int, error) {
	abandoned, err := h.abandonedUploads(ctx, time.Now().Add(-h.opts.UploadMaxAge))
	removed := 0
	for _, u := range abandoned {
		if err := h.store.DeleteAll(ctx, uploadDirKey(u.id)); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, err
}

// abandonedUpload is an upload session untouched since a cutoff.
type abandonedUpload struct {
	id    string
	bytes int64 // of its data
}

// abandonedUploads lists the sessions whose data and state were last
// written before cutoff (the upload purger and the collector share it).
// A session with neither part yet is being created this instant (its data
// is still a temporary file) and is never listed.
func (h *Handler) abandonedUploads(ctx context.Context, cutoff time.Time) ([]abandonedUpload, error) {
	ids, err := h.store.List(ctx, uploadsKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []abandonedUpload
	for _, id := range ids {
		state, serr := h.store.Stat(ctx, uploadStateKey(id))
		data, derr := h.store.Stat(ctx, uploadDataKey(id))
		for _, err := range []error{serr, derr} {
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return out, err
			}
		}
		if serr != nil && derr != nil {
			continue
		}
		if state.ModTime.After(cutoff) || data.ModTime.After(cutoff) {
			continue
		}
		out = append(out, abandonedUpload{id: id, bytes: data.Size})
	}
	return out, nil
}

// RunUploadPurger calls PurgeUploads every interval until ctx ends.
func (h *Handler) RunUploadPurger(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := h.PurgeUploads(ctx); err != nil {
				h.opts.Logger.Warn("purge abandoned uploads", "error", err)
			} else if n > 0 {
				h.opts.Logger.Info("purged abandoned uploads", "count", n)
			}
		}
	}
}
