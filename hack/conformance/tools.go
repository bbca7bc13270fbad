//go:build tools

// Package conformance pins the OCI distribution-spec conformance suite so that
// `make conformance-tool` can build it from the Go module proxy.
package conformance

import _ "github.com/opencontainers/distribution-spec/conformance"
