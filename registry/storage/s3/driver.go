package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/unireg/unireg/registry/storage"
)

const (
	defaultRegion   = "us-east-1"
	defaultPartSize = 8 << 20
	// minPartSize is the S3 minimum for every part of a multipart upload or
	// a composition but the last.
	minPartSize = 5 << 20
	// maxCopySize is the largest object one CopyObject request may copy.
	maxCopySize = 5 << 30
	// maxParts is the S3 maximum number of parts of one object.
	maxParts = 10000
	// maxConditionalPut bounds the body of a conditional Put, which is
	// buffered: conditional writes carry small documents.
	maxConditionalPut = 16 << 20

	// appendsDir holds the parts of appended objects; callers cannot name
	// a segment starting with a dot.
	appendsDir = ".appends"
	// metaWrite is the user metadata (X-Amz-Meta-Unireg-Write) holding the
	// random nonce that makes every write's Version unique.
	metaWrite = "Unireg-Write"
)

// ErrBucketMissing means the configured bucket does not exist.
var ErrBucketMissing = errors.New("no such bucket")

// Options configures a Driver.
type Options struct {
	// Endpoint is the URL of the S3 API, http:// or https:// and a host,
	// e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000.
	Endpoint string
	// Bucket holds every object.
	Bucket string
	// Region is the bucket's region: us-east-1 when empty.
	Region string
	// Prefix, when set, is prepended to every key: with "registry", key k
	// is the object "registry/k", so several stores can share a bucket.
	Prefix string
	// AccessKey, SecretKey and SessionToken sign the requests; without
	// AccessKey and SecretKey requests are anonymous.
	AccessKey, SecretKey, SessionToken string
	// VirtualHost addresses the bucket as BUCKET.host instead of host/BUCKET.
	VirtualHost bool
	// InsecureSkipVerify accepts any TLS certificate (test setups only).
	InsecureSkipVerify bool
	// PartSize is the part size of multipart uploads, and the buffer each
	// streaming write holds: 8 MiB when 0, at least 5 MiB. S3 allows 10,000
	// parts, so 8 MiB parts carry objects up to 80 GB.
	PartSize uint64
	// CreateBucket makes New (or, with Lazy, Ping) create the bucket when
	// it is missing.
	CreateBucket bool
	// Lazy makes New skip the bucket check: a server can then start while
	// the endpoint is down, and report the problem through Ping (its
	// readiness) until the bucket answers.
	Lazy bool
}

// Driver stores objects in an S3 bucket. See the package documentation for
// the layout.
type Driver struct {
	client   *minio.Client
	core     minio.Core
	bucket   string
	prefix   string // "" or "p/" ready to prepend
	endpoint string // scheme://host, for messages: never credentials
	region   string
	partSize int
	create   bool      // create the bucket when Ping finds it missing
	buffers  sync.Pool // *[]byte of partSize, for streaming writes
	// readAhead holds a token for each multipart write that has a second
	// buffer, to read its next part while the last one uploads.
	readAhead chan struct{}
}

// readAheadWrites is how many part buffers, beyond the one each write has,
// multipart writes hold at once (at the default part size, 64 MiB in all);
// partsInFlight is the most parts one write uploads at once: three push as
// fast as four on MinIO, and each part buffer costs about twice its size in
// resident memory with the collector's headroom (docs/performance.md, "S3").
// A write that finds the budget spent sends its parts one after the other,
// reading none meanwhile.
const (
	readAheadWrites = 8
	partsInFlight   = 3
)

var _ storage.Driver = (*Driver)(nil)

