package registry

import (
	"time"

	"github.com/unireg/unireg/registry/auth"
)

// The defaults of Config's zero values; cmd/registry's flags show these
// same constants (registry/config). The protocols' own defaults are in
// oci.Default* and npm.Default*, the rate limits' in limit.Default*.
const (
	// DefaultTokenService is Config.TokenService when empty.
	DefaultTokenService = "unireg"
	// DefaultTokenTTL is Config.TokenTTL when zero.
	DefaultTokenTTL = auth.DefaultJWTTTL
	// DefaultUploadsPerIdentity is Limits.UploadsPerIdentity when zero.
	DefaultUploadsPerIdentity = 128
	// DefaultCacheFillsPerIdentity is Limits.CacheFillsPerIdentity when
	// zero.
	DefaultCacheFillsPerIdentity = 16
	// DefaultCacheSpoolBytes is CacheConfig.SpoolBytes when zero.
	DefaultCacheSpoolBytes = 8 << 30
	// DefaultCacheMemoryBytes is CacheConfig.MemoryBytes when zero.
	DefaultCacheMemoryBytes = 256 << 20
	// DefaultCacheMaxIdle is the server's --cache-max-idle: cached content
	// not pulled for 30 days is evicted (the library's zero never evicts).
	DefaultCacheMaxIdle = 30 * 24 * time.Hour
	// DefaultUploadPurgeInterval is OCIConfig.UploadPurgeInterval when zero.
	DefaultUploadPurgeInterval = 10 * time.Minute
)
