// Package limit holds the request limits both protocols share: how slowly a
// client may send a request body or take a response, how many uploads one
// identity may stream at once, and how deeply a JSON document may nest.
//
// Each limit answers with an error that says which limit was hit; the protocol
// handlers turn those errors into their own error format.
package limit

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ErrBodyTooSlow is returned by the reads of a body wrapped by SlowBodies when
// the client stops sending or sends slower than the minimum rate.
var ErrBodyTooSlow = errors.New("request body arrives too slowly")

// BodyRate bounds how slowly a client may send a request body, so that a
// slow-loris client cannot hold a connection and its goroutine for ever.
type BodyRate struct {
	// Idle is the longest wait for the next bytes of a body (default 1 minute).
	Idle time.Duration
	// MinBytesPerSecond is the slowest average rate accepted once Grace has
	// passed (default 1024; negative disables the rate check, leaving Idle).
	MinBytesPerSecond int64
	// Grace is how long a body may take before the rate is checked (default
	// 1 minute), so that a slow start (TCP, a client hashing first) is not
	// punished.
	Grace time.Duration
}

func (b BodyRate) withDefaults() BodyRate {
	if b.Idle <= 0 {
		b.Idle = DefaultIdle
	}
	if b.MinBytesPerSecond == 0 {
		b.MinBytesPerSecond = DefaultMinBytesPerSecond
	}
	if b.Grace <= 0 {
		b.Grace = time.Minute
	}
	return b
}

// SlowBodies wraps next so that every request body is read under rate: each
// read gets a deadline of Idle on the connection, and once Grace has passed
// the body's average rate must stay at or above MinBytesPerSecond. A body
// that breaks either rule fails its read with ErrBodyTooSlow (and the
// connection's read deadline closes it for the client), so the handler ends
// as for any broken body: nothing it was writing becomes visible.
func SlowBodies(next http.Handler, rate BodyRate) http.Handler {
	rate = rate.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &rateBody{body: r.Body, rc: http.NewResponseController(w), rate: rate, start: time.Now()}
		}
		next.ServeHTTP(w, r)
	})
}

type rateBody struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	rate  BodyRate
	start time.Time
	read  int64
	err   error
}

func (b *rateBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	now := time.Now()
	deadline := now.Add(b.rate.Idle)
	if b.rate.MinBytesPerSecond > 0 {
		elapsed := now.Sub(b.start)
		if elapsed > b.rate.Grace && b.read < int64(elapsed.Seconds()*float64(b.rate.MinBytesPerSecond)) {
			b.err = fmt.Errorf("%w: %d bytes in %s, below %d bytes/s", ErrBodyTooSlow, b.read, elapsed.Round(time.Second), b.rate.MinBytesPerSecond)
			return 0, b.err
		}
		// The rate must still hold when this read returns: never wait past
		// the moment the bytes read so far stop being enough.
		if due := b.start.Add(max(b.rate.Grace, time.Duration(float64(b.read+1)/float64(b.rate.MinBytesPerSecond)*float64(time.Second)))); due.Before(deadline) {
			deadline = due
		}
	}
	// Servers that cannot set deadlines (httptest.ResponseRecorder) get the
	// rate check between reads only.
	_ = b.rc.SetReadDeadline(deadline)
	n, err := b.body.Read(p)
	b.read += int64(n)
	if err != nil && isTimeout(err) {
		b.err = fmt.Errorf("%w: %d bytes in %s (a body may pause at most %s, and must average %d bytes/s after %s)",
			ErrBodyTooSlow, b.read, time.Since(b.start).Round(time.Millisecond), b.rate.Idle, b.rate.MinBytesPerSecond, b.rate.Grace)
		return n, b.err
	}
	if err == io.EOF {
		// Done with the body: the server manages the deadline of what follows.
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (b *rateBody) Close() error { return b.body.Close() }

// Reason returns the words of the error in err's chain that wraps target
// directly (the limit's own message, with its numbers), without what wrapped
// it further up (which may name internal keys); target's text if none does.
func Reason(err, target error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == target {
			return e.Error()
		}
	}
	return target.Error()
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// Uploads counts the request bodies each identity is streaming, and refuses
// one more than its maximum.
type Uploads struct {
	max    int
	mu     sync.Mutex
	active map[string]int
}

// NewUploads allows max concurrent uploads per key; max <= 0 allows any
// number (the counts are still kept).
func NewUploads(max int) *Uploads {
	return &Uploads{max: max, active: map[string]int{}}
}

// ErrTooManyUploads wraps the refusal of an upload beyond the maximum; the
// client may retry once one of its uploads has ended.
var ErrTooManyUploads = errors.New("too many uploads at once")

// Refusal is the error for key's upload that Acquire refused.
func (u *Uploads) Refusal(key string) error {
	return fmt.Errorf("%w: %s already streams %d uploads, the most one identity may; finish one first",
		ErrTooManyUploads, key, u.max)
}

// Acquire counts one more upload for key. ok is false, and nothing is
// counted, when key already streams its maximum (Refusal says so);
// otherwise release must be called when the upload ends. A nil *Uploads
// allows everything.
func (u *Uploads) Acquire(key string) (release func(), ok bool) {
	if u == nil {
		return func() {}, true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.max > 0 && u.active[key] >= u.max {
		return nil, false
	}
	u.active[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			if u.active[key]--; u.active[key] <= 0 {
				delete(u.active, key)
			}
		})
	}, true
}

// ErrTooDeep is returned by JSONDepth for documents nested deeper than allowed.
var ErrTooDeep = errors.New("JSON document nested too deeply")

// DefaultJSONDepth is the nesting depth the protocol handlers accept: far
// beyond any real manifest or package.json, far below what makes a decoder
// work hard.
const DefaultJSONDepth = 64

// JSONDepth checks that doc nests objects and arrays at most max levels
// deep. It only counts brackets outside strings; it does not validate the
// JSON, which the decoder does next.
func JSONDepth(doc []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range doc {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return fmt.Errorf("%w: more than %d levels", ErrTooDeep, max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
