//go:build tools

// Package tools pins the OCI client CLIs that the client tests drive against
// a real server: oras and crane. `make client-tools` builds them into bin/.
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "oras.land/oras/cmd/oras"
)
