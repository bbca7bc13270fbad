package auth

import (
	"context"
	"fmt"
	"net/http"
)

// Gate is what the protocol handlers need of the auth core: who is asking,
// and may they do this. *Service is the implementation.
type Gate interface {
	Identify(r *http.Request) (*Identity, error)
	Allowed(ctx context.Context, id *Identity, a Access) bool
}

// Service is the gate both protocols call: it identifies a request and decides
// each access. The Authenticator and Authorizer are pluggable; the JWT issuer
// is always the service's own, so JWTs it issued are checked against exactly
// the access they carry.
type Service struct {
	authn     Authenticator
	authz     Authorizer
	anonymous Scopes
	issuer    *JWTIssuer
}

// ServiceOptions configure NewService.
type ServiceOptions struct {
	// Authenticator checks presented credentials; nil refuses all of them.
	Authenticator Authenticator
	// Authorizer decides accesses; nil means ScopeAuthorizer.
	Authorizer Authorizer
	// Anonymous are granted to every request, with or without credentials.
	Anonymous Scopes
	// Issuer signs and verifies the Docker token flow's JWTs; nil disables it.
	Issuer *JWTIssuer
}

// NewService returns a gate.
func NewService(o ServiceOptions) *Service {
	if o.Authorizer == nil {
		o.Authorizer = ScopeAuthorizer{}
	}
	if o.Authenticator == nil {
		o.Authenticator = refuseAll{}
	}
	return &Service{authn: o.Authenticator, authz: o.Authorizer, anonymous: o.Anonymous, issuer: o.Issuer}
}

type refuseAll struct{}

func (refuseAll) Authenticate(context.Context, Credentials) (*Identity, error) {
	return nil, ErrInvalidCredentials
}

// Issuer returns the JWT issuer, nil when the token flow is off.
func (s *Service) Issuer() *JWTIssuer { return s.issuer }

// Anonymous returns the scopes granted to everyone.
func (s *Service) Anonymous() Scopes { return s.anonymous }

// Identify returns the identity of a request: anonymous without credentials,
// else what the JWT issuer or the Authenticator says. Wrong credentials give
// an error wrapping ErrInvalidCredentials, never a silent anonymous identity.
func (s *Service) Identify(r *http.Request) (*Identity, error) {
	return s.IdentifyCredentials(r.Context(), CredentialsFrom(r))
}

// IdentifyCredentials is Identify for credentials already extracted.
func (s *Service) IdentifyCredentials(ctx context.Context, c Credentials) (*Identity, error) {
	if c.Empty() {
		return &Identity{Anonymous: true}, nil
	}
	if c.Malformed {
		return nil, fmt.Errorf("malformed Authorization header: %w", ErrInvalidCredentials)
	}
	if c.Bearer != "" && s.issuer != nil && looksLikeJWT(c.Bearer) {
		id, err := s.issuer.Verify(c.Bearer)
		if err != nil {
			return nil, err
		}
		if err := s.checkBoughtWith(ctx, id); err != nil {
			return nil, err
		}
		id.issued = true
		return id, nil
	}
	id, err := authenticate(ctx, s.authn, c)
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return id, nil
}

// checkBoughtWith refuses a JWT whose credential stopped working: revoked,
// expired or removed. It asks the Authenticator's TokenLiveness on every
// request, cached JWT or not, so no JWT outlives its credential by more than
// the Authenticator takes to learn of the change.
func (s *Service) checkBoughtWith(ctx context.Context, id *Identity) error {
	if id.boughtWith == "" {
		return nil
	}
	live, err := s.TokenLive(ctx, id.boughtWith)
	if err != nil {
		return fmt.Errorf("check the credential of a JWT: %w", err)
	}
	if !live {
		return fmt.Errorf("the credential this JWT was bought with was revoked, expired or removed: %w", ErrInvalidCredentials)
	}
	return nil
}

// TokenLive implements TokenLiveness with the Authenticator's own: false when
// the Authenticator tracks no credentials.
func (s *Service) TokenLive(ctx context.Context, tokenID string) (bool, error) {
	l, ok := s.authn.(TokenLiveness)
	if !ok {
		return false, nil
	}
	return l.TokenLive(ctx, tokenID)
}

// Allowed reports whether id may perform a. Anonymous scopes apply to
// everyone. An identity from an issued JWT may do exactly what the JWT says.
func (s *Service) Allowed(ctx context.Context, id *Identity, a Access) bool {
	if s.anonymous.Allows(a) {
		return true
	}
	if id == nil || id.Anonymous {
		return false
	}
	if id.issued {
		return id.Scopes.Allows(a)
	}
	return s.authz.Authorize(ctx, id, a)
}
