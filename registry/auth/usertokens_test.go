package auth

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// listFails is a storage whose listings fail while fail is set.
type listFails struct {
	storage.Driver
	fail atomic.Bool
}

func (l *listFails) List(ctx context.Context, prefix string) ([]string, error) {
	if l.fail.Load() {
		return nil, errors.New("listing failed")
	}
	return l.Driver.List(ctx, prefix)
}

// No view of tokens and revocations older than tokenViewMaxAge judges a
// credential: it is reloaded first, so a revocation by another replica holds
// here within that time; when reloading fails, credentials cannot be checked
// (an unavailable error, 503) rather than checked against the old view.
func TestTokenViewIsNeverOlderThanItsMaxAge(t *testing.T) {
	ctx := context.Background()
	store := &listFails{Driver: inmemory.New()}
	now := time.Now()
	here := NewUserTokens(store, UserTokensOptions{Now: func() time.Time { return now }})
	there := NewUserTokens(store, UserTokensOptions{})
	tok, _, err := there.Create(ctx, UserTokenSpec{User: "bob", Scopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := here.Authenticate(ctx, Credentials{Bearer: tok}); err != nil {
		t.Fatalf("a token made on another replica: %v", err)
	}
	if err := there.Revoke(ctx, tok); err != nil {
		t.Fatal(err)
	}
	now = now.Add(tokenViewMaxAge + time.Second)
	if revoked, err := here.Revoked(ctx, TokenID(HashToken(tok))); err != nil || !revoked {
		t.Fatalf("a revocation by another replica, %v later: revoked %v, %v", tokenViewMaxAge+time.Second, revoked, err)
	}

	store.fail.Store(true)
	now = now.Add(tokenViewMaxAge + time.Second)
	other, _, err := there.Create(ctx, UserTokenSpec{User: "bob", Scopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = here.Authenticate(ctx, Credentials{Bearer: other})
	if err == nil || errors.Is(err, ErrInvalidCredentials) || !storage.IsUnavailable(err) {
		t.Fatalf("with a view too old and storage failing: %v, want an unavailable error", err)
	}
	if _, err := here.Revoked(ctx, TokenID(HashToken(other))); !storage.IsUnavailable(err) {
		t.Fatalf("Revoked with a view too old and storage failing: %v, want an unavailable error", err)
	}
}
