// Package s3 implements storage.Driver on a bucket of an S3-compatible object
// store (AWS S3, MinIO, Ceph RGW ...) with github.com/minio/minio-go/v7.
//
// # Layout
//
// A key maps to one object, Options.Prefix + "/" + key (just key without a
// prefix), so the bucket holds the layout of docs/storage-layout.md as it is.
// The driver keeps its own objects under segments that start with a dot,
// which storage.ValidateKey refuses to callers: they can never be read,
// listed or overwritten through the Driver.
//
//	PREFIX/<key>                               a whole object (Put, Move)
//	PREFIX/.appends/<key>/<20-digit offset>    a part of an object built by Append
//
// # Versions
//
// S3 ETags of single PUTs are content MD5s: writing the same bytes twice
// gives the same ETag, which would let a stale compare-and-swap succeed.
// Every write therefore stores a random nonce in the user metadata
// X-Amz-Meta-Unireg-Write, and Info.Version is "ETag:nonce". A conditional
// Put sends If-Match with the ETag (or If-None-Match: * to create), so the
// store itself refuses a write racing with another content; the nonce is
// compared by a HEAD just before, which catches a key rewritten with the
// same content since it was read. The remaining window (an identical
// rewrite between that HEAD and the PUT) cannot lose an update: the server
// only accepts the PUT while the content is still the one the caller read.
// Conditional writes are small documents: they are buffered (up to 16 MiB)
// and sent as one PUT. Unconditional writes of any size stream, as a single
// PUT when they fit in one part and as a multipart upload otherwise (memory:
// one PartSize buffer per write, and up to two more per write from a
// budget of eight for all writes at once: a write holding them keeps up to
// three parts uploading, reading the next into whichever buffer is free).
//
// # Append
//
// S3 objects cannot grow, so Append stores an object as numbered parts under
// .appends/<key>/, each named by the offset it starts at. An appended key
// reads as the concatenation of its parts from offset 0 while they are
// contiguous. A whole object under the key's own name wins over parts: Put
// and Move write it and leave no window in which old parts show, and stale
// parts under a whole object are removed by the next Append, Move or Delete.
//
// Append(key, offset, r) first deletes every part that starts at or after
// offset (the caller's offset is the truth), then continues the part that
// holds offset, L:
//
//   - L shorter than 5 MiB (the S3 minimum for every part of a composition
//     but the last) is rewritten under its own name as its kept bytes
//     followed by r, streamed from a GET of L: the PUT replaces L
//     atomically, so a failed Append leaves it as it was;
//   - otherwise r becomes a new part at offset (L cut at offset first, by a
//     server-side copy, when the caller rewound into it).
//
// Every part but the last is therefore at least 5 MiB, and Move of an
// appended key is one server-side ComposeObject (CopyObject for one part),
// followed by the removal of the parts; no byte crosses the registry. An
// Append onto a whole object (the empty one an upload session starts with)
// turns it into part 0 the same way and removes it once the part is written.
//
// An appended key's Version is the last part's ETag and nonce: every Append
// rewrites or creates the last part. Stat and Open of an appended key cost a
// LIST and a HEAD more than those of a whole object; Open reads the parts in
// order, each GET conditional on the part's ETag, and seeks anywhere by
// reopening the part that holds the new position.
//
// # Atomicity and concurrency
//
// Put, Move and Append make their result visible with one S3 request (a PUT,
// a copy or a multipart completion), so readers never see a partial object.
// Move is a copy followed by a delete: a crash in between leaves both src
// and dst, and two concurrent Moves of one src can both succeed. Appends to
// one key must not run concurrently (upload sessions serialize them with a
// compare-and-swap of their state); a conditional Put on an appended key
// is checked against its parts but not atomically with a concurrent Append.
//
// Errors that mean "try again later" (throttling, timeouts, an unreachable
// endpoint) are recognised by IsUnavailable, so handlers can answer 503;
// minio-go already retries them with backoff before giving up.
package s3
