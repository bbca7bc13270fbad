package registry

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/unireg/unireg/registry/storage/inmemory"
)

// Every request's log line and metrics name its route: the protocol's own
// name for the call when a protocol handler served it, else the registry's.
// A disabled protocol's paths are "other", and `npm logout` is redacted
// whether or not the npm registry is enabled.
func TestRequestLogNamesTheRouteTheHandlerServed(t *testing.T) {
	cases := []struct {
		disableNPM       bool
		method, target   string
		wantRoute, wantP string
	}{
		{false, "GET", "/v2/", "oci_base", "/v2/"},
		{false, "GET", "/v2/a/b/manifests/latest", "oci_manifest", "/v2/a/b/manifests/latest"},
		{false, "PATCH", "/v2/a/blobs/uploads/x", "oci_blob_upload", "/v2/a/blobs/uploads/x"},
		{false, "GET", "/v2/UPPER/tags/list", "oci_tags", "/v2/UPPER/tags/list"},
		{false, "GET", "/v2/a/nothing", "oci_unknown", "/v2/a/nothing"},
		{false, "GET", "/npm/@acme%2fx", "npm_packument", "/npm/@acme/x"},
		{false, "GET", "/npm/x/-/x-1.0.0.tgz", "npm_tarball", "/npm/x/-/x-1.0.0.tgz"},
		{false, "GET", "/npm/Bad%20Name", "npm_packument", "/npm/Bad Name"},
		{false, "DELETE", "/npm/-/user/token/opaque", "npm_logout", "/npm/-/user/token/[redacted]"},
		{true, "GET", "/npm/x", "other", "/npm/x"},
		{true, "DELETE", "/npm/-/user/token/opaque", "other", "/npm/-/user/token/[redacted]"},
		{false, "GET", "/token", "token", "/token"},
		{false, "GET", "/healthz", "health", "/healthz"},
		{false, "GET", "/elsewhere", "other", "/elsewhere"},
	}
	for _, tc := range cases {
		var logs syncLog
		cfg := Config{Storage: inmemory.New(), Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		cfg.NPM.Disabled = tc.disableNPM
		reg, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		reg.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.target, nil))
		reg.Close()
		lines := logs.requestLines(t)
		if len(lines) != 1 {
			t.Fatalf("%s %s: %d request lines", tc.method, tc.target, len(lines))
		}
		if got := lines[0]["route"]; got != tc.wantRoute {
			t.Errorf("%s %s (npm disabled %v): route %q, want %q", tc.method, tc.target, tc.disableNPM, got, tc.wantRoute)
		}
		if got := lines[0]["path"]; got != tc.wantP {
			t.Errorf("%s %s (npm disabled %v): path %q, want %q", tc.method, tc.target, tc.disableNPM, got, tc.wantP)
		}
	}
}
