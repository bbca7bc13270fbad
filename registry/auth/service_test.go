package auth

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// userPassAuthenticator accepts one user and password, standing in for a
// program's own user database.
type userPassAuthenticator struct {
	user, pass string
	scopes     Scopes
	calls      int
}

func (a *userPassAuthenticator) Authenticate(_ context.Context, c Credentials) (*Identity, error) {
	a.calls++
	if c.Username == a.user && c.Password == a.pass {
		return &Identity{Subject: a.user, Scopes: a.scopes, TokenID: "custom"}, nil
	}
	return nil, ErrInvalidCredentials
}

// recordingAuthorizer answers every access with allow and records what it
// was asked.
type recordingAuthorizer struct {
	allow bool
	asked []Access
}

func (a *recordingAuthorizer) Authorize(_ context.Context, _ *Identity, acc Access) bool {
	a.asked = append(a.asked, acc)
	return a.allow
}

func mustScopes(t *testing.T, list ...string) Scopes {
	t.Helper()
	ss, err := ParseScopes(list)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func TestCredentialsFrom(t *testing.T) {
	tests := []struct {
		name   string
		header string
		basic  *[2]string
		want   Credentials
	}{
		{"no header", "", nil, Credentials{}},
		{"basic", "", &[2]string{"alice", "secret"}, Credentials{Username: "alice", Password: "secret"}},
		{"basic with colon in password", "", &[2]string{"alice", "a:b"}, Credentials{Username: "alice", Password: "a:b"}},
		{"bearer", "Bearer abc.def.ghi", nil, Credentials{Bearer: "abc.def.ghi"}},
		{"bearer in lower case", "bearer tok", nil, Credentials{Bearer: "tok"}},
		{"bearer with extra space", "Bearer   tok  ", nil, Credentials{Bearer: "tok"}},
		{"malformed basic", "Basic !!!", nil, Credentials{Malformed: true}},
		{"unknown scheme", "Digest x=y", nil, Credentials{Malformed: true}},
		{"scheme only", "Bearer", nil, Credentials{Malformed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.basic != nil {
				r.SetBasicAuth(tt.basic[0], tt.basic[1])
			}
			got := CredentialsFrom(r)
			if got != tt.want {
				t.Errorf("CredentialsFrom = %+v, want %+v", got, tt.want)
			}
			if got.Empty() != (tt.want == Credentials{}) {
				t.Errorf("Empty() = %v for %+v", got.Empty(), got)
			}
		})
	}
}

func TestIdentifyWithoutCredentialsIsAnonymous(t *testing.T) {
	authn := &userPassAuthenticator{user: "u", pass: "p"}
	s := NewService(ServiceOptions{Authenticator: authn})
	id, err := s.Identify(httptest.NewRequest("GET", "/v2/", nil))
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	if !id.Anonymous || id.Subject != "" || len(id.Scopes) != 0 || id.Issued() {
		t.Errorf("identity = %+v, want a bare anonymous one", id)
	}
	if authn.calls != 0 {
		t.Errorf("Authenticator called %d times for a request without credentials", authn.calls)
	}
}

func TestIdentifyRefusesWrongCredentialsInsteadOfFallingBackToAnonymous(t *testing.T) {
	issuer := newTestIssuer(t, "unireg", nil)
	tests := []struct {
		name  string
		authn Authenticator
		creds Credentials
	}{
		{"no authenticator", nil, Credentials{Username: "u", Password: "p"}},
		{"custom authenticator, wrong password", &userPassAuthenticator{user: "u", pass: "p"}, Credentials{Username: "u", Password: "x"}},
		{"user name only", &userPassAuthenticator{user: "u", pass: ""}, Credentials{Username: "nobody"}},
		{"invalid JWT", &userPassAuthenticator{user: "u", pass: "p"}, Credentials{Bearer: "aaa.bbb.ccc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewService(ServiceOptions{Authenticator: tt.authn, Issuer: issuer})
			id, err := s.IdentifyCredentials(context.Background(), tt.creds)
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("IdentifyCredentials = %+v, %v; want ErrInvalidCredentials", id, err)
			}
			if id != nil {
				t.Errorf("identity %+v returned with the error", id)
			}
		})
	}
}

func TestIdentifyUsesCustomAuthenticatorForNonJWTCredentials(t *testing.T) {
	authn := &userPassAuthenticator{user: "alice", pass: "unireg_secret", scopes: mustScopes(t, "oci:repository:foo:pull")}
	s := NewService(ServiceOptions{Authenticator: authn, Issuer: newTestIssuer(t, "unireg", nil)})
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.SetBasicAuth("alice", "unireg_secret")
	id, err := s.Identify(r)
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	if id.Subject != "alice" || id.TokenID != "custom" || id.Issued() || id.Anonymous {
		t.Errorf("identity = %+v, want alice from the custom authenticator", id)
	}
	if authn.calls != 1 {
		t.Errorf("Authenticator calls = %d, want 1", authn.calls)
	}
}

