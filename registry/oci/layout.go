package oci

import (
	"github.com/opencontainers/go-digest"
)

// The storage layout (docs/storage-layout.md). Every key below is built from
// validated names, tags and digests, so none can escape its repository.
//
//	blobs/<alg>/<hex[0:2]>/<hex>/data                      content, once per registry
//	repositories/<name>/_layers/<alg>/<hex>                blob link (empty)
//	repositories/<name>/_manifests/revisions/<alg>/<hex>   manifest link (holds its media type)
//	repositories/<name>/_manifests/tags/<tag>              tag (holds the digest)
//	repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex> referrer (holds its descriptor)
//	uploads/<id>/data, uploads/<id>/state                  upload session
//	cache/oci/pulled/blobs/<alg>/<hex>                     last pull of a cached blob (empty; its time)
//	cache/oci/pulled/manifests/<name>/<alg>/<hex>          last pull of a cached manifest
//
// Repository name components never start with "_", so the "_" directories
// cannot collide with a nested repository.

func blobKey(d digest.Digest) string {
	h := d.Encoded()
	return "blobs/" + string(d.Algorithm()) + "/" + h[:2] + "/" + h + "/data"
}

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
