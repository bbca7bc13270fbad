package oci

import "strings"

// Route kinds of the distribution API, also used as metric labels.
const (
	RouteBase        = "base"
	RouteCatalog     = "catalog"
	RouteTags        = "tags"
	RouteManifest    = "manifest"
	RouteBlob        = "blob"
	RouteUploadStart = "blob_upload_start"
	RouteUpload      = "blob_upload"
	RouteReferrers   = "referrers"
	RouteUnknown     = "unknown"
)

// route is a parsed request path below the /v2 prefix.
type route struct {
	kind string
	name string // repository
	ref  string // tag, digest or upload id
}

// parsePath splits a path below the API root ("/" for `GET /v2/`) into a
// route. Repository names contain slashes, so the path is read from its end,
// where the resource suffixes sit.
func parsePath(p string) route {
	switch p {
	case "", "/":
		return route{kind: RouteBase}
	case "/_catalog":
		return route{kind: RouteCatalog}
	}
	p = strings.TrimPrefix(p, "/")
	if name, ok := strings.CutSuffix(p, "/tags/list"); ok {
		return route{kind: RouteTags, name: name}
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads/"); ok {
		return route{kind: RouteUploadStart, name: name}
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads"); ok {
		return route{kind: RouteUploadStart, name: name}
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return route{kind: RouteUnknown}
	}
	head, last := p[:i], p[i+1:]
	j := strings.LastIndexByte(head, '/')
	if j < 0 {
		return route{kind: RouteUnknown}
	}
	name, resource := head[:j], head[j+1:]
	switch resource {
	case "manifests":
		return route{kind: RouteManifest, name: name, ref: last}
	case "blobs":
		return route{kind: RouteBlob, name: name, ref: last}
	case "referrers":
		return route{kind: RouteReferrers, name: name, ref: last}
	case "uploads":
		if n, ok := strings.CutSuffix(name, "/blobs"); ok {
			return route{kind: RouteUpload, name: n, ref: last}
		}
	}
	return route{kind: RouteUnknown}
}

// RouteOf names the API route of a path below the /v2 prefix, for metrics.
func RouteOf(p string) string { return parsePath(p).kind }