func TestIdentifySendsOpaqueBearerTokensToAuthenticator(t *testing.T) {
	tok := newStoreToken(t, "ci", "oci:repository:foo:push")
	store := openStore(t, writeStore(t, tok), TokenStoreOptions{})
	s := NewService(ServiceOptions{Authenticator: store, Issuer: newTestIssuer(t, "unireg", nil)})
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.Header.Set("Authorization", "Bearer "+tok.token)
	id, err := s.Identify(r)
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	if id.Subject != "ci" || id.Issued() {
		t.Errorf("identity = %+v, want ci from the token store", id)
	}
}

func TestIdentifyWithoutIssuerSendsJWTShapedBearerToAuthenticator(t *testing.T) {
	authn := &bearerAuthenticator{token: "x.y.z"}
	s := NewService(ServiceOptions{Authenticator: authn})
	id, err := s.IdentifyCredentials(context.Background(), Credentials{Bearer: "x.y.z"})
	if err != nil {
		t.Fatalf("IdentifyCredentials: %v", err)
	}
	if id.Subject != "oidc-user" {
		t.Errorf("identity = %+v, want the authenticator's", id)
	}
}

type bearerAuthenticator struct{ token string }

func (a *bearerAuthenticator) Authenticate(_ context.Context, c Credentials) (*Identity, error) {
	if c.Bearer == a.token {
		return &Identity{Subject: "oidc-user"}, nil
	}
	return nil, ErrInvalidCredentials
}

