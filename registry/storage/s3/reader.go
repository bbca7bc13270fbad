package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/minio/minio-go/v7"

	"github.com/unireg/unireg/registry/storage"
)

// reader is an open object: a whole object, or an appended key's parts in
// order. Seeking only moves the position; the next Read reopens the part
// that holds it, with a ranged GET conditional on the ETag the part had when
// the object was opened, so a reader never mixes two contents: it fails
// instead.
type reader struct {
	ctx   context.Context
	d     *Driver
	info  storage.Info
	parts []part
	pos   int64

	body    io.ReadCloser // an open GET, streaming from bodyPos to bodyEnd
	bodyPos int64
	bodyEnd int64
}

var _ storage.Object = (*reader)(nil)

// Info implements storage.Object: the object as it was opened.
func (r *reader) Info() storage.Info { return r.info }

// Read implements io.Reader.
func (r *reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.pos >= r.info.Size {
			return 0, io.EOF
		}
		if r.body != nil && r.bodyPos != r.pos {
			r.closeBody()
		}
		if r.body == nil {
			if err := r.open(); err != nil {
				return 0, err
			}
		}
		if rest := r.bodyEnd - r.pos; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := r.body.Read(p)
		r.pos += int64(n)
		r.bodyPos = r.pos
		switch {
		case r.pos == r.bodyEnd:
			r.closeBody()
			err = nil
		case err == io.EOF:
			r.closeBody()
			err = fmt.Errorf("read %s: %w", r.info.Key, errShortPart)
		case err != nil:
			r.closeBody()
			err = fmt.Errorf("read %s: %w", r.info.Key, err)
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

// open starts a GET of the part holding pos.
func (r *reader) open() error {
	i := sort.Search(len(r.parts), func(i int) bool { return r.parts[i].end() > r.pos })
	p := r.parts[i]
	var opts minio.GetObjectOptions
	if p.etag != "" {
		_ = opts.SetMatchETag(p.etag)
	}
	if off := r.pos - p.start; off > 0 {
		_ = opts.SetRange(off, 0)
	}
	body, _, _, err := r.d.core.GetObject(r.ctx, r.d.bucket, p.name, opts)
	if err != nil {
		mapped := r.d.mapErr(err)
		if errors.Is(mapped, storage.ErrNotFound) || errors.Is(mapped, storage.ErrPreconditionFailed) {
			return fmt.Errorf("read %s: replaced since it was opened: %w", r.info.Key, err)
		}
		return fmt.Errorf("read %s: %w", r.info.Key, mapped)
	}
	r.body, r.bodyPos, r.bodyEnd = body, r.pos, p.end()
	return nil
}

// Seek implements io.Seeker.
func (r *reader) Seek(offset int64, whence int) (int64, error) {
	pos := offset
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		pos += r.pos
	case io.SeekEnd:
		pos += r.info.Size
	default:
		return r.pos, fmt.Errorf("seek %s: invalid whence %d", r.info.Key, whence)
	}
	if pos < 0 {
		return r.pos, fmt.Errorf("seek %s: negative position %d", r.info.Key, pos)
	}
	r.pos = pos
	return pos, nil
}

// Close implements io.Closer.
func (r *reader) Close() error {
	r.closeBody()
	return nil
}

func (r *reader) closeBody() {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
}
