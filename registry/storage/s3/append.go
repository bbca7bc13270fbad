package s3

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/unireg/unireg/registry/storage"
)

// offsetDigits is the width of a part's name: its offset, zero-padded so
// that names sort as offsets do.
const offsetDigits = 20

// part is an object holding the bytes [start, start+size) of a key.
type part struct {
	name        string
	start, size int64
	etag        string
	// prefix means size is only the first bytes of the object: a copy
	// takes that range.
	prefix bool
}

func (p part) end() int64 { return p.start + p.size }

func (p part) source(bucket string) minio.CopySrcOptions {
	src := minio.CopySrcOptions{Bucket: bucket, Object: p.name, MatchETag: p.etag}
	if p.prefix {
		src.MatchRange, src.Start, src.End = true, 0, p.size-1
	}
	return src
}

func names(parts []part) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.name
	}
	return out
}

// contiguous splits parts (sorted) into the run that starts at 0 without a
// gap, which is the object's content, and the rest, left by an interrupted
// removal and never read.
func contiguous(parts []part) (chain, rest []part) {
	var end int64
	for i, p := range parts {
		if p.start != end {
			return parts[:i], parts[i:]
		}
		end = p.end()
	}
	return parts, nil
}

func (d *Driver) partName(key string, start int64) string {
	return d.partsDir(key) + fmt.Sprintf("%0*d", offsetDigits, start)
}

// listParts returns the part objects of key, sorted by offset.
func (d *Driver) listParts(ctx context.Context, key string) ([]part, error) {
	dir := d.partsDir(key)
	var parts []part
	for oi := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: dir}) {
		if oi.Err != nil {
			return nil, d.mapErr(oi.Err)
		}
		base := strings.TrimPrefix(oi.Key, dir)
		start, err := strconv.ParseInt(base, 10, 64)
		if len(base) != offsetDigits || err != nil || start < 0 {
			continue // a "directory" of the parts of keys below key
		}
		parts = append(parts, part{name: oi.Key, start: start, size: oi.Size, etag: oi.ETag})
	}
	slices.SortFunc(parts, func(a, b part) int { return cmp.Compare(a.start, b.start) })
	return parts, nil
}

// state is what a key holds: a whole object, or the parts Append wrote.
type state struct {
	info  storage.Info
	whole *minio.ObjectInfo // nil for an appended key
	parts []part            // an appended key's part objects, gaps and all
}

// state returns what key holds, or ErrNotFound. A whole object costs one
// HEAD; an appended key a HEAD, a LIST and a HEAD of its last part.
func (d *Driver) state(ctx context.Context, key string) (state, error) {
	oi, err := d.client.StatObject(ctx, d.bucket, d.object(key), minio.StatObjectOptions{})
	if err == nil {
		return state{info: infoOf(key, oi), whole: &oi}, nil
	}
	if err = d.mapErr(err); !errors.Is(err, storage.ErrNotFound) {
		return state{}, fmt.Errorf("stat %s: %w", key, err)
	}
	info, _, parts, err := d.appended(ctx, key)
	if err != nil {
		return state{}, err
	}
	return state{info: info, parts: parts}, nil
}

// appended describes a key made of parts: its Info, the parts that make its
// content, and every part object under it.
func (d *Driver) appended(ctx context.Context, key string) (storage.Info, []part, []part, error) {
	for attempt := 1; ; attempt++ {
		parts, err := d.listParts(ctx, key)
		if err != nil {
			return storage.Info{}, nil, nil, fmt.Errorf("stat %s: %w", key, err)
		}
		chain, _ := contiguous(parts)
		if len(chain) == 0 {
			return storage.Info{}, nil, nil, fmt.Errorf("%s: %w", key, storage.ErrNotFound)
		}
		// The last part is rewritten by every Append, so its ETag and nonce
		// are the key's version.
		last := chain[len(chain)-1]
		oi, err := d.client.StatObject(ctx, d.bucket, last.name, minio.StatObjectOptions{})
		if err == nil && oi.ETag == last.etag {
			info := storage.Info{Key: key, Size: last.end(), ModTime: oi.LastModified, Version: versionOf(oi)}
			return info, chain, parts, nil
		}
		if err != nil && !errors.Is(d.mapErr(err), storage.ErrNotFound) {
			return storage.Info{}, nil, nil, fmt.Errorf("stat %s: %w", key, err)
		}
		if attempt == 3 { // an Append replaced the last part after each listing
			return storage.Info{}, nil, nil, fmt.Errorf("stat %s: parts changed while read", key)
		}
	}
}

