// Package requestlog carries a request's internal error from a protocol
// handler, which answers the client with a generic message, to the logging
// middleware, which writes the real error in the request's log line.
package requestlog

import (
	"context"
	"net/http"
)

type recorderKey struct{}

// WithRecorder returns the request with rec attached; Record calls it.
func WithRecorder(r *http.Request, rec func(error)) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec))
}

// Record hands err to the request's recorder, if it has one.
func Record(r *http.Request, err error) {
	if rec, ok := r.Context().Value(recorderKey{}).(func(error)); ok {
		rec(err)
	}
}
