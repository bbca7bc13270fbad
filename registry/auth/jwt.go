package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ResourceActions is one entry of a Docker token's `access` claim: a
// DockerScope (the name Distribution gives it).
type ResourceActions = DockerScope

// Claims are the claims of the short-lived JWTs the token endpoint issues.
type Claims struct {
	jwt.RegisteredClaims
	Access []ResourceActions `json:"access"`
	// Mountable lists name patterns of the repositories the subject may
	// pull. It authorises nothing but choosing the source of a mount
	// without `from` (see Identity.MayMountFrom).
	Mountable []string `json:"mountable,omitempty"`
	// TokenID names the credential the JWT was bought with (its TokenID,
	// never its hash or secret): the JWT works only while that credential
	// does. Empty for anonymous JWTs and for credentials that cannot be
	// followed (see TokenLiveness).
	TokenID string `json:"tid,omitempty"`
}

// JWTIssuer signs and verifies the Docker-flow JWTs with HS256 keys: the
// JWTs it signs name their key in the "kid" header (KeyID), so that after a
// rotation those of the previous key still verify while it is listed.
type JWTIssuer struct {
	keys    *JWTKeys
	service string
	issuer  string
	ttl     time.Duration
	now     func() time.Time

	// verified caches the identities of JWTs already verified, until they
	// expire: clients send the same JWT with every request, and checking an
	// HMAC and decoding the claims costs tens of microseconds each time.
	mu       sync.RWMutex
	verified map[string]verifiedJWT
}

type verifiedJWT struct {
	id                   Identity
	notBefore, expiresAt time.Time
	// keys were in force when the JWT was verified: once they change, the
	// JWT is verified again (its key may have been dropped).
	keys *keySet
}

// maxVerifiedJWTs bounds the cache; when full it starts over.
const maxVerifiedJWTs = 16384

// DefaultJWTTTL is JWTIssuerOptions.TTL when zero: the lifetime of the JWTs
// of the Docker token flow.
const DefaultJWTTTL = 5 * time.Minute

// JWTIssuerOptions configure NewJWTIssuer.
type JWTIssuerOptions struct {
	// Key is the HS256 secret; at least 32 bytes. Ignored when Keys is set.
	Key []byte
	// Keys, when set, are the keys: one signs, previous ones still verify,
	// and they may change while the issuer runs (a key rotation).
	Keys *JWTKeys
	// Service is the audience: the `service` of the Bearer challenge.
	Service string
	// TTL is the lifetime of issued tokens (DefaultJWTTTL when zero).
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewJWTIssuer returns an issuer.
func NewJWTIssuer(o JWTIssuerOptions) (*JWTIssuer, error) {
	if o.Keys == nil {
		keys, err := NewJWTKeys(o.Key)
		if err != nil {
			return nil, err
		}
		o.Keys = keys
	}
	if o.Service == "" {
		return nil, errors.New("jwt: empty service")
	}
	if o.TTL <= 0 {
		o.TTL = DefaultJWTTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &JWTIssuer{keys: o.Keys, service: o.Service, issuer: "unireg", ttl: o.TTL, now: o.Now, verified: map[string]verifiedJWT{}}, nil
}

// Service returns the audience the issuer signs for.
func (j *JWTIssuer) Service() string { return j.service }

// TTL returns the lifetime of issued tokens.
func (j *JWTIssuer) TTL() time.Duration { return j.ttl }

// Grant is what a JWT is issued for.
type Grant struct {
	// Subject is the user name; empty for an anonymous caller, whose JWT
	// is anonymous wherever it is used.
	Subject   string
	Access    []ResourceActions
	Mountable []string
	// TokenID names the credential the JWT is bought with; when set, the
	// JWT works only while that credential does (Service checks it on every
	// use, see TokenLiveness).
	TokenID string
	// NotAfter, when set, is when that credential expires: the JWT's `exp`
	// is never later.
	NotAfter time.Time
}

// IssuedJWT is a signed JWT and its lifetime.
type IssuedJWT struct {
	Token               string
	IssuedAt, ExpiresAt time.Time
}

// Issue signs a token for subject with the given access and mountable
// repository patterns, naming no credential (see IssueGrant).
func (j *JWTIssuer) Issue(subject string, access []ResourceActions, mountable []string) (string, time.Time, error) {
	t, err := j.IssueGrant(Grant{Subject: subject, Access: access, Mountable: mountable})
	return t.Token, t.IssuedAt, err
}

// IssueGrant signs a token for g. Its lifetime is the issuer's TTL, cut at
// g.NotAfter.
func (j *JWTIssuer) IssueGrant(g Grant) (IssuedJWT, error) {
	now := j.now()
	jti := make([]byte, 12)
	if _, err := rand.Read(jti); err != nil {
		return IssuedJWT{}, err
	}
	if g.Access == nil {
		g.Access = []ResourceActions{}
	}
	exp := now.Add(j.ttl)
	if !g.NotAfter.IsZero() && g.NotAfter.Before(exp) {
		exp = g.NotAfter
	}
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    j.issuer,
			Subject:   g.Subject,
			Audience:  jwt.ClaimStrings{j.service},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        hex.EncodeToString(jti),
		},
		Access:    g.Access,
		Mountable: g.Mountable,
		TokenID:   g.TokenID,
	}
	keys := j.keys.current()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = keys.signID
	s, err := tok.SignedString(keys.sign)
	if err != nil {
		return IssuedJWT{}, err
	}
	// NumericDate keeps whole seconds: report the instant the JWT says.
	return IssuedJWT{Token: s, IssuedAt: now, ExpiresAt: claims.ExpiresAt.Time}, nil
}