// Append implements storage.Driver with part objects; see the package
// documentation.
func (d *Driver) Append(ctx context.Context, key string, offset int64, r io.Reader) (int64, error) {
	if err := storage.ValidateKey(key); err != nil {
		return 0, err
	}
	if offset < 0 {
		return 0, fmt.Errorf("append %s at %d: %w", key, offset, storage.ErrInvalidOffset)
	}
	oi, err := d.client.StatObject(ctx, d.bucket, d.object(key), minio.StatObjectOptions{})
	whole := err == nil
	if err != nil {
		if err = d.mapErr(err); !errors.Is(err, storage.ErrNotFound) {
			return 0, fmt.Errorf("append %s: %w", key, err)
		}
	}
	parts, err := d.listParts(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("append %s: %w", key, err)
	}
	// A whole object wins over parts, which are then stale: it becomes
	// part 0, and every part object goes.
	chain, _ := contiguous(parts)
	if whole {
		chain = []part{{name: d.object(key), size: oi.Size, etag: oi.ETag}}
	}
	var size int64
	if len(chain) > 0 {
		size = chain[len(chain)-1].end()
	}
	if offset > size {
		return 0, fmt.Errorf("append %s at %d, size %d: %w", key, offset, size, storage.ErrInvalidOffset)
	}
	var drop []string
	for _, p := range parts {
		if whole || p.start >= offset {
			drop = append(drop, p.name)
		}
	}
	if err := d.remove(ctx, drop); err != nil {
		return 0, fmt.Errorf("append %s: discard bytes past %d: %w", key, offset, d.mapErr(err))
	}
	var last *part // the part the new bytes continue
	for i := range chain {
		if chain[i].start < offset && offset <= chain[i].end() {
			last = &chain[i]
		}
	}
	n, err := d.appendAfter(ctx, key, last, whole, offset, r)
	if err != nil {
		return 0, fmt.Errorf("append %s at %d: %w", key, offset, d.mapErr(err))
	}
	if whole {
		if err := d.client.RemoveObject(ctx, d.bucket, d.object(key), minio.RemoveObjectOptions{}); err != nil {
			return 0, fmt.Errorf("append %s: replace the whole object by its parts: %w", key, d.mapErr(err))
		}
	}
	return n, nil
}

// appendAfter writes r at offset, after the first offset-last.start bytes of
// last (nil when offset is 0), and returns the bytes it took from r.
func (d *Driver) appendAfter(ctx context.Context, key string, last *part, whole bool, offset int64, r io.Reader) (int64, error) {
	cr := &countingReader{r: r}
	if last == nil {
		_, err := d.write(ctx, d.partName(key, 0), cr, minio.PutObjectOptions{})
		return cr.n, err
	}
	keep := offset - last.start
	if keep < minPartSize {
		// Too small to stay a part of its own: rewrite it with the new
		// bytes, streaming its kept bytes from the store.
		opts := minio.GetObjectOptions{}
		_ = opts.SetMatchETag(last.etag)
		_ = opts.SetRange(0, keep-1)
		body, _, _, err := d.core.GetObject(ctx, d.bucket, last.name, opts)
		if err != nil {
			return 0, err
		}
		defer body.Close()
		_, err = d.write(ctx, d.partName(key, last.start), io.MultiReader(&exactReader{r: body, left: keep}, cr), minio.PutObjectOptions{})
		return cr.n, err
	}
	if whole || last.end() > offset {
		// Cut it at offset (or copy the whole object into part 0).
		cut := *last
		cut.size, cut.prefix = keep, keep < last.size
		if err := d.copy(ctx, d.partName(key, last.start), []part{cut}); err != nil {
			return 0, err
		}
	}
	_, err := d.write(ctx, d.partName(key, offset), cr, minio.PutObjectOptions{})
	return cr.n, err
}

// copy writes the concatenation of srcs to dst with a fresh nonce, server
// side when S3 allows it.
func (d *Driver) copy(ctx context.Context, dst string, srcs []part) error {
	var nonEmpty []part // S3 cannot copy an empty range
	for _, p := range srcs {
		if p.size > 0 {
			nonEmpty = append(nonEmpty, p)
		}
	}
	dstOpts := minio.CopyDestOptions{
		Bucket:          d.bucket,
		Object:          dst,
		UserMetadata:    map[string]string{metaWrite: rand.Text()},
		ReplaceMetadata: true,
	}
	switch {
	case len(nonEmpty) == 0:
		_, err := d.write(ctx, dst, bytes.NewReader(nil), minio.PutObjectOptions{})
		return err
	case len(nonEmpty) == 1 && !nonEmpty[0].prefix && nonEmpty[0].size <= maxCopySize:
		_, err := d.client.CopyObject(ctx, dstOpts, nonEmpty[0].source(d.bucket))
		return err
	case composable(nonEmpty):
		sources := make([]minio.CopySrcOptions, len(nonEmpty))
		for i, p := range nonEmpty {
			sources[i] = p.source(d.bucket)
		}
		_, err := d.client.ComposeObject(ctx, dstOpts, sources...)
		return err
	}
	// Parts S3 cannot compose (too many, or too small: not written by this
	// driver) stream through.
	size := srcs[len(srcs)-1].end()
	rd := &reader{ctx: ctx, d: d, info: storage.Info{Key: dst, Size: size}, parts: srcs}
	defer rd.Close()
	_, err := d.write(ctx, dst, rd, minio.PutObjectOptions{})
	return err
}

// composable reports whether S3 can compose parts: every one but the last
// must be at least 5 MiB.
func composable(parts []part) bool {
	if len(parts) > maxParts {
		return false
	}
	for _, p := range parts[:len(parts)-1] {
		if p.size < minPartSize {
			return false
		}
	}
	return true
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errShortPart means a part ended before the bytes it was listed with.
var errShortPart = errors.New("stored part is shorter than listed")

// exactReader yields exactly left bytes of r, failing if r ends first.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		return n, nil
	case err == io.EOF:
		return n, errShortPart
	}
	return n, err
}
