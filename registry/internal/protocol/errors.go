package protocol

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/unireg/unireg/registry/internal/pullthrough"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/requestlog"
	"github.com/unireg/unireg/registry/storage"
)

// Classify answers an error that is not one of the protocol's own: it
// returns the status and a message the client may read, sets Retry-After
// where the client may retry, and hands the cause of a failure the client
// cannot see to the request log (requestlog.Record):
//
//	too many uploads at once (limit.ErrTooManyUploads)  429, Retry-After
//	a body sent too slowly (limit.ErrBodyTooSlow)        408, logged
//	storage throttled or unreachable                     503, Retry-After, logged
//	storage full (disk, quota)                           507, named, logged
//	an upstream's circuit breaker open                   503, Retry-After, the upstream named
//	an upstream failed (pullthrough.UpstreamError)       502, the upstream and reason named, logged
//	anything else                                        500 "internal error", logged
//
// The protocol writes the answer in its own format.
func Classify(w http.ResponseWriter, r *http.Request, err error) (status int, message string) {
	switch {
	case errors.Is(err, limit.ErrTooManyUploads):
		w.Header().Set("Retry-After", "1")
		return http.StatusTooManyRequests, limit.Reason(err, limit.ErrTooManyUploads)
	case errors.Is(err, limit.ErrBodyTooSlow):
		requestlog.Record(r, err)
		return http.StatusRequestTimeout, limit.Reason(err, limit.ErrBodyTooSlow)
	case storage.IsUnavailable(err) && !errors.Is(err, pullthrough.ErrUpstream):
		w.Header().Set("Retry-After", "1")
		requestlog.Record(r, err)
		return http.StatusServiceUnavailable, "storage is unavailable; retry later"
	case storage.IsFull(err):
		requestlog.Record(r, err)
		return http.StatusInsufficientStorage, "the registry's storage is full"
	}
	var upstream *pullthrough.UpstreamError
	if errors.As(err, &upstream) {
		requestlog.Record(r, err)
		if upstream.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(upstream.RetryAfter.Seconds())+1))
			return http.StatusServiceUnavailable, upstream.Error()
		}
		return http.StatusBadGateway, upstream.Error()
	}
	requestlog.Record(r, err)
	return http.StatusInternalServerError, "internal error"
}

// ErrorAs is the protocol's own error for err: err itself when it is an E
// (by errors.As), else the E that classified makes of Classify's answer.
func ErrorAs[E error](w http.ResponseWriter, r *http.Request, err error, classified func(status int, message string) E) E {
	var e E
	if errors.As(err, &e) {
		return e
	}
	return classified(Classify(w, r, err))
}

// Disabled answers every request with err, written by the protocol's write.
// A server that turns a protocol off mounts this at the protocol's prefix,
// so that its clients say why instead of failing to parse another format.
func Disabled(write func(w http.ResponseWriter, r *http.Request, err error), err error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { write(w, r, err) })
}

// Truncate shortens client input quoted in a message to max bytes and an
// ellipsis, so that a client cannot make an answer or a log line long.
func Truncate(s string, max int) string {
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
