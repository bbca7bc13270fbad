package npm

import (
	"testing"

	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The exported defaults are what New applies, so that the flags showing
// them tell the truth.
func TestNewAppliesTheExportedDefaults(t *testing.T) {
	h := mustNew(Options{Storage: inmemory.New()})
	o := h.opts
	if o.Prefix != DefaultPrefix || o.MaxDocumentSize != DefaultMaxDocumentSize || o.MaxTarballSize != DefaultMaxTarballSize || o.DocumentCacheSize != DefaultDocumentCacheSize {
		t.Fatalf("New's defaults: prefix %q, max document %d, max tarball %d, cache %d", o.Prefix, o.MaxDocumentSize, o.MaxTarballSize, o.DocumentCacheSize)
	}
}
