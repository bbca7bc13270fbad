package npm

import (
	"reflect"
	"testing"

	"github.com/unireg/unireg/registry/auth"
)

func TestReadonlyScopesKeepOnlyReading(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"everything", []string{"*"}, []string{"oci:repository:*:pull", "npm:package:*:read"}},
		{"npm write", []string{"npm:package:@a/*:write"}, []string{"npm:package:@a/*:read"}},
		{"npm delete", []string{"npm:package:x:delete"}, []string{"npm:package:x:read"}},
		{"npm any type", []string{"npm:*:x:*"}, []string{"npm:*:x:read"}},
		{"oci push", []string{"oci:repository:team/*:push"}, []string{"oci:repository:team/*:pull"}},
		{"any protocol, packages", []string{"*:package:x:*"}, []string{"npm:package:x:read"}},
		{"any protocol, repositories", []string{"*:repository:x:*"}, []string{"oci:repository:x:pull"}},
		{"duplicates collapse", []string{"npm:package:x:write", "npm:package:x:delete", "npm:package:x:read"}, []string{"npm:package:x:read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := auth.ParseScopes(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got := readonlyScopes(in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("readonlyScopes(%v) = %v, want %v", tt.in, got, tt.want)
			}
			parsed, err := auth.ParseScopes(got)
			if err != nil {
				t.Fatalf("result does not parse: %v", err)
			}
			for _, a := range []auth.Access{
				{Protocol: auth.ProtocolNPM, Type: auth.TypePackage, Name: "x", Action: auth.ActionWrite},
				{Protocol: auth.ProtocolNPM, Type: auth.TypePackage, Name: "x", Action: auth.ActionDelete},
				{Protocol: auth.ProtocolOCI, Type: auth.TypeRepository, Name: "x", Action: auth.ActionPush},
				{Protocol: auth.ProtocolOCI, Type: auth.TypeRepository, Name: "x", Action: auth.ActionDelete},
			} {
				if parsed.Allows(a) {
					t.Fatalf("read-only scopes %v allow %s", got, a)
				}
			}
		})
	}
}

func TestTokensAuthenticateOnlyTheirOwn(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	tok := hs.createToken("bob", map[string]any{"password": hs.tokens["bob"]})["token"].(string)
	tests := []struct {
		name string
		cred auth.Credentials
		ok   bool
	}{
		{"bearer", auth.Credentials{Bearer: tok}, true},
		{"basic password", auth.Credentials{Username: "anyone", Password: tok}, true},
		{"static store token", auth.Credentials{Bearer: hs.tokens["bob"]}, false},
		{"not a unireg token", auth.Credentials{Bearer: "npm_abcdef"}, false},
		{"empty", auth.Credentials{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := hs.h.Tokens().Authenticate(t.Context(), tt.cred)
			if !tt.ok {
				if err == nil {
					t.Fatalf("authenticated as %+v", id)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != "bob" || id.TokenID != auth.TokenID(hashHex(tok)) || !id.Scopes.Allows(auth.Access{Protocol: auth.ProtocolNPM, Type: auth.TypePackage, Name: "x", Action: auth.ActionWrite}) {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}
