package oci

import (
	"testing"

	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The exported defaults are what New applies, so that the flags showing
// them tell the truth.
func TestNewAppliesTheExportedDefaults(t *testing.T) {
	h, _ := New(Options{Storage: inmemory.New()})
	if h.opts.Prefix != DefaultPrefix || h.opts.MaxManifestSize != DefaultMaxManifestSize || h.opts.UploadMaxAge != DefaultUploadMaxAge {
		t.Fatalf("New's defaults: prefix %q, max manifest %d, upload age %s", h.opts.Prefix, h.opts.MaxManifestSize, h.opts.UploadMaxAge)
	}
}
