package oci

import "time"

// The defaults New gives the zero values of Settings; cmd/registry's flags
// show these same constants (registry/config).
const (
	// DefaultPrefix is where the API is mounted: OCI clients need /v2 at
	// the host root.
	DefaultPrefix = "/v2"
	// DefaultMaxManifestSize bounds a manifest, in bytes (4 MiB, as
	// Distribution and Zot).
	DefaultMaxManifestSize = 4 << 20
	// DefaultUploadMaxAge is how long an untouched upload session lives.
	DefaultUploadMaxAge = 24 * time.Hour
	// DefaultUpstreamTagTTL is how long a cached tag is served before the
	// upstream is asked again.
	DefaultUpstreamTagTTL = time.Minute
)
