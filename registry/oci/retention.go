package oci

import (
	"regexp"
	"time"
)

// A Retention rule says which tags and untagged manifests the garbage
// collector keeps in the repositories its pattern matches (docs/gc.md).
// Where several rules match a repository, a tag is kept when any of them
// keeps it; a repository no rule matches keeps everything.
type Retention struct {
	// Repositories is a glob over repository names, as in scopes: `*`
	// matches any run of characters, `/` included ("team/*", "*").
	Repositories string
	// KeepLast keeps the N most recently pushed tags (0: no such rule).
	KeepLast int
	// KeepTags keeps every tag it matches (nil: no such rule).
	KeepTags *regexp.Regexp
	// UntaggedAfter deletes manifests that no tag points at (directly, or
	// as a child of a tagged index, or as a referrer of a kept manifest)
	// once they are older than it, counted from their push (0: untagged
	// manifests stay).
	UntaggedAfter time.Duration
}

// keepsTags reports whether the rule speaks about tags at all: a rule with
// only UntaggedAfter leaves every tag alone.
func (r Retention) keepsTags() bool { return r.KeepLast > 0 || r.KeepTags != nil }
