package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// buyJWT asks the token endpoint for scope with Basic credentials (none when
// pass is empty) and returns the JWT and the expires_in it was answered with.
func buyJWT(t *testing.T, h TokenHandler, user, pass, scope string) (string, int) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/token?service=unireg&scope="+scope, nil)
	if pass != "" {
		r.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("token endpoint: %d %s", w.Code, w.Body)
	}
	var body struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Token == "" {
		t.Fatalf("token endpoint answer %s: %v", w.Body, err)
	}
	return body.Token, body.ExpiresIn
}

func identifyBearer(s *Service, jwt string) (*Identity, error) {
	r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	r.Header.Set("Authorization", "Bearer "+jwt)
	return s.Identify(r)
}

// fakeRevocations is a revocation list in memory.
type fakeRevocations struct {
	mu      sync.Mutex
	revoked map[string]bool // token ids and hashes
}

func (f *fakeRevocations) revoke(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revoked == nil {
		f.revoked = map[string]bool{}
	}
	f.revoked[HashToken(token)] = true
	f.revoked[TokenID(HashToken(token))] = true
}

func (f *fakeRevocations) Revoked(_ context.Context, tokenID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revoked[tokenID], nil
}

// IsRevoked is the by-hash form of the question.
func (f *fakeRevocations) IsRevoked(_ context.Context, hash string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.revoked[hash], nil
}

func TestJWTStopsWorkingOnceItsTokenLeavesTheAuthStore(t *testing.T) {
	pusher, other := newStoreToken(t, "pusher", "oci:repository:team/*:push"), newStoreToken(t, "other", "*")
	path := writeStore(t, pusher, other)
	store := openStore(t, path, TokenStoreOptions{})
	svc := NewService(ServiceOptions{Authenticator: store, Issuer: newTestIssuer(t, "unireg", nil)})
	jwt, _ := buyJWT(t, TokenHandler{Service: svc}, "pusher", pusher.token, "repository:team/app:pull,push")
	if id, err := identifyBearer(svc, jwt); err != nil || id.Subject != "pusher" {
		t.Fatalf("fresh JWT: %v, %v", id, err)
	}

	if err := os.WriteFile(path, marshalStore(t, other), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	// The JWT was verified (and cached) before: the cache must not keep it.
	if _, err := identifyBearer(svc, jwt); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("JWT of a token removed from the auth store: %v, want invalid credentials", err)
	}
}

func TestJWTStopsWorkingOnceItsTokenIsRevoked(t *testing.T) {
	pusher := newStoreToken(t, "pusher", "oci:repository:team/*:push")
	store := openStore(t, writeStore(t, pusher), TokenStoreOptions{})
	revs := &fakeRevocations{}
	svc := NewService(ServiceOptions{Authenticator: WithRevocations(store, revs), Issuer: newTestIssuer(t, "unireg", nil)})
	jwt, _ := buyJWT(t, TokenHandler{Service: svc}, "pusher", pusher.token, "repository:team/app:pull,push")
	if _, err := identifyBearer(svc, jwt); err != nil {
		t.Fatalf("fresh JWT: %v", err)
	}
	revs.revoke(pusher.token)
	if _, err := identifyBearer(svc, jwt); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("JWT of a revoked token: %v, want invalid credentials", err)
	}
}

// A token that expires before the JWT's TTL is up caps the JWT's `exp`.
func TestJWTNeverOutlivesItsToken(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	clock := &fakeClock{t: now}
	pusher := newStoreToken(t, "pusher", "oci:repository:team/*:push")
	soon := now.Add(2 * time.Minute)
	pusher.expiresAt = &soon
	store := openStore(t, writeStore(t, pusher), TokenStoreOptions{Now: clock.Now})
	issuer := newTestIssuer(t, "unireg", clock)
	svc := NewService(ServiceOptions{Authenticator: store, Issuer: issuer})
	jwt, expiresIn := buyJWT(t, TokenHandler{Service: svc}, "pusher", pusher.token, "repository:team/app:pull")
	if expiresIn != 120 {
		t.Errorf("expires_in = %d, want 120: the token expires in 2 minutes", expiresIn)
	}
	var c Claims
	if err := json.Unmarshal(decodeSegment(t, jwt, 1), &c); err != nil {
		t.Fatal(err)
	}
	if c.ExpiresAt == nil || c.ExpiresAt.After(soon) {
		t.Errorf("exp = %v, later than the token's expiresAt %v", c.ExpiresAt, soon)
	}
	clock.t = now.Add(3 * time.Minute)
	if _, err := identifyBearer(svc, jwt); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("JWT after its token expired: %v, want invalid credentials", err)
	}
}

// The JWT names its token by the id logs and lists show, never by its hash
// or secret.
func TestJWTNamesItsTokenByIDOnly(t *testing.T) {
	f := newTokenFixture(t)
	jwt, _ := buyJWT(t, f.handler, "puller", f.puller.token, "repository:foo:pull")
	payload := decodeSegment(t, jwt, 1)
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	hash := HashToken(f.puller.token)
	if claims["tid"] != TokenID(hash) {
		t.Errorf("tid = %v, want %s", claims["tid"], TokenID(hash))
	}
	if hex := strings.TrimPrefix(hash, "sha256:"); strings.Contains(string(payload), hex) || strings.Contains(string(payload), f.puller.token) {
		t.Errorf("the JWT carries the token's hash or secret: %s", payload)
	}

	anon, _ := buyJWT(t, f.handler, "", "", "repository:public/x:pull")
	claims = nil
	if err := json.Unmarshal(decodeSegment(t, anon, 1), &claims); err != nil {
		t.Fatal(err)
	}
	if _, ok := claims["tid"]; ok {
		t.Errorf("anonymous JWT names a token: %v", claims)
	}
}