// Verify checks a token's signature, algorithm, issuer, audience and lifetime
// and returns the identity it carries: its scopes are exactly its access. It
// does not know whether the credential the JWT was bought with still works:
// Service checks that on every use (the cache here holds only what the JWT
// itself says).
func (j *JWTIssuer) Verify(token string) (*Identity, error) {
	now := j.now()
	keys := j.keys.current()
	j.mu.RLock()
	v, ok := j.verified[token]
	j.mu.RUnlock()
	if ok && v.keys == keys && now.Before(v.expiresAt) && !now.Before(v.notBefore) {
		return v.id.clone(), nil
	}
	id, c, err := j.verifyWith(token, keys)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		delete(j.verified, token)
		return nil, err
	}
	if len(j.verified) >= maxVerifiedJWTs {
		clear(j.verified)
	}
	v = verifiedJWT{id: *id.clone(), expiresAt: c.ExpiresAt.Time, keys: keys}
	if c.NotBefore != nil {
		v.notBefore = c.NotBefore.Time
	}
	j.verified[token] = v
	return id, nil
}

// clone copies an identity with its own scope slices, so that what one
// request's caller does with it never reaches the cache or another request.
func (id *Identity) clone() *Identity {
	c := *id
	c.Scopes = slices.Clone(id.Scopes)
	c.mountable = slices.Clone(id.mountable)
	c.asked = slices.Clone(id.asked)
	return &c
}

// verify does the work of Verify and returns the token's claims too.
func (j *JWTIssuer) verify(token string) (*Identity, *Claims, error) {
	return j.verifyWith(token, j.keys.current())
}

// verifyWith verifies token against one version of the keys.
func (j *JWTIssuer) verifyWith(token string, keys *keySet) (*Identity, *Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, keys.keyFunc,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(j.issuer),
		jwt.WithAudience(j.service),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(j.now),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	id := &Identity{Subject: c.Subject, Anonymous: c.Subject == "", TokenID: "jwt:" + c.ID,
		ExpiresAt: c.ExpiresAt.Time, boughtWith: c.TokenID}
	for _, ra := range c.Access {
		if ra.Type != TypeRepository {
			continue
		}
		// Recorded granted or refused, so the registry can tell a
		// repository the client never asked about from one it may not use.
		id.asked = append(id.asked, ra.Name)
		for _, a := range ra.Actions {
			id.Scopes = append(id.Scopes, Scope{ProtocolOCI, TypeRepository, ra.Name, a})
		}
	}
	for _, m := range c.Mountable {
		id.mountable = append(id.mountable, Scope{ProtocolOCI, TypeRepository, m, ActionPull})
	}
	return id, &c, nil
}

// looksLikeJWT tells a compact JWS from an opaque token.
func looksLikeJWT(s string) bool {
	return !strings.HasPrefix(s, TokenPrefix) && strings.Count(s, ".") == 2
}
