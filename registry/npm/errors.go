package npm

import (
	"fmt"
	"net/http"

	"github.com/unireg/unireg/registry/internal/protocol"
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
// are classified by protocol.Classify: internal ones are answered 500 with a
// generic message, their text passed to the request log.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := protocol.ErrorAs(w, r, err, func(status int, msg string) *Error {
		return &Error{Status: status, Message: msg}
	})
	writeJSON(w, r, e.Status, map[string]string{"error": e.Message})
}

// Disabled answers every request with 404 in npm's error format. A server
// that turns the npm registry off mounts it at the registry's prefix, so
// that npm prints why instead of a bare failure.
func Disabled() http.Handler {
	return protocol.Disabled(writeError, newError(http.StatusNotFound, "the npm registry is disabled on this server"))
}
