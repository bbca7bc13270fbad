package pullthrough

import (
	"errors"
	"fmt"
	"time"
)

// ErrUpstream wraps every failure to get something from an upstream: the
// upstream could not be reached, answered too slowly, answered an error, or
// sent content that failed verification. A protocol answers it with a
// gateway error (protocol.Classify: 502, or 503 with Retry-After when the
// breaker is open).
var ErrUpstream = errors.New("upstream failed")

// ErrNotFound is an upstream's answer that it does not have the object; it
// is remembered for a while (Negative).
var ErrNotFound = errors.New("not found upstream")

// ErrRefused wraps the cache's own refusal of what a healthy upstream
// sent (a blob above the size limit): it does not count against the
// upstream.
var ErrRefused = errors.New("refused by the cache")

// An UpstreamError is a failure of the upstream Name, with a reason that
// may be shown to the client: it holds nothing the upstream sent but its
// status code, so an upstream cannot write into our answers.
type UpstreamError struct {
	Upstream string
	Reason   string
	// RetryAfter is set when the breaker is open: how long until the
	// upstream is asked again.
	RetryAfter time.Duration
	Err        error
}

func (e *UpstreamError) Error() string {
	return fmt.Sprintf("upstream %s: %s", e.Upstream, e.Reason)
}

func (e *UpstreamError) Unwrap() []error { return []error{ErrUpstream, e.Err} }

// Failed describes a failure of upstream for the client.
func Failed(upstream, reason string, err error) error {
	return &UpstreamError{Upstream: upstream, Reason: reason, Err: err}
}
