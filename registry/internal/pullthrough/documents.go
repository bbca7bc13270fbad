package pullthrough

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultFetchTimeout bounds one fetch of a document from an upstream, so
// that an uncached pull from a hanging upstream fails within 10 s.
const DefaultFetchTimeout = 8 * time.Second

// Documents runs one fetch per key at a time: callers that ask for a key
// while its fetch runs share its result, so N nodes resolving a new tag
// cost the upstream one request. The fetch runs detached from the callers'
// contexts (one caller giving up does not cancel it for the others),
// bounded by Timeout.
type Documents struct {
	Timeout time.Duration
	group   singleflight.Group
}

// Fetch returns fetch's result for key, shared with every concurrent
// caller of the same key. The caller stops waiting when ctx ends.
func Fetch[T any](d *Documents, ctx context.Context, key string, fetch func(ctx context.Context) (T, error)) (T, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ch := d.group.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		return fetch(fctx)
	})
	var zero T
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		v, _ := r.Val.(T) // a nil interface value is the zero T
		return v, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
