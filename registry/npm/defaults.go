package npm

import "time"

// The defaults New gives the zero values of Settings; cmd/registry's flags
// show these same constants (registry/config).
const (
	// DefaultPrefix is where the registry is mounted: clients use
	// http://HOST/npm/ as registry URL.
	DefaultPrefix = "/npm"
	// DefaultMaxDocumentSize bounds a publish body without its tarball, in
	// bytes (16 MiB).
	DefaultMaxDocumentSize = 16 << 20
	// DefaultMaxTarballSize bounds one tarball, in bytes (256 MiB).
	DefaultMaxTarballSize = 256 << 20
	// DefaultDocumentCacheSize bounds the memory of the document cache, in
	// bytes (64 MiB).
	DefaultDocumentCacheSize = 64 << 20
	// DefaultUpstreamMaxAge is how long a cached upstream document is
	// served without asking the upstream.
	DefaultUpstreamMaxAge = 2 * time.Minute
)
