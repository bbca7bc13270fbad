package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The pull-through scenarios (docs/cache.md): --url is a unireg whose
// --oci-upstream names a second registry, the upstream, as
// --cache-namespace; loadgen pushes into the upstream (--upstream-url,
// --upstream-user, --upstream-password-file) and pulls through the cache.
//
//	cache-pull-cold-<N>MiB  every operation pulls a blob the cache has never
//	                        seen: the cache downloads it from the upstream,
//	                        streams it to the client and stores it
//	cache-pull-warm-<N>MiB  one blob, pulled once through the cache in the
//	                        setup, pulled again and again (served as stored)
//
// The comparison for the cold pull is blob-pull-<N>MiB run against the
// upstream itself; for the warm pull, blob-pull-<N>MiB against a unireg
// holding the blob locally.

// cacheScenario matches the pull-through scenarios of any size.
var cacheScenario = regexp.MustCompile(`^cache-pull-(cold|warm)-([0-9]+)MiB$`)

// cacheRepo is the repository, in the upstream, that the scenarios push
// into; the cache serves it as <namespace>/cacheRepo. Blobs are pulled from
// the repository they were pushed to, so the cache downloads them rather
// than asking the upstream to confirm a blob it already holds.
const cacheRepo = "load/cache"

// parseCacheScenario returns the scenario for a name cacheScenario matches.
func parseCacheScenario(name string) (scenario, bool) {
	m := cacheScenario.FindStringSubmatch(name)
	if m == nil {
		return scenario{}, false
	}
	size, _ := strconv.ParseInt(m[2], 10, 64)
	size *= mib
	s := scenario{name: name, bytes: true, setup: cachePullWarm(size)}
	if m[1] == "cold" {
		s.setup = cachePullCold(size)
	}
	return s, true
}

// cacheEnv checks that the scenario has an upstream to push into.
func (e *env) cacheEnv() error {
	if e.upstream == nil {
		return errors.New("the pull-through scenarios need --upstream-url (the registry the cache at --url fills from)")
	}
	if e.cacheNamespace == "" {
		return errors.New("the pull-through scenarios need --cache-namespace (the NAME of --oci-upstream NAME=URL)")
	}
	return nil
}

// upstreamEnv is an env whose client is the upstream's, to push with.
func (e *env) upstreamEnv() *env {
	return &env{c: e.upstream, concurrency: e.concurrency}
}

// cachePullCold pushes, into the upstream, one new blob per operation
// (all of them before the run when --requests says how many; otherwise each
// operation pushes its own first, outside its time) and pulls it once from
// the upstream directly (warming the upstream's page cache, as the direct
// pulls it is compared with find it), then each operation
// GETs a blob the cache has never seen through the cache, reading and
// verifying it whole.
func cachePullCold(size int64) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		if err := e.cacheEnv(); err != nil {
			return nil, err
		}
		up := e.upstreamEnv()
		type blob struct {
			id     uint64
			digest string
		}
		var ready []blob
		for range e.requests {
			id := blobIDs.Add(1)
			digest := blobDigest(id, size)
			if err := up.pushBlob(ctx, cacheRepo, id, size, false, digest); err != nil {
				return nil, fmt.Errorf("pushing into the upstream: %w", err)
			}
			// Pulled once from the upstream, so that the upstream serves it
			// as it serves blob-pull-<N>MiB, the scenario this one is
			// compared with: from its page cache, not its disk.
			if _, err := up.pullFrom(ctx, cacheRepo, digest, size); err != nil {
				return nil, fmt.Errorf("pulling from the upstream: %w", err)
			}
			ready = append(ready, blob{id, digest})
		}
		var next atomic.Int64
		return func(ctx context.Context, _ int) (int64, time.Duration, error) {
			var b blob
			if i := next.Add(1) - 1; i < int64(len(ready)) {
				b = ready[i]
			} else {
				b.id = blobIDs.Add(1)
				b.digest = blobDigest(b.id, size)
				if err := up.pushBlob(ctx, cacheRepo, b.id, size, false, b.digest); err != nil {
					return 0, 0, fmt.Errorf("pushing into the upstream: %w", err)
				}
				if _, err := up.pullFrom(ctx, cacheRepo, b.digest, size); err != nil {
					return 0, 0, fmt.Errorf("pulling from the upstream: %w", err)
				}
			}
			start := time.Now()
			n, err := e.pullCached(ctx, b.digest, size)
			return n, time.Since(start), err
		}, nil
	}
}

// cachePullWarm pushes one blob into the upstream and pulls it once
// through the cache, which stores it; each operation pulls it again.
func cachePullWarm(size int64) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		if err := e.cacheEnv(); err != nil {
			return nil, err
		}
		id := blobIDs.Add(1)
		digest := blobDigest(id, size)
		if err := e.upstreamEnv().pushBlob(ctx, cacheRepo, id, size, false, digest); err != nil {
			return nil, fmt.Errorf("pushing into the upstream: %w", err)
		}
		if _, err := e.pullCached(ctx, digest, size); err != nil {
			return nil, fmt.Errorf("first (cold) pull: %w", err)
		}
		return func(ctx context.Context, _ int) (int64, time.Duration, error) {
			start := time.Now()
			n, err := e.pullCached(ctx, digest, size)
			return n, time.Since(start), err
		}, nil
	}
}

// pullCached GETs a blob of the upstream's cacheRepo through the cache and
// reads it whole, verifying its size and digest.
func (e *env) pullCached(ctx context.Context, digest string, size int64) (int64, error) {
	return e.pullFrom(ctx, e.cacheNamespace+"/"+cacheRepo, digest, size)
}

// pullFrom GETs a blob of repo and reads it whole, verifying its size and
// digest.
func (e *env) pullFrom(ctx context.Context, repo, digest string, size int64) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.url("/v2/"+repo+"/blobs/"+digest), nil)
	resp, err := e.c.do(req, ociScope(repo, false), nil)
	if err != nil {
		return 0, err
	}
	return readVerified(resp, strings.TrimPrefix(digest, "sha256:"), size)
}
