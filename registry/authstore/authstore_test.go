package authstore_test

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/authstore"
)

const (
	hashA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hashB = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseReadsValidFile(t *testing.T) {
	data, err := os.ReadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := authstore.Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	want := &authstore.File{
		Version: 1,
		Tokens: []authstore.Token{
			{Hash: hashA, User: "ci", Scopes: []string{"oci:repository:team/*:push", "npm:package:@acme/*:write"}},
			{Hash: hashB, User: "reader", Scopes: []string{"*:*:*:pull"}, ExpiresAt: &exp},
		},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Parse =\n%#v\nwant\n%#v", f, want)
	}
	if f.Tokens[1].ExpiresAt == nil || !f.Tokens[1].ExpiresAt.Equal(exp) {
		t.Errorf("expiresAt = %v, want %v", f.Tokens[1].ExpiresAt, exp)
	}
}

func TestParseReadsJSON(t *testing.T) {
	f, err := authstore.Parse([]byte(`{"version":1,"tokens":[{"hash":"` + hashA + `","user":"u","scopes":["*"]}]}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(f.Tokens) != 1 || f.Tokens[0].User != "u" || f.Tokens[0].Hash != hashA {
		t.Errorf("Parse = %+v", f)
	}
}

func TestParseAcceptsStoreWithoutTokens(t *testing.T) {
	f, err := authstore.Parse([]byte("version: 1\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(f.Tokens) != 0 {
		t.Errorf("Tokens = %v, want none", f.Tokens)
	}
}

func TestParseRejectsInvalidFiles(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty file", ``, "version 0 is not supported"},
		{"missing version", "tokens: []\n", "version 0 is not supported"},
		{"version 2", "version: 2\ntokens: []\n", "version 2 is not supported (want 1)"},
		{"version as string", "version: \"1\"\n", "auth store:"},
		{"not a mapping", "- a\n- b\n", "auth store:"},
		{"syntax error", "version: 1\ntokens: [\n", "auth store:"},
		{"hash without algorithm", tok("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "u"), "tokens[0]: hash must be sha256:"},
		{"hash with other algorithm", tok("sha512:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "u"), "tokens[0]: hash must be sha256:"},
		{"hash too short", tok("sha256:aaaa", "u"), "tokens[0]: hash must be sha256:"},
		{"hash one digit short", tok(hashA[:len(hashA)-1], "u"), "tokens[0]: hash must be sha256:"},
		{"hash too long", tok(hashA+"a", "u"), "tokens[0]: hash must be sha256:"},
		{"algorithm in upper case", tok("SHA256:"+hashB[7:], "u"), "tokens[0]: hash must be"},
		{"hash hex in upper case", tok("sha256:"+strings.ToUpper(hashB[7:]), "u"), "tokens[0]: hash must be"},
		{"hash with non-hex", tok("sha256:gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg", "u"), "tokens[0]: hash must be"},
		{"plain token instead of hash", tok("unireg_abc", "u"), "tokens[0]: hash must be"},
		{"empty hash", tok("", "u"), "tokens[0]: hash must be"},
		{"empty user", tok(hashA, ""), "tokens[0]: user is empty"},
		{"duplicate hash", "version: 1\ntokens:\n" +
			"- {hash: " + hashA + ", user: a}\n" +
			"- {hash: " + hashB + ", user: b}\n" +
			"- {hash: " + hashA + ", user: c}\n", "tokens[2]: duplicate hash"},
		{"unknown top-level field", "version: 1\nversoin: 1\ntokens: []\n", "unknown field"},
		{"unknown token field", "version: 1\ntokens:\n- {hash: " + hashA + ", user: a, scope: [\"*\"]}\n", "unknown field"},
		{"duplicate key", "version: 1\nversion: 1\n", "auth store:"},
		{"bad expiry", "version: 1\ntokens:\n- {hash: " + hashA + ", user: a, expiresAt: tomorrow}\n", "auth store:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := authstore.Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse = %+v, want an error containing %q", f, tt.want)
			}
			if f != nil {
				t.Errorf("Parse returned %+v with its error, want nil", f)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func tok(hash, user string) string {
	return "version: 1\ntokens:\n- hash: \"" + hash + "\"\n  user: \"" + user + "\"\n  scopes: [\"*\"]\n"
}

func TestMarshalThenParseRoundTrips(t *testing.T) {
	exp := time.Date(2031, 6, 7, 8, 9, 10, 123000000, time.UTC)
	in := &authstore.File{
		Version: 1,
		Tokens: []authstore.Token{
			{Hash: hashA, User: "ci", Scopes: []string{"oci:repository:team/*:push", "*"}},
			{Hash: hashB, User: "user: with colon", Scopes: []string{}, ExpiresAt: &exp},
		},
	}
	data, err := authstore.Marshal(in)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	out, err := authstore.Parse(data)
	if err != nil {
		t.Fatalf("Parse(Marshal(f)): %v\n%s", err, data)
	}
	if len(out.Tokens) != 2 || out.Tokens[1].ExpiresAt == nil || !out.Tokens[1].ExpiresAt.Equal(exp) {
		t.Fatalf("round trip lost the expiry:\n%s", data)
	}
	// Compare instants, not time.Time internals.
	out.Tokens[1].ExpiresAt, in.Tokens[1].ExpiresAt = nil, nil
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip =\n%#v\nwant\n%#v\nyaml:\n%s", out, in, data)
	}
}

func TestMarshalFillsVersion(t *testing.T) {
	data, err := authstore.Marshal(&authstore.File{})
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	f, err := authstore.Parse(data)
	if err != nil {
		t.Fatalf("Parse(Marshal(empty)): %v\n%s", err, data)
	}
	if f.Version != authstore.Version {
		t.Errorf("Version = %d, want %d", f.Version, authstore.Version)
	}
}

func TestTokenIDIsTheFirst12HexDigitsOfTheHash(t *testing.T) {
	hash := authstore.HashToken("test")
	if got, want := authstore.TokenID(hash), "9f86d081884c"; got != want {
		t.Errorf("TokenID(%s) = %q, want %q", hash, got, want)
	}
	if got := authstore.TokenID(strings.TrimPrefix(hash, "sha256:")); got != "9f86d081884c" {
		t.Errorf("TokenID of the bare hex = %q, want the same id", got)
	}
}
