package npm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/unireg/unireg/registry/storage"
)

// refuseNewCaseVariant refuses a new package whose name differs from a
// package held here only by case (jsonstream beside JSONStream): the
// confusion the public registry guards against. The answer is a 409, whose
// message npm prints as it is (after a 403 it adds a paragraph on security
// policies that would mislead). Settings.AllowCaseVariants turns it off,
// for migrations of trees that hold both.
//
// It is checked before the tarball is stored, so a refusal leaves nothing.
// It lists the one directory the name's variants would sit in (the scope's,
// or the top of npm/packages), once per new package; a deleted package
// does not count. Two variants published at the same moment, each before
// the other's document exists, can both land: this is a guard against
// confusion, not an invariant of the storage.
func (h *Handler) refuseNewCaseVariant(ctx context.Context, name string) error {
	if h.opts.AllowCaseVariants {
		return nil
	}
	if found, err := h.packages.exists(ctx, name); err != nil || found {
		return err // an existing package takes new versions
	}
	dir, base := packagesKey, name
	if scope, rest, ok := strings.Cut(name, "/"); ok {
		// Scopes are lowercase (ValidName): only the name part can vary.
		dir, base = packagesKey+"/"+scope, rest
	}
	entries, err := h.store.List(ctx, dir)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s for case variants of %s: %w", dir, name, err)
	}
	for _, e := range entries {
		if e == base || !strings.EqualFold(e, base) {
			continue
		}
		other := e
		if dir != packagesKey {
			other = strings.TrimPrefix(dir, packagesKey+"/") + "/" + e
		}
		found, err := h.packages.exists(ctx, other)
		if err != nil {
			return err
		}
		if found {
			return newError(http.StatusConflict, "package name %s differs only in case from the existing package %s; "+
				"publish to %s, or start the registry with --npm-allow-case-variants to hold both", name, other, other)
		}
	}
	return nil
}
