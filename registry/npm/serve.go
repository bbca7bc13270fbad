package npm

import (
	"io"
	"net/http"
	"os"

	"github.com/unireg/unireg/registry/storage"
)

// serveObject streams an object with Range and conditional request support;
// a filesystem object goes out as its *os.File, so the kernel can sendfile.
func serveObject(w http.ResponseWriter, r *http.Request, obj storage.Object) {
	var content io.ReadSeeker = obj
	if f, ok := obj.(interface{ OSFile() *os.File }); ok {
		content = f.OSFile()
	}
	http.ServeContent(w, r, "", obj.Info().ModTime, content)
}
