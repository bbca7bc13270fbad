package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// baseBlock is the random content blobs are made of; each blob starts with
// its own 16-byte header, so every blob (and digest) is new.
var baseBlock = func() []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}()

// blobReader produces blob number id of size bytes without holding it.
type blobReader struct {
	header [16]byte
	size   int64
	pos    int64
}

func newBlob(id uint64, size int64) *blobReader {
	r := &blobReader{size: size}
	binary.BigEndian.PutUint64(r.header[:8], id)
	copy(r.header[8:], "unireg-l")
	return r
}

func (r *blobReader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	if rest := r.size - r.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n := 0
	for n < len(p) {
		var m int
		if r.pos < 16 {
			m = copy(p[n:], r.header[r.pos:])
		} else {
			off := (r.pos - 16) % int64(len(baseBlock))
			m = copy(p[n:], baseBlock[off:])
		}
		n += m
		r.pos += int64(m)
	}
	return n, nil
}

// WriteTo lets io.Copy hand the HTTP client whole blocks.
func (r *blobReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
	}
}

func blobDigest(id uint64, size int64) string {
	h := sha256.New()
	newBlob(id, size).WriteTo(h)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// blobIDs hands out blob numbers unique to this run.
var blobIDs = func() *atomic.Uint64 {
	var a atomic.Uint64
	a.Store(uint64(time.Now().UnixNano()))
	return &a
}()

const chunkSize = 16 << 20

// pushBlob uploads blob id: monolithic (POST, then one PUT with the body and
// the digest) or chunked (POST, PATCHes of 16 MiB hashed as they go, PUT).
func (e *env) pushBlob(ctx context.Context, repo string, id uint64, size int64, chunked bool, digest string) error {
	scope := ociScope(repo, true)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.c.url("/v2/"+repo+"/blobs/uploads/"), nil)
	resp, err := e.c.do(req, scope, nil)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusAccepted); err != nil {
		return err
	}
	drain(resp)
	loc, err := e.location(resp)
	if err != nil {
		return err
	}
	var h hash.Hash
	if chunked {
		h = sha256.New()
		blob := newBlob(id, size)
		for off := int64(0); off < size; off += chunkSize {
			n := min(chunkSize, size-off)
			body := io.TeeReader(io.LimitReader(blob, n), h)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPatch, loc.String(), body)
			req.ContentLength = n
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
			resp, err := e.c.do(req, scope, nil)
			if err != nil {
				return err
			}
			if err := expect(resp, http.StatusAccepted, http.StatusNoContent); err != nil {
				return err
			}
			drain(resp)
			if loc, err = e.location(resp); err != nil {
				return err
			}
		}
		digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	var body io.Reader = http.NoBody
	if !chunked {
		body = newBlob(id, size)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	if !chunked {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err = e.c.do(req, scope, nil)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return err
	}
	drain(resp)
	return nil
}

func (e *env) location(resp *http.Response) (*url.URL, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, fmt.Errorf("%s %s: no Location", resp.Request.Method, resp.Request.URL.Path)
	}
	return resp.Request.URL.Parse(loc)
}

// blobPush is a push scenario: a new blob of size per operation. The
// client computes a monolithic blob's digest before the upload; that is
// not part of the operation's time.
func blobPush(size int64, chunked bool) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		repo := "load/push"
		return func(ctx context.Context, _ int) (int64, time.Duration, error) {
			id := blobIDs.Add(1)
			digest := ""
			if !chunked {
				digest = blobDigest(id, size)
			}
			start := time.Now()
			err := e.pushBlob(ctx, repo, id, size, chunked, digest)
			return size, time.Since(start), err
		}, nil
	}
}

// blobPull pushes one blob of size, then GETs it, verifying its digest.
func blobPull(size int64) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		repo := "load/pull"
		id := blobIDs.Add(1)
		digest := blobDigest(id, size)
		if err := e.pushBlob(ctx, repo, id, size, false, digest); err != nil {
			return nil, err
		}
		return func(ctx context.Context, _ int) (int64, time.Duration, error) {
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.url("/v2/"+repo+"/blobs/"+digest), nil)
			resp, err := e.c.do(req, ociScope(repo, false), nil)
			if err != nil {
				return 0, 0, err
			}
			n, err := readVerified(resp, strings.TrimPrefix(digest, "sha256:"), size)
			return n, time.Since(start), err
		}, nil
	}
}

// readVerified reads a 200 response's whole body, hashing it as it comes,
// and checks its size and sha256 (lowercase hex). Both pull scenarios, the
// registry's and the bare server's, use it, so they do the same work.
func readVerified(resp *http.Response, wantHex string, size int64) (int64, error) {
	if err := expect(resp, http.StatusOK); err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 256<<10))
	if err != nil {
		return n, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantHex || n != size {
		return n, fmt.Errorf("pulled %d bytes with sha256 %s, want %d bytes %s", n, got, size, wantHex)
	}
	return n, nil
}

const manifestType = "application/vnd.oci.image.manifest.v1+json"

