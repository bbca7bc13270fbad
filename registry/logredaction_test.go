package registry

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// A credential can reach any path: `npm logout` puts its token there, and a
// confused client or a script may put one anywhere (an unknown route, a
// package or repository name, a tag). Every token-shaped or JWT-shaped path
// segment is redacted in the request log, whatever the route, also when it
// arrives percent-encoded.
func TestRequestLogRedactsCredentialsWhereverTheyAreInThePath(t *testing.T) {
	const secret = "thisIsTheSecretPartOfTheToken0000000000000" // 42 base62 characters
	token := auth.TokenPrefix + secret + "X"
	const jwtPayload = "eyJzdWIiOiJzb21lb25lIn0"
	jwt := "eyJhbGciOiJIUzI1NiJ9." + jwtPayload + ".c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	encodedJWT := "%65yJhbGciOiJIUzI1NiJ9%2E" + jwtPayload + "%2Ec2lnbmF0dXJlLXNpZ25hdHVyZQ"
	cases := []struct{ method, target, want string }{
		{"DELETE", "/npm/-/user/token/" + token, "/npm/-/user/token/[redacted]"},
		{"DELETE", "/npm/-/npm/v1/tokens/token/" + token, "/npm/-/npm/v1/tokens/token/[redacted]"},
		{"GET", "/npm/" + token, "/npm/[redacted]"},
		{"GET", "/npm/@acme%2f" + token, "/npm/@acme/[redacted]"},
		{"GET", "/npm/pkg/-/" + token + ".tgz", "/npm/pkg/-/[redacted]"},
		{"GET", "/npm/%75" + strings.TrimPrefix(token, "u"), "/npm/[redacted]"},
		{"GET", "/v2/" + token + "/manifests/latest", "/v2/[redacted]/manifests/latest"},
		{"GET", "/v2/library/app/manifests/" + jwt, "/v2/library/app/manifests/[redacted]"},
		{"GET", "/v2/library/app/manifests/" + encodedJWT, "/v2/library/app/manifests/[redacted]"},
		{"GET", "/token/" + token, "/token/[redacted]"},
		{"POST", "/some/unknown/" + token + "/route", "/some/unknown/[redacted]/route"},
		{"GET", "/some/unknown/" + jwt, "/some/unknown/[redacted]"},
		{"GET", "/Bearer%20" + token, "/[redacted]"},
		// Nothing else is touched.
		{"GET", "/v2/library/eyjunk/manifests/sha256:0123", "/v2/library/eyjunk/manifests/sha256:0123"},
		{"GET", "/npm/@acme%2funireg-client", "/npm/@acme/unireg-client"},
	}
	for _, tc := range cases {
		var logs syncLog
		reg, err := New(context.Background(), Config{Storage: inmemory.New(), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		reg.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.target, nil))
		reg.Close()
		lines := logs.requestLines(t)
		if len(lines) != 1 {
			t.Fatalf("%s %s: %d request lines", tc.method, tc.target, len(lines))
		}
		if got := lines[0]["path"]; got != tc.want {
			t.Errorf("%s %s logged path %q, want %q", tc.method, tc.target, got, tc.want)
		}
		if all := logs.buf.String(); strings.Contains(all, secret) || strings.Contains(all, jwtPayload) {
			t.Errorf("%s %s: a credential reached the log: %s", tc.method, tc.target, all)
		}
	}
}
