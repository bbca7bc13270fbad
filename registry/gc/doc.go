// Package gc is the garbage collector of the registry's storage
// (docs/storage-layout.md "How the garbage collector works"): an online
// mark and sweep over both protocols' content. The package holds what the
// protocols share: the Collector that runs a collection over its Parts (the
// OCI and npm handlers each implement one, since each knows its own
// layout), the Run they record their deletions in, the byte budget of the
// pull-through caches, the storage lease that lets exactly one replica on a
// shared storage collect at a time, and the metrics.
package gc
