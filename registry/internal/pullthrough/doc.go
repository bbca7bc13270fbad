// Package pullthrough is what the pull-through caches of both protocols
// share: one upstream's health (a circuit breaker and its errors), short
// memory of what the upstream does not have (negative caching), documents
// fetched once however many callers ask at the same time (Documents), and
// immutable objects downloaded once into a spool that every caller reads as
// it grows (Fills), verified against their digest before they are stored.
// It knows nothing of either wire format: registry/oci and registry/npm map
// their routes onto it (docs/cache.md).
package pullthrough
