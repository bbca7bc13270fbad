package requestlog

import (
	"regexp"
	"strings"

	"github.com/unireg/unireg/registry/authstore"
)

// Redacted replaces what RedactPath takes out.
const Redacted = "[redacted]"

// jwtShaped matches a compact JWS anywhere in a segment: three base64url
// parts, the first a JSON header (so "eyJ", the encoding of `{"`), the
// signature possibly empty (alg none, which a client may still send).
var jwtShaped = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)

// RedactPath returns a request path (decoded, as in URL.Path) with every
// segment that holds a credential replaced by Redacted: a segment holding a
// token (authstore.TokenPrefix and what follows) or a JWT. The whole segment
// goes, so what surrounds the credential (".tgz", "Bearer ") cannot carry
// a part of it; the route does not matter, since a confused client or a
// script can put a credential into any path, not only `npm logout`.
func RedactPath(path string) string {
	if !strings.Contains(path, authstore.TokenPrefix) && !strings.Contains(path, "eyJ") {
		return path
	}
	segments := strings.Split(path, "/")
	for i, s := range segments {
		if strings.Contains(s, authstore.TokenPrefix) || jwtShaped.MatchString(s) {
			segments[i] = Redacted
		}
	}
	return strings.Join(segments, "/")
}
