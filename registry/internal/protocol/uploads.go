package protocol

import (
	"sync/atomic"

	"github.com/unireg/unireg/registry/limit"
)

// Uploads admits the upload bodies of one protocol handler: each identity
// streams at most so many at once (a limit.Uploads, which the protocols may
// share to bound both together), and it counts the bodies admitted now.
type Uploads struct {
	perIdentity *limit.Uploads
	admitted    atomic.Int64
}

// NewUploads admits bodies within perIdentity; nil bounds nothing.
func NewUploads(perIdentity *limit.Uploads) *Uploads {
	return &Uploads{perIdentity: perIdentity}
}

// Acquire admits one more upload body of the caller, or returns the refusal
// when the caller already streams as many as allowed: an error wrapping
// limit.ErrTooManyUploads, which Classify answers with 429 and Retry-After.
// release must be called when the body ends; calling it again does nothing.
func (u *Uploads) Acquire(c *Call) (release func(), err error) {
	subject := c.Subject()
	free, ok := u.perIdentity.Acquire(subject)
	if !ok {
		return nil, u.perIdentity.Refusal(subject)
	}
	u.admitted.Add(1)
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			u.admitted.Add(-1)
			free()
		}
	}, nil
}

// InProgress returns how many admitted bodies have not been released.
func (u *Uploads) InProgress() int64 { return u.admitted.Load() }
