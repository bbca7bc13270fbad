package npm

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/internal/protocol"
)

const mediaTypeAbbreviated = "application/vnd.npm.install-v1+json"

// readablePackage checks that the caller may read the route's package, then
// loads it from the cache, or answers 404.
func (h *Handler) readablePackage(q *request) (*cachedDoc, error) {
	return h.readableDoc(q, false)
}

// readableDoc is readablePackage that, for a package of the upstream, asks
// for its abbreviated document when the client did.
func (h *Handler) readableDoc(q *request, abbreviated bool) (*cachedDoc, error) {
	if err := q.Require(q.route.pkg, auth.ActionRead); err != nil {
		return nil, err
	}
	var c *cachedDoc
	up, err := h.fromUplink(q.R.Context(), q.route.pkg)
	if err == nil && up {
		c, err = h.uplinkDoc(q, q.route.pkg, abbreviated)
	} else if err == nil {
		c, err = h.packages.cached(q.R.Context(), q.route.pkg)
	}
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, newError(http.StatusNotFound, "package %s not found", q.route.pkg)
	}
	return c, nil
}

// getPackument serves the full document, or the abbreviated one to clients
// that ask for application/vnd.npm.install-v1+json, gzipped to clients that
// accept it, with an ETag for If-None-Match.
func (h *Handler) getPackument(q *request) error {
	abbreviated := strings.Contains(q.R.Header.Get("Accept"), mediaTypeAbbreviated) && q.R.URL.Query().Get("write") != "true"
	c, err := h.readableDoc(q, abbreviated)
	if err != nil {
		return err
	}
	rd, err := c.render(h.npmRoot(q.R), abbreviated)
	if err != nil {
		return err
	}
	hd := q.W.Header()
	hd.Set("ETag", rd.etag)
	hd.Set("Vary", "Accept, Accept-Encoding")
	hd.Set("Cache-Control", "no-cache")
	ct := "application/json"
	if abbreviated {
		ct = mediaTypeAbbreviated
	}
	hd.Set("Content-Type", ct)
	if protocol.ETagMatches(q.R.Header.Get("If-None-Match"), rd.etag) {
		q.W.WriteHeader(http.StatusNotModified)
		return nil
	}
	body := rd.plain
	if acceptsGzip(q.R) {
		hd.Set("Content-Encoding", "gzip")
		body = rd.gzipped
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	q.W.WriteHeader(http.StatusOK)
	if q.R.Method != http.MethodHead {
		q.W.Write(body)
	}
	return nil
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(params, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// getVersion serves one version's manifest, by version or dist-tag.
func (h *Handler) getVersion(q *request) error {
	c, err := h.readablePackage(q)
	if err != nil {
		return err
	}
	v := q.route.arg
	if tagged := str(c.doc.distTags()[v]); tagged != "" {
		v = tagged
	}
	vm := c.doc.version(v)
	if vm == nil {
		return newError(http.StatusNotFound, "version %s of %s not found", q.route.arg, q.route.pkg)
	}
	writeJSON(q.W, q.R, http.StatusOK, c.versionAt(vm, h.npmRoot(q.R)))
	return nil
}

// getTarball streams a tarball from storage.
func (h *Handler) getTarball(q *request) error {
	if err := q.Require(q.route.pkg, auth.ActionRead); err != nil {
		return err
	}
	if up, err := h.fromUplink(q.R.Context(), q.route.pkg); err != nil {
		return err
	} else if up {
		return h.getUplinkTarball(q)
	}
	c, err := h.readablePackage(q)
	if err != nil {
		return err
	}
	sum, ok := c.files[q.route.arg]
	if !ok {
		return newError(http.StatusNotFound, "tarball %s of %s not found", q.route.arg, q.route.pkg)
	}
	return q.ServeObject(h.store, protocol.Object{
		Key: tarballKey(q.route.pkg, sum),
		// A read racing the collector's verification (gc.go).
		Fallback: quarantineKey(q.route.pkg, sum),
		Headers:  map[string]string{"ETag": `"` + sum[:32] + `"`, "Cache-Control": "public, max-age=31536000, immutable"},
		NotFound: newError(http.StatusNotFound, "tarball %s of %s not found", q.route.arg, q.route.pkg),
	})
}

func (h *Handler) listDistTags(q *request) error {
	c, err := h.readablePackage(q)
	if err != nil {
		return err
	}
	writeJSON(q.W, q.R, http.StatusOK, c.doc.distTags())
	return nil
}
