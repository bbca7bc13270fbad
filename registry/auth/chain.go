package auth

import (
	"context"
	"errors"
	"fmt"
)

// Chain is an Authenticator that asks each of its members in turn; the first
// that accepts the credentials wins. Errors other than invalid credentials
// stop the chain. It implements TokenLiveness for the members that do.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(ctx context.Context, cr Credentials) (*Identity, error) {
	for _, a := range c {
		if a == nil {
			continue
		}
		id, err := authenticate(ctx, a, cr)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrInvalidCredentials) {
			return nil, err
		}
	}
	return nil, ErrInvalidCredentials
}

// TokenLive implements TokenLiveness: a credential is live when a member that
// tracks credentials says so. A member that cannot tell now makes the answer
// an error only when no other member vouches for the credential.
func (c Chain) TokenLive(ctx context.Context, tokenID string) (bool, error) {
	var firstErr error
	for _, a := range c {
		l, ok := a.(TokenLiveness)
		if !ok {
			continue
		}
		live, err := l.TokenLive(ctx, tokenID)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if live {
			return true, nil
		}
	}
	return false, firstErr
}

func (Chain) composite() {}

// composite is implemented by the Authenticators that only combine others
// (Chain, WithRevocations): whether an identity is tracked is decided by the
// member that accepted the credentials, not by the combination.
type composite interface{ composite() }

// authenticate asks a and records on the identity whether a tracks the
// credential (implements TokenLiveness), unless a is a composite, whose
// members have recorded it.
func authenticate(ctx context.Context, a Authenticator, c Credentials) (*Identity, error) {
	id, err := a.Authenticate(ctx, c)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return nil, fmt.Errorf("authenticator returned no identity: %w", ErrInvalidCredentials)
	}
	if _, ok := a.(composite); ok {
		return id, nil
	}
	_, tracked := a.(TokenLiveness)
	if id.tracked != tracked {
		// The Authenticator may hand out one identity to many requests.
		id = id.clone()
		id.tracked = tracked
	}
	return id, nil
}

// Revocations tells whether a credential was revoked, by its TokenID (for an
// opaque token, TokenID(HashToken(token))). It answers from memory: it is
// asked on every request; an error means it cannot tell now.
type Revocations interface {
	Revoked(ctx context.Context, tokenID string) (bool, error)
}

// WithRevocations wraps an Authenticator so that revoked tokens fail,
// whichever store issued them, and so do the JWTs and npm tokens made from
// them: its TokenLive is a's, less the revoked.
func WithRevocations(a Authenticator, r Revocations) Authenticator {
	return revocationFilter{a, r}
}

type revocationFilter struct {
	next Authenticator
	revs Revocations
}

func (revocationFilter) composite() {}

func (f revocationFilter) Authenticate(ctx context.Context, c Credentials) (*Identity, error) {
	token := c.Password
	if token == "" {
		token = c.Bearer
	}
	if token != "" {
		revoked, err := f.revs.Revoked(ctx, TokenID(HashToken(token)))
		if err != nil {
			return nil, fmt.Errorf("check revocation: %w", err)
		}
		if revoked {
			return nil, fmt.Errorf("token revoked: %w", ErrInvalidCredentials)
		}
	}
	return authenticate(ctx, f.next, c)
}

// TokenLive implements TokenLiveness.
func (f revocationFilter) TokenLive(ctx context.Context, tokenID string) (bool, error) {
	revoked, err := f.revs.Revoked(ctx, tokenID)
	if err != nil {
		return false, fmt.Errorf("check revocation: %w", err)
	}
	l, ok := f.next.(TokenLiveness)
	if revoked || !ok {
		return false, nil
	}
	return l.TokenLive(ctx, tokenID)
}
