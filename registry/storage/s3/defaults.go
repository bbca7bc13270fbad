package s3

// The defaults New gives the zero values of Options; cmd/registry's flags
// show them (registry/config).
const (
	// DefaultRegion is the bucket's region when Options.Region is empty.
	DefaultRegion = defaultRegion
	// DefaultPartSize is the multipart part size when Options.PartSize is 0.
	DefaultPartSize = defaultPartSize
)