// image is a small image held in memory: a config and one 4 KiB layer
// (generated from its id) and the manifest that names them.
type image struct {
	layerID        uint64
	layerDigest    string
	config         []byte
	configDigest   string
	manifest       []byte
	manifestDigest string
}

// newImage makes a small image with a new layer.
func newImage() *image {
	img := &image{layerID: blobIDs.Add(1)}
	img.layerDigest = blobDigest(img.layerID, 4096)
	img.config = []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + img.layerDigest + `"]}}`)
	img.configDigest = fmt.Sprintf("sha256:%x", sha256.Sum256(img.config))
	img.manifest, _ = json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": manifestType,
		"config":      map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": img.configDigest, "size": len(img.config)},
		"layers":      []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": img.layerDigest, "size": 4096}},
		"annotations": map[string]string{"org.opencontainers.image.description": strings.Repeat("load test image ", 20)},
	})
	img.manifestDigest = fmt.Sprintf("sha256:%x", sha256.Sum256(img.manifest))
	return img
}

// pushBlobs uploads the image's layer and config into repo.
func (e *env) pushBlobs(ctx context.Context, repo string, img *image) error {
	if err := e.pushBlob(ctx, repo, img.layerID, 4096, false, img.layerDigest); err != nil {
		return err
	}
	return e.putBlob(ctx, repo, img.config, img.configDigest)
}

// putManifest uploads an image manifest under ref (a tag or its digest).
func (e *env) putManifest(ctx context.Context, repo, ref string, manifest []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, e.c.url("/v2/"+repo+"/manifests/"+ref), nil)
	req.Header.Set("Content-Type", manifestType)
	resp, err := e.c.do(req, ociScope(repo, true), func() io.Reader { return bytes.NewReader(manifest) })
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return err
	}
	drain(resp)
	return nil
}

// pushImage pushes a new small image (config and one 4 KiB layer) under
// tags and returns its manifest's digest.
func (e *env) pushImage(ctx context.Context, repo string, tags ...string) (string, error) {
	img := newImage()
	if err := e.pushBlobs(ctx, repo, img); err != nil {
		return "", err
	}
	for _, tag := range tags {
		if err := e.putManifest(ctx, repo, tag, img.manifest); err != nil {
			return "", err
		}
	}
	return img.manifestDigest, nil
}

// putBlob uploads a small in-memory blob monolithically.
func (e *env) putBlob(ctx context.Context, repo string, data []byte, digest string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.c.url("/v2/"+repo+"/blobs/uploads/?digest="+digest), nil)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := e.c.do(req, ociScope(repo, true), func() io.Reader { return bytes.NewReader(data) })
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusAccepted { // no monolithic POST: finish with a PUT
		drain(resp)
		loc, err := e.location(resp)
		if err != nil {
			return err
		}
		q := loc.Query()
		q.Set("digest", digest)
		loc.RawQuery = q.Encode()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), nil)
		req.Header.Set("Content-Type", "application/octet-stream")
		if resp, err = e.c.do(req, ociScope(repo, true), func() io.Reader { return bytes.NewReader(data) }); err != nil {
			return err
		}
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return err
	}
	drain(resp)
	return nil
}

// manifestGet pushes an image, then GETs its manifest by tag or by digest.
func manifestGet(byDigest bool) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		repo := "load/manifest"
		digest, err := e.pushImage(ctx, repo, "v1")
		if err != nil {
			return nil, err
		}
		ref := "v1"
		if byDigest {
			ref = digest
		}
		return e.getOp(repo, "/v2/"+repo+"/manifests/"+ref, manifestType)
	}
}

// tagList pushes one image under 100 tags, then lists them.
func tagList(ctx context.Context, e *env) (opFunc, error) {
	repo := "load/tags"
	tags := make([]string, 100)
	for i := range tags {
		tags[i] = fmt.Sprintf("v1.%d.0", i)
	}
	if _, err := e.pushImage(ctx, repo, tags...); err != nil {
		return nil, err
	}
	return e.getOp(repo, "/v2/"+repo+"/tags/list", "application/json")
}

// getOp is a GET of path whose whole body is read, with the JWT for repo
// (fetched once through the token flow).
func (e *env) getOp(repo, path, accept string) (opFunc, error) {
	return e.getOpScope(ociScope(repo, false), path, accept, nil)
}

// getOpScope is getOp with the token's scope given, and check run on each
// worker's first body.
func (e *env) getOpScope(scope, path, accept string, check func(body []byte, encoding string) error) (opFunc, error) {
	req, _ := http.NewRequest(http.MethodGet, e.c.url(path), nil)
	req.Header.Set("Accept", accept)
	resp, err := e.c.do(req, scope, nil)
	if err != nil {
		return nil, err
	}
	if err := expect(resp, http.StatusOK); err != nil {
		return nil, err
	}
	drain(resp)
	header := map[string]string{"Accept": accept}
	if tok := e.c.token(scope); tok != "" {
		header["Authorization"] = "Bearer " + tok
	}
	return rawGetOp(e.concurrency, e.c.url(path), header, check)
}
