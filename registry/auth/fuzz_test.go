package auth

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzParseScope: a parsed scope prints back to a string that parses to
// the same scope, and a scope without `*` in its name matches exactly that
// name.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"*", "oci:repository:team/*:push", "npm:package:@acme/*:write", "oci:repository:a:pull",
		"npm:package:x:*", "oci::a:pull", "oci:repository:a", "a:b:c:d:e", "oci:repository:**:pull", "npm:package:@a/b:read"} {
		f.Add(s, "team/app")
	}
	f.Fuzz(func(t *testing.T, s, name string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		again, err := ParseScope(sc.String())
		if err != nil || again != sc {
			t.Fatalf("%q parsed to %+v, printed %q, parsed again to %+v (%v)", s, sc, sc.String(), again, err)
		}
		if !strings.Contains(sc.Name, "*") && sc.Protocol != "*" && sc.Type != "*" && sc.Action != "*" {
			a := Access{Protocol: sc.Protocol, Type: sc.Type, Name: name, Action: sc.Action}
			if sc.Allows(a) != (name == sc.Name) {
				t.Fatalf("%q allows %q: %v", s, name, sc.Allows(a))
			}
		}
	})
}

// FuzzCredentialsFrom: any Authorization header gives credentials that are
// malformed or carry what was sent; only no header, or Basic with an empty
// user and password, reads as no credentials.
func FuzzCredentialsFrom(f *testing.F) {
	for _, s := range []string{"", "Basic dTpw", "Basic !!!", "Bearer abc", "Bearer ", "bearer x", "Digest x", "Basic Og==", "Basic dTo="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		c := CredentialsFrom(r)
		u, p, basic := r.BasicAuth()
		emptyBasic := basic && u == "" && p == ""
		if r.Header.Get("Authorization") != "" && c.Empty() && !emptyBasic {
			t.Fatalf("header %q read as no credentials", header)
		}
		if c.Malformed && (c.Password != "" || c.Bearer != "") {
			t.Fatalf("header %q: malformed yet with a secret", header)
		}
	})
}
