// Package gc is the garbage collector of the registry's storage (issue 18,
// docs/storage-layout.md "How the garbage collector works"): an online mark
// and sweep over both protocols' content. This package so far holds the
// lease that lets exactly one replica on a shared storage collect at a time.
package gc