// New returns a Driver on opts.Bucket. It checks that the bucket exists,
// creating it when opts.CreateBucket is set, so a misconfiguration shows at
// startup.
func New(ctx context.Context, opts Options) (*Driver, error) {
	d, err := newDriver(opts)
	if err != nil || opts.Lazy {
		return d, err
	}
	err = d.checkBucket(ctx)
	if errors.Is(err, ErrBucketMissing) {
		if !opts.CreateBucket {
			return nil, fmt.Errorf("%w (set CreateBucket to create it)", err)
		}
		err = d.createBucket(ctx)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

func newDriver(opts Options) (*Driver, error) {
	u, err := url.Parse(opts.Endpoint)
	if err != nil { // the message would quote the URL, which may hold a secret
		return nil, errors.New("s3: endpoint is not a valid URL")
	}
	if u.User != nil {
		return nil, errors.New("s3: endpoint URL must not hold credentials: use AccessKey and SecretKey")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("s3: endpoint %s://%s%s: want http:// or https:// and a host, without a path", u.Scheme, u.Host, u.Path)
	}
	if opts.Bucket == "" {
		return nil, errors.New("s3: no bucket configured")
	}
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix != "" {
		if err := storage.ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 prefix: %w", err)
		}
		prefix += "/"
	}
	partSize := opts.PartSize
	if partSize == 0 {
		partSize = defaultPartSize
	}
	if partSize < minPartSize || partSize > maxCopySize {
		return nil, fmt.Errorf("s3: part size %d outside [5 MiB, 5 GiB]", partSize)
	}
	region := opts.Region
	if region == "" {
		region = defaultRegion
	}
	secure := u.Scheme == "https"
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("s3 transport: %w", err)
	}
	if secure && opts.InsecureSkipVerify {
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	lookup := minio.BucketLookupPath
	if opts.VirtualHost {
		lookup = minio.BucketLookupDNS
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, opts.SessionToken),
		Secure:       secure,
		Transport:    tr,
		Region:       region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s://%s: %w", u.Scheme, u.Host, err)
	}
	d := &Driver{
		client:   client,
		core:     minio.Core{Client: client},
		bucket:   opts.Bucket,
		prefix:   prefix,
		endpoint: u.Scheme + "://" + u.Host,
		region:   region,
		partSize: int(partSize),
		create:   opts.CreateBucket,
	}
	d.buffers.New = func() any { b := make([]byte, d.partSize); return &b }
	d.readAhead = make(chan struct{}, readAheadWrites)
	return d, nil
}

func (d *Driver) checkBucket(ctx context.Context) error {
	ok, err := d.client.BucketExists(ctx, d.bucket)
	if err != nil {
		return fmt.Errorf("s3 bucket %q at %s: %w", d.bucket, d.endpoint, err)
	}
	if !ok {
		return d.errBucketMissing()
	}
	return nil
}

func (d *Driver) createBucket(ctx context.Context) error {
	err := d.client.MakeBucket(ctx, d.bucket, minio.MakeBucketOptions{Region: d.region})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		return d.checkBucket(ctx) // created concurrently, or someone else's
	}
	if err != nil {
		return fmt.Errorf("create s3 bucket %q at %s: %w", d.bucket, d.endpoint, err)
	}
	return nil
}

func (d *Driver) errBucketMissing() error {
	return fmt.Errorf("s3 bucket %q at %s: %w", d.bucket, d.endpoint, ErrBucketMissing)
}

// Ping implements storage.Driver: the bucket must exist and answer. With
// CreateBucket, a missing bucket is created.
func (d *Driver) Ping(ctx context.Context) error {
	err := d.checkBucket(ctx)
	if errors.Is(err, ErrBucketMissing) && d.create {
		err = d.createBucket(ctx)
	}
	return err
}

// object returns the name of key's object (or of an internal name).
func (d *Driver) object(key string) string { return d.prefix + key }

// dir returns the name prefix of the objects under prefix ("" is the root).
func (d *Driver) dir(prefix string) string {
	if prefix == "" {
		return d.prefix
	}
	return d.object(prefix) + "/"
}

// partsDir returns the name prefix of the parts of key, and of every key
// below it ("" is the root).
func (d *Driver) partsDir(key string) string {
	if key == "" {
		return d.object(appendsDir) + "/"
	}
	return d.object(appendsDir+"/"+key) + "/"
}

func versionOf(oi minio.ObjectInfo) string {
	nonce := oi.UserMetadata[metaWrite]
	for k, v := range oi.UserMetadata { // servers differ in the case they keep
		if nonce == "" && strings.EqualFold(k, metaWrite) {
			nonce = v
		}
	}
	return oi.ETag + ":" + nonce
}

