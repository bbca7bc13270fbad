//go:build tools

// Package distribution pins CNCF Distribution (the reference registry), the
// upstream the pull-through cache tests fill from, so that `make distribution`
// builds it from the Go module proxy.
package distribution

import _ "github.com/distribution/distribution/v3/cmd/registry"