// An anonymous JWT is anonymous: it grants the anonymous scopes, and it is
// no user (npm answers whoami with 401 for it).
func TestAnonymousJWTIsAnonymous(t *testing.T) {
	f := newTokenFixture(t)
	f.clock.t = time.Now()
	jwt, _ := buyJWT(t, f.handler, "", "", "repository:public/x:pull")
	id, err := identifyBearer(f.handler.Service, jwt)
	if err != nil {
		t.Fatal(err)
	}
	if !id.Anonymous || id.Subject != "" {
		t.Fatalf("anonymous JWT identity = %+v, want Anonymous", id)
	}
	ctx := context.Background()
	if !f.handler.Service.Allowed(ctx, id, Access{ProtocolOCI, TypeRepository, "public/x", ActionPull}) {
		t.Error("anonymous JWT cannot pull what anonymous callers may")
	}
	if f.handler.Service.Allowed(ctx, id, Access{ProtocolOCI, TypeRepository, "foo", ActionPull}) {
		t.Error("anonymous JWT may pull beyond the anonymous scopes")
	}
}

// untracked accepts one secret and cannot tell when it stops working.
type untracked struct{ secret string }

func (u untracked) Authenticate(_ context.Context, c Credentials) (*Identity, error) {
	if c.Password != u.secret {
		return nil, ErrInvalidCredentials
	}
	return &Identity{Subject: "custom", TokenID: "custom-1", Scopes: Scopes{{"*", "*", "*", "*"}}}, nil
}

// A JWT bought with a credential whose Authenticator tracks nothing names no
// token and lives its TTL; one bought through a chain names the token of the
// member that tracks it.
func TestJWTNamesOnlyTokensItsAuthenticatorTracks(t *testing.T) {
	stored := newStoreToken(t, "pusher", "oci:repository:team/*:push")
	store := openStore(t, writeStore(t, stored), TokenStoreOptions{})
	svc := NewService(ServiceOptions{Authenticator: Chain{untracked{"s3cret"}, store}, Issuer: newTestIssuer(t, "unireg", nil)})
	h := TokenHandler{Service: svc}
	for _, tt := range []struct {
		name, pass, tid string
	}{
		{"untracked", "s3cret", ""},
		{"tracked", stored.token, TokenID(HashToken(stored.token))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			jwt, _ := buyJWT(t, h, "u", tt.pass, "repository:team/app:pull")
			var c Claims
			if err := json.Unmarshal(decodeSegment(t, jwt, 1), &c); err != nil {
				t.Fatal(err)
			}
			if c.TokenID != tt.tid {
				t.Errorf("tid = %q, want %q", c.TokenID, tt.tid)
			}
			if _, err := identifyBearer(svc, jwt); err != nil {
				t.Errorf("JWT refused: %v", err)
			}
			id, err := svc.IdentifyCredentials(context.Background(), Credentials{Username: "u", Password: tt.pass})
			if err != nil || id.Tracked() != (tt.tid != "") {
				t.Errorf("identity %+v (%v): Tracked = %v", id, err, id != nil && id.Tracked())
			}
		})
	}
}

func TestScopesCover(t *testing.T) {
	tests := []struct {
		have, other []string
		want        bool
	}{
		{[]string{"*"}, []string{"oci:repository:x:push", "npm:package:@a/*:*"}, true},
		{[]string{"npm:package:@b/*:*"}, []string{"npm:package:@b/pkg:write"}, true},
		{[]string{"npm:package:@b/*:*"}, []string{"npm:package:@b/*:read"}, true},
		{[]string{"npm:package:@b/pkg:*"}, []string{"npm:package:@b/*:read"}, false},
		{[]string{"npm:package:@b/*:write"}, []string{"npm:package:@b/x:delete"}, false},
		{[]string{"npm:package:@b/*:write"}, []string{"npm:package:@b/x:read"}, true},
		{[]string{"oci:repository:team/*:push"}, []string{"oci:repository:team/a:pull"}, true},
		{[]string{"oci:repository:team/*:pull"}, []string{"oci:repository:team/a:push"}, false},
		{[]string{"npm:package:@b/*:*"}, []string{"*"}, false},
		{[]string{"oci:*:*:*", "npm:*:*:*"}, []string{"*"}, true},
		{[]string{"npm:package:@b/*:read", "npm:package:@b/*:write", "npm:package:@b/*:delete"}, []string{"npm:package:@b/*:*"}, true},
		{[]string{"npm:package:@b/*:*"}, []string{"npm:package:@bx/*:read"}, false},
		{[]string{"npm:package:a*b:*"}, []string{"npm:package:axb:read"}, false}, // conservative
		{[]string{"npm:package:a*b:*"}, []string{"npm:package:a*b:read"}, true},
		{nil, nil, true},
		{nil, []string{"npm:package:x:read"}, false},
	}
	for _, tt := range tests {
		if got := mustScopes(t, tt.have...).Covers(mustScopes(t, tt.other...)); got != tt.want {
			t.Errorf("%v covers %v = %v, want %v", tt.have, tt.other, got, tt.want)
		}
	}
}