func infoOf(key string, oi minio.ObjectInfo) storage.Info {
	return storage.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified, Version: versionOf(oi)}
}

// mapErr turns an S3 error into the storage errors callers test, keeping
// any other error (and its chain, for IsUnavailable) as it is. Callers add
// the key.
func (d *Driver) mapErr(err error) error {
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return err
	}
	switch {
	case er.Code == "NoSuchBucket":
		return d.errBucketMissing()
	case er.Code == "NoSuchKey" || er.StatusCode == 404:
		return storage.ErrNotFound
	case er.StatusCode == 412 || er.Code == "PreconditionFailed" || er.Code == "ConditionalRequestConflict":
		// AWS answers 409 ConditionalRequestConflict to the loser of two
		// concurrent conditional writes: for the caller it lost the race.
		return storage.ErrPreconditionFailed
	case er.Code == "XMinioStorageFull" || er.StatusCode == 507:
		return fmt.Errorf("%w: %w", storage.ErrFull, err)
	}
	if IsUnavailable(err) {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	return err
}

// IsUnavailable reports whether err means the store cannot answer now
// (throttling, a timeout, an unreachable endpoint): a request may succeed
// later, so an HTTP handler should answer 503 rather than 500.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) {
		switch er.StatusCode {
		case 408, 429, 502, 503, 504:
			return true
		}
		switch er.Code {
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "RequestTimeout", "ServiceUnavailable",
			"Throttling", "ThrottlingException", "RequestLimitExceeded", "RequestThrottled",
			"XMinioServerNotInitialized":
			return true
		}
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError // refused, reset, unresolvable: the store is not answering
	return errors.As(err, &oe)
}

// Stat implements storage.Driver.
func (d *Driver) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	st, err := d.state(ctx, key)
	if err != nil {
		return storage.Info{}, err
	}
	return st.info, nil
}

// Open implements storage.Driver. The object's Info comes from the same GET
// that streams its bytes, so it always describes them.
func (d *Driver) Open(ctx context.Context, key string) (storage.Object, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	name := d.object(key)
	body, oi, _, err := d.core.GetObject(ctx, d.bucket, name, minio.GetObjectOptions{})
	if err == nil {
		whole := []part{{name: name, size: oi.Size, etag: oi.ETag}}
		return &reader{ctx: ctx, d: d, info: infoOf(key, oi), parts: whole, body: body, bodyEnd: oi.Size}, nil
	}
	if err = d.mapErr(err); !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	info, chain, _, err := d.appended(ctx, key)
	if err != nil {
		return nil, err
	}
	return &reader{ctx: ctx, d: d, info: info, parts: chain}, nil
}

// Put implements storage.Driver.
func (d *Driver) Put(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Info{}, err
	}
	if cond != (storage.Condition{}) {
		return d.putConditional(ctx, key, r, cond)
	}
	w, err := d.write(ctx, d.object(key), r, minio.PutObjectOptions{})
	if err != nil {
		return storage.Info{}, fmt.Errorf("put %s: %w", key, d.mapErr(err))
	}
	return d.writtenInfo(ctx, key, w), nil
}

