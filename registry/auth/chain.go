package auth

import (
	"context"
	"errors"
	"fmt"
)

// Chain is an Authenticator that asks each of its members in turn; the first
// that accepts the credentials wins. Errors other than invalid credentials
// stop the chain.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(ctx context.Context, cr Credentials) (*Identity, error) {
	for _, a := range c {
		if a == nil {
			continue
		}
		id, err := a.Authenticate(ctx, cr)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrInvalidCredentials) {
			return nil, err
		}
	}
	return nil, ErrInvalidCredentials
}

// Revocations tells whether a token (by its hash, see HashToken) was revoked.
type Revocations interface {
	IsRevoked(ctx context.Context, tokenHash string) (bool, error)
}

// WithRevocations wraps an Authenticator so that revoked tokens fail,
// whichever store issued them.
func WithRevocations(a Authenticator, r Revocations) Authenticator {
	return revocationFilter{a, r}
}

type revocationFilter struct {
	next Authenticator
	revs Revocations
}

func (f revocationFilter) Authenticate(ctx context.Context, c Credentials) (*Identity, error) {
	token := c.Password
	if token == "" {
		token = c.Bearer
	}
	if token != "" {
		revoked, err := f.revs.IsRevoked(ctx, HashToken(token))
		if err != nil {
			return nil, fmt.Errorf("check revocation: %w", err)
		}
		if revoked {
			return nil, fmt.Errorf("token revoked: %w", ErrInvalidCredentials)
		}
	}
	return f.next.Authenticate(ctx, c)
}
