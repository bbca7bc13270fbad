package limit

import "time"

// The defaults of BodyRate and ResponseRate's zero values; cmd/registry's
// flags show them (registry/config).
const (
	// DefaultIdle is BodyRate.Idle and ResponseRate.Idle when zero.
	DefaultIdle = time.Minute
	// DefaultMinBytesPerSecond is BodyRate.MinBytesPerSecond and
	// ResponseRate.MinBytesPerSecond when zero.
	DefaultMinBytesPerSecond = 1024
)
