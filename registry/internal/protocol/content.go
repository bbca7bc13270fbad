package protocol

import (
	"errors"

	"github.com/unireg/unireg/registry/storage"
)

// Object is stored content a protocol serves as it is stored: a blob, a
// tarball.
type Object struct {
	// Key is where the content is stored.
	Key string
	// Headers are set on the answer when the object exists (ETag,
	// Cache-Control, the protocol's own); it is application/octet-stream.
	Headers map[string]string
	// Fallback, when set, is served when there is no object at Key: where
	// the garbage collector holds content it is verifying (a quarantine
	// key), so a read racing the verification still finds it.
	Fallback string
	// NotFound is the answer when there is no object at Key (nor at
	// Fallback).
	NotFound error
}

// ServeObject streams o from store to the caller; storage.ServeContent
// answers ranges and conditional requests.
func (c *Call) ServeObject(store storage.Driver, o Object) error {
	obj, err := store.Open(c.R.Context(), o.Key)
	if errors.Is(err, storage.ErrNotFound) && o.Fallback != "" {
		obj, err = store.Open(c.R.Context(), o.Fallback)
		if errors.Is(err, storage.ErrNotFound) {
			// Moved back between the two looks.
			obj, err = store.Open(c.R.Context(), o.Key)
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		return o.NotFound
	}
	if err != nil {
		return err
	}
	defer obj.Close()
	hd := c.W.Header()
	for k, v := range o.Headers {
		hd.Set(k, v)
	}
	hd.Set("Content-Type", "application/octet-stream")
	storage.ServeContent(c.W, c.R, obj)
	return nil
}
