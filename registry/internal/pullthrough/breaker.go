package pullthrough

import (
	"sync"
	"time"
)

// Default breaker settings: five failures in a row open it for 30 s.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 30 * time.Second
)

// A Breaker stops asking an upstream that keeps failing: after Failures
// failures in a row it opens for Cooldown, during which Allow refuses at
// once (uncached pulls fail fast instead of each waiting for a timeout);
// then one request is let through as a probe, and its outcome closes the
// breaker or opens it again.
type Breaker struct {
	Failures int
	Cooldown time.Duration
	// OnChange, if set, is told when the breaker opens or closes.
	OnChange func(open bool)
	now      func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

// NewBreaker returns a closed breaker with the default settings.
func NewBreaker() *Breaker {
	return &Breaker{Failures: DefaultBreakerFailures, Cooldown: DefaultBreakerCooldown}
}

func (b *Breaker) clock() time.Time {
	if b.now != nil {
		return b.now()
	}
	return time.Now()
}

// Allow reports whether the upstream may be asked now; when it may not, it
// returns how long until it may.
func (b *Breaker) Allow() (ok bool, retryAfter time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openUntil.IsZero() {
		return true, 0
	}
	now := b.clock()
	if now.Before(b.openUntil) {
		return false, b.openUntil.Sub(now)
	}
	if b.probing {
		return false, time.Second
	}
	b.probing = true
	return true, 0
}

// Record notes the outcome of a request Allow let through: failed is true
// when the upstream could not answer (not for its 404s: an upstream that
// says "not found" is healthy).
func (b *Breaker) Record(failed bool) {
	b.mu.Lock()
	wasOpen := !b.openUntil.IsZero()
	b.probing = false
	if !failed {
		b.failures = 0
		b.openUntil = time.Time{}
	} else {
		b.failures++
		if wasOpen || b.failures >= b.Failures {
			b.openUntil = b.clock().Add(b.Cooldown)
		}
	}
	isOpen := !b.openUntil.IsZero()
	onChange := b.OnChange
	b.mu.Unlock()
	if onChange != nil && wasOpen != isOpen {
		onChange(isOpen)
	}
}

// Release ends a request Allow let through without an outcome (its
// caller gave up): the failures counted and an open breaker stay as they
// were, and another request may probe.
func (b *Breaker) Release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
}

// Open reports whether the breaker is open (or probing).
func (b *Breaker) Open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openUntil.IsZero()
}
