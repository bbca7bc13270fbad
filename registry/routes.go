package registry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/npm"
	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/requestlog"
)

// routes wires the endpoints into echo. Echo only routes and runs the
// middleware; the protocol handlers are plain http.Handlers, so a program can
// mount them itself.
func (r *Registry) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = r.proxies.clientIP
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		code := http.StatusInternalServerError
		var he *echo.HTTPError
		if errors.As(err, &he) {
			code = he.Code
		}
		if !c.Response().Committed {
			_ = c.JSON(code, map[string]any{"errors": []map[string]string{{"code": "UNKNOWN", "message": http.StatusText(code)}}})
		}
	}
	e.Use(r.observe)

	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", func(c echo.Context) error {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
		defer cancel()
		warnings, err := r.Ready(ctx)
		var body strings.Builder
		for _, w := range warnings {
			body.WriteString("warning: " + w + "\n")
		}
		if err != nil {
			return c.String(http.StatusServiceUnavailable, body.String()+"not ready: "+err.Error()+"\n")
		}
		return c.String(http.StatusOK, body.String()+"ok\n")
	})
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(r.cfg.Metrics, promhttp.HandlerOpts{})))

	// A disabled protocol still answers under its prefix, in its own error
	// format: its clients then say why instead of failing to parse ours.
	// Mounted first, so that an enabled protocol sharing the path wins.
	// The root is never claimed for a disabled protocol: it serves the
	// registry's own routes.
	if p := npm.MountPrefix(r.cfg.NPM.Prefix); r.npm == nil && p != "/" {
		mount(e, p, npm.Disabled())
	}
	if p := oci.MountPrefix(r.cfg.OCI.Prefix); r.oci == nil && p != "" && p != "/" {
		mount(e, p, oci.Disabled())
	}
	if r.npm != nil {
		mount(e, r.npm.Prefix(), r.npm)
	}
	if r.oci != nil {
		mount(e, r.oci.Prefix(), r.oci)
		if r.auth != nil {
			th := echo.WrapHandler(auth.TokenHandler{Service: r.auth, Mirrored: r.oci.CanonicalName})
			e.GET("/token", th)
			e.POST("/token", th)
		}
	}
	return e
}

// mount routes prefix and everything below it to h.
func mount(e *echo.Echo, prefix string, h http.Handler) {
	wrapped := func(c echo.Context) error {
		h.ServeHTTP(copyingResponse{c.Response()}, c.Request())
		return nil
	}
	e.Any(prefix, wrapped)
	e.Any(prefix+"/*", wrapped)
}

// copyingResponse is echo's Response with a ReadFrom that copies in parts
// of copyPart. echo's Response has none, so io.Copy into it
// (http.ServeContent of a blob or a tarball) went through io.Copy's 32 KiB
// buffer: a read and a write per 32 KiB, and reads of a blob the page cache
// does not hold too small for the disk's read-ahead (436 MB/s against 2
// GB/s with 128 KiB reads, dd on this machine). The writes still go through
// echo's Write, which counts them (bytes_out of the request log, the
// metrics).
//
// Not the connection's sendfile: measured on loopback here, a 256 MiB pull
// sent with sendfile ran at 642-756 MB/s, with 32 KiB copies at 866-917,
// with 128 KiB copies at 949-1,031 (docs/performance.md); a server behind a
// real NIC may differ, and may be measured again.
type copyingResponse struct{ *echo.Response }

// copyPart is the size of copyingResponse's copies: 128 KiB was as fast as
// 1 MiB, at an eighth of the memory per download in flight.
const copyPart = 128 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyPart); return &b }}

func (w copyingResponse) ReadFrom(src io.Reader) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{w.Response}, src, *bp)
}

// routeOf names a request's route for metrics and logs: the route the
// protocol handler that served it reported, else one of the registry's own.
func routeOf(req *http.Request, reported string) string {
	if reported != "" {
		return reported
	}
	switch req.URL.Path {
	case "/token":
		return "token"
	case "/healthz", "/readyz":
		return "health"
	case "/metrics":
		return "metrics"
	}
	return "other"
}

// logPath is the request path as logged, without the credentials a path
// can carry: every token- or JWT-shaped segment on any route
// (requestlog.RedactPath), and on `npm logout`, whether or not the npm
// registry is enabled, the token it revokes whatever its shape (a custom
// Authenticator's tokens need not look like ours).
func (r *Registry) logPath(req *http.Request, route string) string {
	if route == "npm_"+npm.RouteLogout {
		return r.npm.Prefix() + "/-/user/token/" + requestlog.Redacted
	}
	if r.npm == nil {
		// No npm handler parsed the path: the disabled one answers
		// without reading it.
		prefix := npm.MountPrefix(r.cfg.NPM.Prefix)
		if rest, ok := strings.CutPrefix(req.URL.EscapedPath(), prefix); ok && npm.RouteOf(rest) == npm.RouteLogout {
			return prefix + "/-/user/token/" + requestlog.Redacted
		}
	}
	return requestlog.RedactPath(req.URL.Path)
}

type countingReader struct {
	io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// observe logs one line per request and records its metrics. It never logs
// headers or query strings, where credentials travel.
func (r *Registry) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		body := &countingReader{ReadCloser: req.Body}
		req.Body = body
		var entry requestlog.Entry
		req = requestlog.WithEntry(req, &entry)
		c.SetRequest(req)

		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := routeOf(req, entry.Route)
		status := c.Response().Status
		elapsed := time.Since(start)
		r.metrics.observe(route, req.Method, status, elapsed, body.n, c.Response().Size)

		level := slog.LevelInfo
		if entry.Err != nil || status >= 500 {
			level = slog.LevelError
		}
		if route == "health" || route == "metrics" {
			level = slog.LevelDebug
		}
		attrs := []slog.Attr{
			slog.String("method", req.Method), slog.String("path", r.logPath(req, route)),
			slog.String("route", route), slog.Int("status", status),
			slog.Int64("bytes_in", body.n), slog.Int64("bytes_out", c.Response().Size),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote", c.RealIP()),
		}
		if entry.Err != nil {
			attrs = append(attrs, slog.String("error", entry.Err.Error()))
		}
		r.cfg.Logger.LogAttrs(req.Context(), level, "request", attrs...)
		return nil
	}
}
