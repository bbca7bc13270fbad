package oci

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// FuzzChallenge: whatever path an anonymous client asks for, and whatever
// realm the request makes (the registry builds it from X-Forwarded-Host),
// a 401 carries exactly one WWW-Authenticate header, a well-formed RFC 7235
// Bearer challenge whose realm and service read back as configured, whose
// scope names the routed repository with known actions, and which has no
// other parameter: neither a name nor a forwarded host can add one.
func FuzzChallenge(f *testing.F) {
	for _, s := range []struct {
		method byte
		path   string
		realm  string
	}{
		{0, "team/app/manifests/latest", "https://registry.example/token"},
		{2, "team/app/manifests/v1", "https://registry.example/token"},
		{3, "a/blobs/uploads/", "http://h/token"},
		{4, "a/blobs/sha256:" + strings.Repeat("0", 64), "http://h/token"},
		{0, "a/tags/list", `http://evil",error="invalid_token/token`},
		{0, "", `http://h\"/token`},
		{0, "_catalog", "http://h/token"},
		{0, `a"b/manifests/x`, "http://h/token"},
		{5, "a/blobs/uploads/x", "http://h/token, Basic realm=x"},
	} {
		f.Add(s.method, s.path, s.realm)
	}
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch}
	f.Fuzz(func(t *testing.T, method byte, path, realm string) {
		if !validHeaderValue(realm) {
			return // net/http refuses such a request header, so no realm holds it
		}
		h, _ := New(Options{
			Storage: inmemory.New(), Gate: auth.NewService(auth.ServiceOptions{}), Service: "unireg",
			Realm: func(*http.Request) string { return realm },
		})
		r := httptest.NewRequest(methods[int(method)%len(methods)], "/v2/", http.NoBody)
		r.URL.Path = "/v2/" + path
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		values := w.Header().Values("WWW-Authenticate")
		if w.Code != http.StatusUnauthorized {
			if len(values) > 0 {
				t.Fatalf("%s /v2/%s: status %d with a challenge %q", r.Method, path, w.Code, values)
			}
			return
		}
		if len(values) != 1 {
			t.Fatalf("%s /v2/%s: %d WWW-Authenticate headers: %q", r.Method, path, len(values), values)
		}
		scheme, params, err := parseChallenge(values[0])
		if err != nil {
			t.Fatalf("%s /v2/%s: challenge %q: %v", r.Method, path, values[0], err)
		}
		if scheme != "Bearer" || params["realm"] != realm || params["service"] != "unireg" {
			t.Fatalf("challenge %q reads as %s %q, want realm %q", values[0], scheme, params, realm)
		}
		for k, v := range params {
			switch k {
			case "realm", "service":
			case "error":
				if v != "insufficient_scope" {
					t.Fatalf("challenge %q: error %q", values[0], v)
				}
			case "scope":
				if rt := parsePath("/" + path); rt.kind != RouteCatalog || v != "registry:catalog:*" {
					checkChallengeScope(t, v, rt.name)
				}
			default:
				t.Fatalf("challenge %q has parameter %q", values[0], k)
			}
		}
	})
}

// checkChallengeScope checks a challenge's scope is
// repository:<the routed name>:<known actions>.
func checkChallengeScope(t *testing.T, scope, routed string) {
	t.Helper()
	rest, ok := strings.CutPrefix(scope, "repository:")
	name, actions, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || name != routed || !ValidName(name) {
		t.Fatalf("scope %q, routed name %q", scope, routed)
	}
	for _, a := range strings.Split(actions, ",") {
		if a != auth.ActionPull && a != auth.ActionPush && a != auth.ActionDelete {
			t.Fatalf("scope %q has action %q", scope, a)
		}
	}
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseChallenge is a strict reader of one RFC 7235 challenge with
// auth-params (no token68):
//
//	challenge  = auth-scheme 1*SP auth-param *( OWS "," OWS auth-param )
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//
// It refuses anything else, and a parameter given twice.
func parseChallenge(v string) (scheme string, params map[string]string, err error) {
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !isToken(scheme) {
		return "", nil, fmt.Errorf("no auth-scheme")
	}
	params = map[string]string{}
	rest = strings.TrimLeft(rest, " ")
	for {
		i := 0
		for i < len(rest) && isTchar(rest[i]) {
			i++
		}
		name := strings.ToLower(rest[:i])
		rest = strings.TrimLeft(rest[i:], " \t")
		if name == "" || !strings.HasPrefix(rest, "=") {
			return "", nil, fmt.Errorf("expected name= at %q", rest)
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		var value string
		if value, rest, err = tokenOrQuoted(rest); err != nil {
			return "", nil, err
		}
		if _, dup := params[name]; dup {
			return "", nil, fmt.Errorf("parameter %q twice", name)
		}
		params[name] = value
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return scheme, params, nil
		}
		if rest[0] != ',' {
			return "", nil, fmt.Errorf("expected , at %q", rest)
		}
		rest = strings.TrimLeft(rest[1:], " \t")
	}
}

func tokenOrQuoted(s string) (value, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		i := 0
		for i < len(s) && isTchar(s[i]) {
			i++
		}
		if i == 0 {
			return "", "", fmt.Errorf("expected a value at %q", s)
		}
		return s[:i], s[i:], nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], nil
		case c == '\\':
			if i+1 == len(s) || !qdtextOrQuotable(s[i+1], true) {
				return "", "", fmt.Errorf("bad quoted-pair in %q", s)
			}
			i++
			b.WriteByte(s[i])
		case qdtextOrQuotable(c, false):
			b.WriteByte(c)
		default:
			return "", "", fmt.Errorf("byte %#x in a quoted-string", c)
		}
	}
	return "", "", fmt.Errorf("unterminated quoted-string %q", s)
}

// qdtextOrQuotable: qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E /
// obs-text; after a backslash also DQUOTE and backslash.
func qdtextOrQuotable(c byte, quoted bool) bool {
	if c == '"' || c == '\\' {
		return quoted
	}
	return c == '\t' || c >= ' ' && c != 0x7f
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return s != ""
}

func isTchar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
