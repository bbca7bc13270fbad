package oci

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/unireg/unireg/registry/internal/protocol"
)

// Error is an error of the distribution spec: a code, an HTTP status and a
// message, written as {"errors":[{"code","message","detail"}]}.
type Error struct {
	Status  int
	Code    string
	Message string
	Detail  any
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The spec's error codes.
const (
	CodeBlobUnknown         = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       = "DIGEST_INVALID"
	CodeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     = "MANIFEST_INVALID"
	CodeManifestUnknown     = "MANIFEST_UNKNOWN"
	CodeNameInvalid         = "NAME_INVALID"
	CodeNameUnknown         = "NAME_UNKNOWN"
	CodeSizeInvalid         = "SIZE_INVALID"
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeDenied              = "DENIED"
	CodeUnsupported         = "UNSUPPORTED"
	CodeTooManyRequests     = "TOOMANYREQUESTS"
	CodeRangeInvalid        = "RANGE_INVALID"
	CodeUnknown             = "UNKNOWN"
	CodeUnavailable         = "UNAVAILABLE" // as Distribution, for 503
)

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// codeOf is the spec's code for each status protocol.Classify answers.
var codeOf = map[int]string{
	http.StatusTooManyRequests:     CodeTooManyRequests,
	http.StatusRequestTimeout:      CodeBlobUploadInvalid,
	http.StatusServiceUnavailable:  CodeUnavailable, // as Distribution
	http.StatusBadGateway:          CodeUnavailable,
	http.StatusInternalServerError: CodeUnknown,
}

// writeError maps any error to the spec's error JSON. Errors that are not
// *Error are classified by protocol.Classify: internal ones are answered as
// 500 UNKNOWN, their text goes to the log, never to the client.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := protocol.ErrorAs(w, r, err, func(status int, msg string) *Error {
		return &Error{Status: status, Code: codeOf[status], Message: msg}
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	w.WriteHeader(e.Status)
	if r.Method == http.MethodHead {
		return
	}
	json.NewEncoder(w).Encode(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
}

// Disabled answers every request with 404 UNSUPPORTED in the spec's error
// JSON. A server that turns the OCI API off mounts it at the API's prefix,
// so that a client learns the API is not served here instead of reading a
// response it cannot parse.
func Disabled() http.Handler {
	return protocol.Disabled(writeError, newError(http.StatusNotFound, CodeUnsupported, "the OCI registry is disabled on this server"))
}
