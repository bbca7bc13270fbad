package auth

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/unireg/unireg/registry/authstore"
)

// The hot functions of authentication and authorisation, measured:
//
//	go test -run '^$' -bench . -benchmem ./registry/auth/

func BenchmarkScopesAllows(b *testing.B) {
	var list []string
	for i := range 20 {
		list = append(list, fmt.Sprintf("oci:repository:team-%d/*:push", i), fmt.Sprintf("npm:package:@scope-%d/*:write", i))
	}
	scopes, err := ParseScopes(list)
	if err != nil {
		b.Fatal(err)
	}
	hit := Access{Protocol: ProtocolOCI, Type: TypeRepository, Name: "team-19/app/backend", Action: ActionPull}
	miss := Access{Protocol: ProtocolOCI, Type: TypeRepository, Name: "teamx/app", Action: ActionPull}
	b.ReportAllocs()
	for b.Loop() {
		if !scopes.Allows(hit) || scopes.Allows(miss) {
			b.Fatal("wrong decision")
		}
	}
}

func BenchmarkParseScope(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseScope("oci:repository:team/app/*:push"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTokenStoreAuthenticate looks an opaque token up among 10,000.
func BenchmarkTokenStoreAuthenticate(b *testing.B) {
	f := &authstore.File{Version: 1}
	var token string
	for i := range 10000 {
		t, err := authstore.NewToken()
		if err != nil {
			b.Fatal(err)
		}
		token = t
		f.Tokens = append(f.Tokens, authstore.Token{Hash: authstore.HashToken(t), User: fmt.Sprint("user-", i), Scopes: []string{"oci:repository:team/*:push"}})
	}
	store, err := NewStaticTokenStore(f)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Authenticate(ctx, Credentials{Username: "u", Password: token}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchIssuer(b *testing.B) (*JWTIssuer, string) {
	iss, err := NewJWTIssuer(JWTIssuerOptions{Key: make([]byte, 32), Service: "unireg"})
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := iss.Issue("ci", []ResourceActions{{Type: TypeRepository, Name: "team/app", Actions: []string{"pull", "push"}}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return iss, tok
}

// BenchmarkJWTVerify is the full verification: signature, claims, scopes.
func BenchmarkJWTVerify(b *testing.B) {
	iss, tok := benchIssuer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := iss.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdentifyBearer is what each request with a JWT pays: the
// Authorization header read and the identity found (cached after the first
// verification).
func BenchmarkIdentifyBearer(b *testing.B) {
	iss, tok := benchIssuer(b)
	svc := NewService(ServiceOptions{Issuer: iss})
	r, _ := http.NewRequest(http.MethodGet, "/v2/team/app/manifests/v1", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	a := Access{Protocol: ProtocolOCI, Type: TypeRepository, Name: "team/app", Action: ActionPull}
	b.ReportAllocs()
	for b.Loop() {
		id, err := svc.Identify(r)
		if err != nil || !svc.Allowed(r.Context(), id, a) {
			b.Fatal("refused", err)
		}
	}
}
