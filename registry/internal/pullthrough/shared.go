package pullthrough

import (
	"context"
	"fmt"
	"net/http"

	"github.com/unireg/unireg/registry/limit"
)

// Shared is what the caches of one registry share, across upstreams and
// protocols.
type Shared struct {
	// Fills downloads immutable objects once however many clients ask (its
	// Dir and Budget are the spool's; nil: a spool in os.TempDir()).
	Fills *Fills
	// Metrics counts hits, misses, upstream bytes and errors, and the
	// breakers' state (nil: counted nowhere).
	Metrics *Metrics
	// FillsPerIdentity bounds the downloads one identity may start at
	// once, like uploads (nil: no bound). Joining a download already under
	// way is free.
	FillsPerIdentity Limiter
	// Transport carries the upstream requests (nil: DefaultTransport()).
	Transport http.RoundTripper
}

// A Limiter bounds what one key (an identity) holds at once; a
// *limit.Uploads is one. A refusal answers 429 (limit.ErrTooManyUploads).
type Limiter interface {
	Acquire(key string) (release func(), ok bool)
}

// Acquire takes one of key's slots; without a limiter every call gets one.
func (s *Shared) Acquire(key string) (release func(), err error) {
	if s.FillsPerIdentity == nil {
		return func() {}, nil
	}
	release, ok := s.FillsPerIdentity.Acquire(key)
	if !ok {
		return nil, fmt.Errorf("%w: %s already has as many upstream requests and downloads under way as one identity may start; retry when one has ended",
			limit.ErrTooManyUploads, key)
	}
	return release, nil
}

// Ask is Upstream.Ask for a request the cache makes on behalf of the
// identity key: it takes one of key's slots for its duration, so that one
// identity asking for random names holds a bounded share of the upstream.
func (s *Shared) Ask(ctx context.Context, key string, u *Upstream, what string, call func(ctx context.Context) error) error {
	release, err := s.Acquire(key)
	if err != nil {
		return err
	}
	defer release()
	return u.Ask(ctx, what, call)
}

// Admit is Acquire for key as a Download's Admit.
func (s *Shared) Admit(key string) func() (func(), error) {
	return func() (func(), error) { return s.Acquire(key) }
}

// SpoolFills returns Fills, making a default one on first use.
func (s *Shared) SpoolFills() *Fills {
	if s.Fills == nil {
		s.Fills = &Fills{}
	}
	return s.Fills
}

// RoundTripper returns Transport, or DefaultTransport().
func (s *Shared) RoundTripper() http.RoundTripper {
	if s.Transport == nil {
		s.Transport = DefaultTransport()
	}
	return s.Transport
}