func (d *Driver) putConditional(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	body, err := io.ReadAll(io.LimitReader(r, maxConditionalPut+1))
	if err != nil {
		return storage.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	if len(body) > maxConditionalPut {
		return storage.Info{}, fmt.Errorf("put %s: a conditional write holds at most %d bytes", key, maxConditionalPut)
	}
	opts, stale, err := d.precondition(ctx, key, cond)
	if err != nil {
		return storage.Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	w, err := d.putBytes(ctx, d.object(key), body, opts) // one PUT: the store checks the condition
	if err != nil {
		return storage.Info{}, fmt.Errorf("put %s: %w", key, d.mapErr(err))
	}
	_ = d.remove(ctx, names(stale)) // invisible under the whole object; the next Delete retries
	return d.writtenInfo(ctx, key, w), nil
}

// precondition checks cond against what key holds and returns the request
// options that make the store check it again atomically, with the parts the
// write will make stale.
func (d *Driver) precondition(ctx context.Context, key string, cond storage.Condition) (minio.PutObjectOptions, []part, error) {
	var opts minio.PutObjectOptions
	if cond.IfNoneMatch && cond.IfMatch != "" {
		return opts, nil, storage.ErrPreconditionFailed // nothing both exists and does not
	}
	if cond.IfNoneMatch {
		parts, err := d.listParts(ctx, key)
		if err != nil {
			return opts, nil, err
		}
		if chain, _ := contiguous(parts); len(chain) > 0 {
			return opts, nil, storage.ErrPreconditionFailed
		}
		opts.SetMatchETagExcept("*")
		return opts, parts, nil
	}
	st, err := d.state(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return opts, nil, storage.ErrPreconditionFailed
	}
	if err != nil {
		return opts, nil, err
	}
	if st.info.Version != cond.IfMatch {
		return opts, nil, storage.ErrPreconditionFailed
	}
	if st.whole != nil {
		opts.SetMatchETag(st.whole.ETag)
		return opts, nil, nil
	}
	opts.SetMatchETagExcept("*") // an appended key: no whole object may appear meanwhile
	return opts, st.parts, nil
}

// written is what a write stored.
type written struct {
	etag, nonce string
	size        int64
}

// writtenInfo returns the Info of the object a Put just wrote. Only a HEAD
// gives its modification time as Stat will report it; if another write
// replaced the object meanwhile, the time is the local clock's.
func (d *Driver) writtenInfo(ctx context.Context, key string, w written) storage.Info {
	info := storage.Info{Key: key, Size: w.size, ModTime: time.Now(), Version: w.etag + ":" + w.nonce}
	oi, err := d.client.StatObject(ctx, d.bucket, d.object(key), minio.StatObjectOptions{})
	if err == nil && versionOf(oi) == info.Version {
		info.ModTime = oi.LastModified
	}
	return info
}

// smallBuffers hold the first bytes of every write: most are small
// documents, which then never take a part-sized buffer.
var smallBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// write stores r under name with a fresh nonce: one PUT when r fits in a
// part, a multipart upload otherwise, holding one part in memory. Nothing is
// stored when r fails.
func (d *Driver) write(ctx context.Context, name string, r io.Reader, opts minio.PutObjectOptions) (written, error) {
	smallp := smallBuffers.Get().(*[]byte)
	defer smallBuffers.Put(smallp)
	n, eof, err := fill(r, *smallp)
	if err != nil {
		return written{}, err
	}
	if eof {
		return d.putBytes(ctx, name, (*smallp)[:n], opts)
	}
	bufp := d.buffers.Get().(*[]byte)
	defer d.buffers.Put(bufp)
	buf := *bufp
	copy(buf, (*smallp)[:n])
	m, eof, err := fill(r, buf[n:])
	if err != nil {
		return written{}, err
	}
	if eof {
		return d.putBytes(ctx, name, buf[:n+m], opts)
	}
	return d.writeMultipart(ctx, name, buf, r, opts) // a full part: there may be more
}

// putBytes stores body under name with one PUT and a fresh nonce.
func (d *Driver) putBytes(ctx context.Context, name string, body []byte, opts minio.PutObjectOptions) (written, error) {
	w := written{nonce: rand.Text(), size: int64(len(body))}
	opts.UserMetadata = map[string]string{metaWrite: w.nonce}
	opts.DisableMultipart = true
	ui, err := d.client.PutObject(ctx, d.bucket, name, bytes.NewReader(body), w.size, opts)
	if err != nil {
		return written{}, err
	}
	w.etag = ui.ETag
	return w, nil
}

// writeMultipart uploads buf, which is full, and the rest of r as a
// multipart upload with a fresh nonce, aborted when anything fails.
func (d *Driver) writeMultipart(ctx context.Context, name string, buf []byte, r io.Reader, opts minio.PutObjectOptions) (_ written, err error) {
	w := written{nonce: rand.Text()}
	opts.UserMetadata = map[string]string{metaWrite: w.nonce}
	id, err := d.core.NewMultipartUpload(ctx, d.bucket, name, opts)
	if err != nil {
		return written{}, err
	}
	defer func() {
		if err != nil { // with a context of its own: ctx may be what failed
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = d.core.AbortMultipartUpload(actx, d.bucket, name, id)
		}
	}()
	// Up to partsInFlight parts upload at once while the next is read, each
	// from a buffer of its own: the first is buf, the others come from the
	// driver's read-ahead budget when it has room (a write never waits for
	// one; without any, parts go one after the other, none read meanwhile).
	free := make(chan []byte, partsInFlight)
	for range partsInFlight - 1 {
		select {
		case d.readAhead <- struct{}{}:
			bufp := d.buffers.Get().(*[]byte)
			defer func() { d.buffers.Put(bufp); <-d.readAhead }()
			free <- *bufp
		default:
		}
	}
	uctx, cancel := context.WithCancel(ctx)
	var (
		uploads sync.WaitGroup
		mu      sync.Mutex
		parts   []minio.CompletePart
		sendErr error // the first part that failed; the others are cancelled
	)
	// Every upload ends before any buffer goes back (deferred above); on a
	// failure the others are cancelled first.
	defer func() { cancel(); uploads.Wait() }()
	send := func(num int, body []byte) {
		uploads.Add(1)
		go func() {
			defer uploads.Done()
			p, err := d.core.PutObjectPart(uctx, d.bucket, name, id, num, bytes.NewReader(body), int64(len(body)), minio.PutObjectPartOptions{})
			mu.Lock()
			if err != nil && sendErr == nil {
				sendErr = err
				cancel()
			}
			parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
			mu.Unlock()
			free <- body[:cap(body)]
		}()
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return sendErr
	}
	send(1, buf)
	w.size = int64(len(buf))
	for num := 2; ; num++ {
		next := <-free
		if err := failed(); err != nil {
			return written{}, err
		}
		n, ended, err := fill(r, next)
		if err != nil {
			return written{}, err
		}
		if n > 0 {
			if num > maxParts {
				return written{}, fmt.Errorf("more than %d parts of %d bytes", maxParts, len(buf))
			}
			send(num, next[:n])
			w.size += int64(n)
		}
		if ended || n == 0 {
			break
		}
	}
	uploads.Wait()
	if err := failed(); err != nil {
		return written{}, err
	}
	slices.SortFunc(parts, func(a, b minio.CompletePart) int { return a.PartNumber - b.PartNumber })
	ui, err := d.core.CompleteMultipartUpload(ctx, d.bucket, name, id, parts, minio.PutObjectOptions{})
	if err != nil {
		return written{}, err
	}
	w.etag = ui.ETag
	return w, nil
}

// fill reads r into buf until buf is full or r ends. Unlike io.ReadFull it
// tells a clean end (eof) from a failure: a body cut short with
// io.ErrUnexpectedEOF must fail the write, not store a truncated object.
func fill(r io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// Move implements storage.Driver with a server-side copy (or composition of
// an appended key's parts) and the removal of src.
func (d *Driver) Move(ctx context.Context, src, dst string) error {
	if err := storage.ValidateKey(src); err != nil {
		return err
	}
	if err := storage.ValidateKey(dst); err != nil {
		return err
	}
	st, err := d.state(ctx, src)
	if err != nil {
		return fmt.Errorf("move: %w", err)
	}
	if src == dst {
		return nil
	}
	sources, _ := contiguous(st.parts)
	if st.whole != nil {
		sources = []part{{name: d.object(src), size: st.whole.Size, etag: st.whole.ETag}}
	}
	if err := d.copy(ctx, d.object(dst), sources); err != nil {
		return fmt.Errorf("move %s to %s: %w", src, dst, d.mapErr(err))
	}
	// dst is in place; src goes, its parts first: they would show again
	// once the whole object is gone.
	if err := d.removeKey(ctx, src, st); err != nil {
		return fmt.Errorf("move %s to %s: copied, but removing the source: %w", src, dst, err)
	}
	if stale, err := d.listParts(ctx, dst); err == nil {
		_ = d.remove(ctx, names(stale)) // invisible under the whole object; the next Delete retries
	}
	return nil
}

// Delete implements storage.Driver.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	st, err := d.state(ctx, key)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := d.removeKey(ctx, key, st); err != nil {
		return fmt.Errorf("delete %s: %w", key, d.mapErr(err))
	}
	return nil
}

// removeKey removes what st says key holds: the parts first, as they would
// show again once the whole object is gone.
func (d *Driver) removeKey(ctx context.Context, key string, st state) error {
	parts := st.parts
	if st.whole != nil {
		var err error
		if parts, err = d.listParts(ctx, key); err != nil {
			return err
		}
	}
	if err := d.remove(ctx, names(parts)); err != nil {
		return err
	}
	if st.whole == nil {
		return nil
	}
	return d.client.RemoveObject(ctx, d.bucket, d.object(key), minio.RemoveObjectOptions{})
}

// remove deletes the named objects; deleting a missing one is no error.
func (d *Driver) remove(ctx context.Context, objects []string) error {
	switch len(objects) {
	case 0:
		return nil
	case 1:
		return d.client.RemoveObject(ctx, d.bucket, objects[0], minio.RemoveObjectOptions{})
	}
	return d.removeAll(ctx, func(yield func(minio.ObjectInfo) bool) {
		for _, name := range objects {
			if !yield(minio.ObjectInfo{Key: name}) {
				return
			}
		}
	})
}

// removeAll deletes the objects seq yields, in batches.
func (d *Driver) removeAll(ctx context.Context, seq func(yield func(minio.ObjectInfo) bool)) error {
	results, err := d.client.RemoveObjectsWithIter(ctx, d.bucket, seq, minio.RemoveObjectsOptions{})
	if err != nil {
		return err
	}
	var first error
	for res := range results {
		if res.Err != nil && first == nil {
			first = fmt.Errorf("remove %s: %w", res.ObjectName, res.Err)
		}
	}
	return first
}

// DeleteAll implements storage.Driver. As in the filesystem backend, an
// object named prefix itself goes too.
func (d *Driver) DeleteAll(ctx context.Context, prefix string) error {
	if err := storage.ValidateKey(prefix); err != nil {
		return err
	}
	var listErr error
	err := d.removeAll(ctx, func(yield func(minio.ObjectInfo) bool) {
		if !yield(minio.ObjectInfo{Key: d.object(prefix)}) {
			return
		}
		for _, dir := range []string{d.partsDir(prefix), d.dir(prefix)} {
			for oi := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
				if oi.Err != nil {
					listErr = oi.Err
					return
				}
				if !yield(oi) {
					return
				}
			}
		}
	})
	if err == nil {
		err = listErr
	}
	if err != nil {
		return fmt.Errorf("delete all of %s: %w", prefix, d.mapErr(err))
	}
	return nil
}

// List implements storage.Driver. Keys that exist only as appended parts
// are listed as well.
func (d *Driver) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix != "" {
		if err := storage.ValidateKey(prefix); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	dirs := []struct {
		name       string
		onlyPrefix bool // parts of prefix itself are no children of it
	}{{d.dir(prefix), false}, {d.partsDir(prefix), true}}
	for _, dir := range dirs {
		for oi := range d.client.ListObjectsIter(ctx, d.bucket, minio.ListObjectsOptions{Prefix: dir.name}) {
			if oi.Err != nil {
				return nil, fmt.Errorf("list %s: %w", prefix, d.mapErr(oi.Err))
			}
			isPrefix := strings.HasSuffix(oi.Key, "/")
			name := strings.TrimSuffix(strings.TrimPrefix(oi.Key, dir.name), "/")
			if name == "" || name[0] == '.' || strings.Contains(name, "/") || (dir.onlyPrefix && !isPrefix) {
				continue
			}
			seen[name] = true
		}
	}
	if len(seen) == 0 && prefix != "" {
		return nil, fmt.Errorf("list %s: %w", prefix, storage.ErrNotFound)
	}
	out := make([]string, 0, len(seen))
	for name := range seen {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}
