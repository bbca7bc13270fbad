// Package requestlog carries what a protocol handler learns about a request
// to the logging middleware, which writes one line per request and records
// the request's metrics: the route the handler parsed (so that the path is
// parsed once, by the handler that serves it) and the internal error it
// answered the client with a generic message for.
package requestlog

import (
	"context"
	"net/http"
)

// Entry is what the handlers of one request tell the request log.
type Entry struct {
	// Route names the request's route, as the protocol that served it
	// parsed it ("oci_manifest", "npm_tarball"); empty when no protocol
	// handler did.
	Route string
	// Err is the internal error the client was not shown.
	Err error
}

type entryKey struct{}

// WithEntry returns the request with e attached, for SetRoute and Record to
// fill.
func WithEntry(r *http.Request, e *Entry) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), entryKey{}, e))
}

// SetRoute names the request's route, if the request carries an Entry.
func SetRoute(r *http.Request, route string) {
	if e, ok := r.Context().Value(entryKey{}).(*Entry); ok {
		e.Route = route
	}
}

// Record hands err to the request's Entry, if it has one.
func Record(r *http.Request, err error) {
	if e, ok := r.Context().Value(entryKey{}).(*Entry); ok {
		e.Err = err
	}
}
