package storage

import (
	"io"
	"net/http"
	"os"
)

// ServeContent streams an object over HTTP with Range and conditional
// request support (http.ServeContent). An object backed by a local file is
// handed over as its *os.File, so the kernel can sendfile it.
func ServeContent(w http.ResponseWriter, r *http.Request, obj Object) {
	var content io.ReadSeeker = obj
	if f, ok := obj.(interface{ OSFile() *os.File }); ok {
		content = f.OSFile()
	}
	http.ServeContent(w, r, "", obj.Info().ModTime, content)
}