func TestAllowedGrantsAnonymousScopesToEveryone(t *testing.T) {
	issuer := newTestIssuer(t, "unireg", nil)
	jwtToken, _, err := issuer.Issue("bob", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	authz := &recordingAuthorizer{allow: false}
	s := NewService(ServiceOptions{
		Authenticator: &userPassAuthenticator{user: "u", pass: "p"},
		Authorizer:    authz,
		Anonymous:     mustScopes(t, "oci:repository:public/*:pull"),
		Issuer:        issuer,
	})
	ctx := context.Background()
	anon, err := s.IdentifyCredentials(ctx, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	user, err := s.IdentifyCredentials(ctx, Credentials{Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := s.IdentifyCredentials(ctx, Credentials{Bearer: jwtToken})
	if err != nil {
		t.Fatal(err)
	}

	ids := []struct {
		name string
		id   *Identity
	}{{"nil", nil}, {"anonymous", anon}, {"user", user}, {"issued JWT without access", issued}}
	for _, who := range ids {
		t.Run(who.name, func(t *testing.T) {
			if !s.Allowed(ctx, who.id, oci("public/img", "pull")) {
				t.Error("anonymous grant public/*:pull refused")
			}
			if s.Allowed(ctx, who.id, oci("public/img", "push")) {
				t.Error("push allowed though only anonymous pull is granted and the authorizer refuses")
			}
			if s.Allowed(ctx, who.id, oci("private/img", "pull")) {
				t.Error("pull outside the anonymous grant allowed")
			}
		})
	}
	if !slices.Equal(s.Anonymous().Strings(), []string{"oci:repository:public/*:pull"}) {
		t.Errorf("Anonymous() = %v", s.Anonymous().Strings())
	}
}

func TestAllowedNeverAsksAuthorizerAboutAnonymousRequests(t *testing.T) {
	authz := &recordingAuthorizer{allow: true}
	s := NewService(ServiceOptions{Authorizer: authz})
	for _, id := range []*Identity{nil, {Anonymous: true}} {
		if s.Allowed(context.Background(), id, oci("foo", "pull")) {
			t.Errorf("Allowed(%+v) = true without an anonymous grant", id)
		}
	}
	if len(authz.asked) != 0 {
		t.Errorf("Authorizer asked %v for anonymous requests", authz.asked)
	}
}

func TestIssuedJWTMayDoExactlyItsAccessWhateverTheAuthorizerSays(t *testing.T) {
	issuer := newTestIssuer(t, "unireg", nil)
	token, _, err := issuer.Issue("alice", []ResourceActions{
		{Type: "repository", Name: "foo", Actions: []string{"pull"}},
		{Type: "repository", Name: "bar", Actions: []string{}},
	}, []string{"team/*"})
	if err != nil {
		t.Fatal(err)
	}
	authz := &recordingAuthorizer{allow: true}
	s := NewService(ServiceOptions{Authorizer: authz, Issuer: issuer})
	r := httptest.NewRequest("GET", "/v2/foo/manifests/latest", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	id, err := s.Identify(r)
	if err != nil {
		t.Fatalf("Identify: %v", err)
	}
	if !id.Issued() || id.Subject != "alice" {
		t.Fatalf("identity = %+v, want issued for alice", id)
	}

	tests := []struct {
		access Access
		want   bool
	}{
		{oci("foo", "pull"), true},
		{oci("foo", "push"), false},
		{oci("foo", "delete"), false},
		{oci("bar", "pull"), false},
		{oci("team/x", "pull"), false}, // mountable authorises nothing
		{oci("other", "pull"), false},
		{npm("foo", "read"), false},
	}
	for _, tt := range tests {
		t.Run(tt.access.String(), func(t *testing.T) {
			if got := s.Allowed(context.Background(), id, tt.access); got != tt.want {
				t.Errorf("Allowed(%s) = %v, want %v", tt.access, got, tt.want)
			}
		})
	}
	if len(authz.asked) != 0 {
		t.Errorf("Authorizer asked %v about an issued JWT", authz.asked)
	}

	if !id.MayMountFrom("team/x") {
		t.Error("MayMountFrom(team/x) = false for a JWT with mountable team/*")
	}
	if id.MayMountFrom("teamx/y") || id.MayMountFrom("foo") {
		t.Error("MayMountFrom allowed a repository outside the mountable patterns")
	}
}

func TestMayMountFromIsFalseForNonIssuedIdentities(t *testing.T) {
	id := &Identity{Subject: "u", Scopes: mustScopes(t, "*"), mountable: mustScopes(t, "*")}
	if id.MayMountFrom("anything") {
		t.Error("MayMountFrom = true for an identity not from an issued JWT")
	}
}

// acceptAll takes any credentials, like a misconfigured or very lenient
// Authenticator would.
type acceptAll struct{ calls int }

func (a *acceptAll) Authenticate(context.Context, Credentials) (*Identity, error) {
	a.calls++
	return &Identity{Subject: "anyone", Scopes: Scopes{{"*", "*", "*", "*"}}}, nil
}

func TestIdentifyRefusesBadJWTWithoutAskingAuthenticator(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	issuer := newTestIssuer(t, "unireg", clock)
	expired, _, err := issuer.Issue("alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(time.Hour)
	authn := &acceptAll{}
	s := NewService(ServiceOptions{Authenticator: authn, Issuer: issuer})
	for _, tok := range []string{expired, tamperPayload(t, expired), "aaa.bbb.ccc"} {
		id, err := s.IdentifyCredentials(context.Background(), Credentials{Bearer: tok})
		if !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("IdentifyCredentials(%.20s...) = %+v, %v; want ErrInvalidCredentials", tok, id, err)
		}
	}
	if authn.calls != 0 {
		t.Errorf("Authenticator asked %d times about JWTs the issuer refused", authn.calls)
	}
}

func TestAllowedAsksCustomAuthorizerForNonJWTIdentities(t *testing.T) {
	authn := &userPassAuthenticator{user: "u", pass: "p", scopes: mustScopes(t, "oci:repository:foo:pull")}
	for _, allow := range []bool{true, false} {
		authz := &recordingAuthorizer{allow: allow}
		s := NewService(ServiceOptions{Authenticator: authn, Authorizer: authz, Issuer: newTestIssuer(t, "unireg", nil)})
		id, err := s.IdentifyCredentials(context.Background(), Credentials{Username: "u", Password: "p"})
		if err != nil {
			t.Fatal(err)
		}
		// The authorizer decides, whatever the identity's scopes say.
		for _, a := range []Access{oci("foo", "pull"), oci("bar", "delete")} {
			if got := s.Allowed(context.Background(), id, a); got != allow {
				t.Errorf("authorizer says %v: Allowed(%s) = %v", allow, a, got)
			}
		}
		if !slices.Equal(authz.asked, []Access{oci("foo", "pull"), oci("bar", "delete")}) {
			t.Errorf("Authorizer asked %v", authz.asked)
		}
	}
}

func TestDefaultAuthorizerGrantsIdentityScopes(t *testing.T) {
	tok := newStoreToken(t, "ci", "oci:repository:team/*:push")
	store := openStore(t, writeStore(t, tok), TokenStoreOptions{})
	s := NewService(ServiceOptions{Authenticator: store})
	id, err := s.IdentifyCredentials(context.Background(), Credentials{Username: "ci", Password: tok.token})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		access Access
		want   bool
	}{
		{oci("team/a", "push"), true},
		{oci("team/a", "pull"), true},
		{oci("team/a", "delete"), false},
		{oci("teamx/a", "pull"), false},
	}
	for _, tt := range tests {
		if got := s.Allowed(context.Background(), id, tt.access); got != tt.want {
			t.Errorf("Allowed(%s) = %v, want %v", tt.access, got, tt.want)
		}
	}
	if (ScopeAuthorizer{}).Authorize(context.Background(), nil, oci("x", "pull")) {
		t.Error("ScopeAuthorizer allowed a nil identity")
	}
}

func TestIssuedJWTExpiresForTheService(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	issuer := newTestIssuer(t, "unireg", clock)
	token, _, err := issuer.Issue("alice", []ResourceActions{{Type: "repository", Name: "foo", Actions: []string{"pull"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewService(ServiceOptions{Issuer: issuer})
	clock.t = clock.t.Add(time.Hour)
	if id, err := s.IdentifyCredentials(context.Background(), Credentials{Bearer: token}); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("expired JWT: IdentifyCredentials = %+v, %v; want ErrInvalidCredentials", id, err)
	}
}
