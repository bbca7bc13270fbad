package oci

import (
	"github.com/opencontainers/go-digest"
)

// The storage layout (docs/storage-layout.md). Every key below is built from
// validated names, tags and digests, so none can escape its repository.
//
//	blobs/<alg>/<hex[0:2]>/<hex>/data                      content, once per registry
//	blobs/<alg>/<hex[0:2]>/<hex>/ref                       last upload, link or mount (empty; its time)
//	repositories/<name>/_layers/<alg>/<hex>                blob link (empty)
//	repositories/<name>/_manifests/revisions/<alg>/<hex>   manifest link (holds its media type)
//	repositories/<name>/_manifests/tags/<tag>              tag (holds the digest)
//	repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex> referrer (holds its descriptor)
//	uploads/<id>/data, uploads/<id>/state                  upload session
//	cache/oci/pulled/blobs/<alg>/<hex>                     last pull of a cached blob (empty; its time)
//	cache/oci/pulled/manifests/<name>/<alg>/<hex>          last pull of a cached manifest
//	gc/quarantine/oci/<alg>/<hex>                          a blob the collector is verifying
//	gc/deleting/oci/<name>/_marker                         the collector is deleting in the repository
//
// Repository name components never start with "_", so the "_" directories
// cannot collide with a nested repository.

func blobKey(d digest.Digest) string {
	h := d.Encoded()
	return "blobs/" + string(d.Algorithm()) + "/" + h[:2] + "/" + h + "/data"
}

// blobRefKey is touched before every upload, link and mount of the blob
// relies on it existing: the collector's verification reads it (gc.go).
func blobRefKey(d digest.Digest) string {
	h := d.Encoded()
	return "blobs/" + string(d.Algorithm()) + "/" + h[:2] + "/" + h + "/ref"
}

// quarantineKey is where the collector moves a blob while it verifies
// that nothing took a reference to it (gc.go).
func quarantineKey(d digest.Digest) string {
	return quarantinePrefix + "/" + string(d.Algorithm()) + "/" + d.Encoded()
}

const quarantinePrefix = "gc/quarantine/oci"

// deletingKey exists while the collector deletes tags or manifests of the
// repository; a push that finds it waits and writes again (gc.go).
func deletingKey(name string) string { return deletingPrefix + "/" + name + "/_marker" }

const deletingPrefix = "gc/deleting/oci"

func repoKey(name string) string { return "repositories/" + name }

func layerLinkKey(name string, d digest.Digest) string {
	return repoKey(name) + "/_layers/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func revisionKey(name string, d digest.Digest) string {
	return repoKey(name) + "/_manifests/revisions/" + string(d.Algorithm()) + "/" + d.Encoded()
}

func tagsKey(name string) string { return repoKey(name) + "/_manifests/tags" }

func tagKey(name, tag string) string { return tagsKey(name) + "/" + tag }

func referrersKey(name string, subject digest.Digest) string {
	return repoKey(name) + "/_referrers/" + string(subject.Algorithm()) + "/" + subject.Encoded()
}

func referrerKey(name string, subject, d digest.Digest) string {
	return referrersKey(name, subject) + "/" + string(d.Algorithm()) + "-" + d.Encoded()
}

const uploadsKey = "uploads"

// cachePulledKey holds when each cached object was last pulled, for the
// collector's eviction.
const cachePulledKey = "cache/oci/pulled"

func uploadDataKey(id string) string  { return uploadsKey + "/" + id + "/data" }
func uploadStateKey(id string) string { return uploadsKey + "/" + id + "/state" }
func uploadDirKey(id string) string   { return uploadsKey + "/" + id }
