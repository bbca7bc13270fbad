package npm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/requestlog"
	"github.com/unireg/unireg/registry/storage"
)

// Error is an npm-style error: an HTTP status and {"error": message}.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func newError(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// writeError answers err as npm clients expect. Errors that are not *Error
// are internal: answered 500 with a generic message, their text passed to the
// request log through requestlog.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, limit.ErrTooManyUploads):
		e = &Error{Status: http.StatusTooManyRequests, Message: limit.Reason(err, limit.ErrTooManyUploads)}
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, limit.ErrBodyTooSlow):
		e = &Error{Status: http.StatusRequestTimeout, Message: limit.Reason(err, limit.ErrBodyTooSlow)}
		requestlog.Record(r, err)
	case storage.IsUnavailable(err):
		// Throttled or unreachable storage: the client may retry.
		e = &Error{Status: http.StatusServiceUnavailable, Message: "storage is unavailable; retry later"}
		w.Header().Set("Retry-After", "1")
		requestlog.Record(r, err)
	default:
		e = &Error{Status: http.StatusInternalServerError, Message: "internal error"}
		requestlog.Record(r, err)
	}
	writeJSON(w, r, e.Status, map[string]string{"error": e.Message})
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
}

// Disabled answers every request with 404 in npm's error format. A server
// that turns the npm registry off mounts it at the registry's prefix, so
// that npm prints why instead of a bare failure.
func Disabled() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, newError(http.StatusNotFound, "the npm registry is disabled on this server"))
	})
}
