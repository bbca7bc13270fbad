package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// fakeClock is a settable clock for issuers and stores.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func newTestIssuer(t *testing.T, service string, clock *fakeClock) *JWTIssuer {
	t.Helper()
	o := JWTIssuerOptions{Key: testKey, Service: service, TTL: 5 * time.Minute}
	if clock != nil {
		o.Now = clock.Now
	}
	j, err := NewJWTIssuer(o)
	if err != nil {
		t.Fatalf("NewJWTIssuer: %v", err)
	}
	return j
}

func TestNewJWTIssuerValidatesOptions(t *testing.T) {
	tests := []struct {
		name string
		opts JWTIssuerOptions
		want string // empty: success
	}{
		{"no key", JWTIssuerOptions{Service: "unireg"}, "0 bytes, want at least 32"},
		{"31-byte key", JWTIssuerOptions{Key: testKey[:31], Service: "unireg"}, "31 bytes, want at least 32"},
		{"32-byte key", JWTIssuerOptions{Key: testKey, Service: "unireg"}, ""},
		{"long key", JWTIssuerOptions{Key: append(slices.Clone(testKey), testKey...), Service: "unireg"}, ""},
		{"empty service", JWTIssuerOptions{Key: testKey}, "empty service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := NewJWTIssuer(tt.opts)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewJWTIssuer: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewJWTIssuer = %+v, want an error containing %q", j, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestNewJWTIssuerDefaultsTTLToFiveMinutes(t *testing.T) {
	j, err := NewJWTIssuer(JWTIssuerOptions{Key: testKey, Service: "unireg"})
	if err != nil {
		t.Fatal(err)
	}
	if j.TTL() != 5*time.Minute {
		t.Errorf("TTL = %v, want 5m", j.TTL())
	}
	if j.Service() != "unireg" {
		t.Errorf("Service = %q, want unireg", j.Service())
	}
}

func TestJWTIssueThenVerifyRoundTrips(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)}
	j := newTestIssuer(t, "unireg", clock)
	access := []ResourceActions{
		{Type: "repository", Name: "foo", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "bar", Actions: []string{}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	token, issued, err := j.Issue("alice", access, []string{"team/*"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if !issued.Equal(clock.t) {
		t.Errorf("issued at %v, want %v", issued, clock.t)
	}
	if !looksLikeJWT(token) {
		t.Errorf("issued token %q does not look like a JWT", token)
	}

	id, err := j.Verify(token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if id.Subject != "alice" {
		t.Errorf("Subject = %q, want alice", id.Subject)
	}
	if !strings.HasPrefix(id.TokenID, "jwt:") || len(id.TokenID) <= len("jwt:") {
		t.Errorf("TokenID = %q, want jwt:<id>", id.TokenID)
	}
	// bar was asked for and refused: it grants nothing, and is recorded
	// as asked.
	want := []string{"oci:repository:foo:pull", "oci:repository:foo:push"}
	if !slices.Equal(id.Scopes.Strings(), want) {
		t.Errorf("Scopes = %v, want %v", id.Scopes.Strings(), want)
	}
	asked := id.clone()
	asked.issued = true // as Service marks it
	if !asked.AskedFor("foo") || !asked.AskedFor("bar") || asked.AskedFor("baz") {
		t.Errorf("AskedFor foo, bar, baz = %v, %v, %v; want true, true, false", asked.AskedFor("foo"), asked.AskedFor("bar"), asked.AskedFor("baz"))
	}
	for _, tt := range []struct {
		access Access
		want   bool
	}{
		{oci("foo", "pull"), true},
		{oci("foo", "push"), true},
		{oci("foo", "delete"), false},
		{oci("bar", "pull"), false},
		{oci("baz", "pull"), false},
		{npm("foo", "read"), false},
	} {
		if got := id.Scopes.Allows(tt.access); got != tt.want {
			t.Errorf("verified scopes allow %s = %v, want %v", tt.access, got, tt.want)
		}
	}
	if id.Issued() {
		t.Error("Verify alone marked the identity issued; only the Service does")
	}

	// A second token has a different ID.
	other, _, err := j.Issue("alice", access, nil)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := j.Verify(other)
	if err != nil {
		t.Fatal(err)
	}
	if id2.TokenID == id.TokenID {
		t.Errorf("two issued tokens share TokenID %q", id.TokenID)
	}
}

func TestJWTIssueWritesDockerClaims(t *testing.T) {
	clock := &fakeClock{t: time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)}
	j := newTestIssuer(t, "unireg", clock)
	token, _, err := j.Issue("alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(decodeSegment(t, token, 1), &c); err != nil {
		t.Fatal(err)
	}
	if c["iss"] != "unireg" || c["sub"] != "alice" {
		t.Errorf("iss, sub = %v, %v", c["iss"], c["sub"])
	}
	if aud, _ := c["aud"].([]any); len(aud) != 1 || aud[0] != "unireg" {
		t.Errorf("aud = %v, want [unireg]", c["aud"])
	}
	if exp, _ := c["exp"].(float64); int64(exp) != clock.t.Add(5*time.Minute).Unix() {
		t.Errorf("exp = %v, want issue time + 5m", c["exp"])
	}
	// Docker clients choke on a null access list.
	if access, ok := c["access"].([]any); !ok || len(access) != 0 {
		t.Errorf("access = %#v, want an empty list", c["access"])
	}
	var h map[string]any
	if err := json.Unmarshal(decodeSegment(t, token, 0), &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "HS256" {
		t.Errorf("alg = %v, want HS256", h["alg"])
	}
}

func decodeSegment(t *testing.T, token string, i int) []byte {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments", token, len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWTVerifyHonoursLifetime(t *testing.T) {
	start := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	clock := &fakeClock{t: start}
	j := newTestIssuer(t, "unireg", clock)
	token, _, err := j.Issue("alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"at issue", start, true},
		{"small clock skew backwards", start.Add(-30 * time.Second), true},
		{"before not-before", start.Add(-2 * time.Minute), false},
		{"just before expiry", start.Add(5*time.Minute - time.Second), true},
		{"after expiry", start.Add(5*time.Minute + time.Second), false},
		{"long after expiry", start.Add(24 * time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.t = tt.at
			_, err := j.Verify(token)
			if tt.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("Verify err = %v, want ErrInvalidCredentials", err)
			}
		})
	}
}

// signed signs claims with method and key, bypassing the issuer.
func signed(t *testing.T, method jwt.SigningMethod, claims jwt.Claims, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

func validClaims(now time.Time) Claims {
	return Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    "unireg",
			Subject:   "mallory",
			Audience:  jwt.ClaimStrings{"unireg"},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		},
		Access: []ResourceActions{{Type: "repository", Name: "foo", Actions: []string{"push"}}},
	}
}

func TestJWTVerifyRefusesForgedTokens(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	clock := &fakeClock{t: now}
	j := newTestIssuer(t, "unireg", clock)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := []byte("ffffffffffffffffffffffffffffffff")
	otherService, err := NewJWTIssuer(JWTIssuerOptions{Key: testKey, Service: "other", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	fromOtherService, _, err := otherService.Issue("alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	good, _, err := j.Issue("alice", []ResourceActions{{Type: "repository", Name: "foo", Actions: []string{"pull"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}

	withClaims := func(edit func(*Claims)) Claims {
		c := validClaims(now)
		edit(&c)
		return c
	}
	tests := []struct {
		name  string
		token string
	}{
		{"signed with another key", signed(t, jwt.SigningMethodHS256, validClaims(now), otherKey)},
		{"audience of another service", fromOtherService},
		{"no audience", signed(t, jwt.SigningMethodHS256, withClaims(func(c *Claims) { c.Audience = nil }), testKey)},
		{"another issuer", signed(t, jwt.SigningMethodHS256, withClaims(func(c *Claims) { c.Issuer = "evil" }), testKey)},
		{"no expiry", signed(t, jwt.SigningMethodHS256, withClaims(func(c *Claims) { c.ExpiresAt = nil }), testKey)},
		{"alg none", signed(t, jwt.SigningMethodNone, validClaims(now), jwt.UnsafeAllowNoneSignatureType)},
		{"HS384 with the right key", signed(t, jwt.SigningMethodHS384, validClaims(now), testKey)},
		{"HS512 with the right key", signed(t, jwt.SigningMethodHS512, validClaims(now), testKey)},
		{"RS256", signed(t, jwt.SigningMethodRS256, validClaims(now), rsaKey)},
		{"tampered payload", tamperPayload(t, good)},
		{"signature stripped", strings.Join(strings.Split(good, ".")[:2], ".") + "."},
		{"header switched to none", setHeaderAlg(t, good, "none")},
		{"header switched to HS512", setHeaderAlg(t, good, "HS512")},
		{"garbage", "a.b.c"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := j.Verify(tt.token)
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", id)
			}
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("Verify err = %v, want it to wrap ErrInvalidCredentials", err)
			}
			if id != nil {
				t.Errorf("Verify returned identity %+v with its error", id)
			}
		})
	}

	// The untampered token verifies, so the cases above fail for the
	// reason they name and not because of the clock or the key.
	if _, err := j.Verify(good); err != nil {
		t.Fatalf("Verify of the untampered token: %v", err)
	}
	if _, err := j.Verify(signed(t, jwt.SigningMethodHS256, validClaims(now), testKey)); err != nil {
		t.Fatalf("Verify of validClaims signed correctly: %v", err)
	}
}

// tamperPayload grants push in the payload and keeps the signature.
func tamperPayload(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	var c map[string]any
	if err := json.Unmarshal(decodeSegment(t, token, 1), &c); err != nil {
		t.Fatal(err)
	}
	c["access"] = []any{map[string]any{"type": "repository", "name": "foo", "actions": []string{"pull", "push", "delete"}}}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func setHeaderAlg(t *testing.T, token, alg string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	var h map[string]any
	if err := json.Unmarshal(decodeSegment(t, token, 0), &h); err != nil {
		t.Fatal(err)
	}
	h["alg"] = alg
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	parts[0] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestLooksLikeJWT(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"aaa.bbb.ccc", true},
		{"unireg_abc", false},
		{"unireg_a.b.c", false},
		{"a.b", false},
		{"a.b.c.d", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := looksLikeJWT(tt.in); got != tt.want {
			t.Errorf("looksLikeJWT(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
