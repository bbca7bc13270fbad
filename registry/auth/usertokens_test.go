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

// listHonoursContext fails a listing whose context is done, as the
// filesystem's walks and S3's requests do.
type listHonoursContext struct{ storage.Driver }

func (l listHonoursContext) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return l.Driver.List(ctx, prefix)
}

// A request that goes away while it reloads the view (a client that hung
// up) does not make the next requests fail: the reload is not the
// request's to cancel. Before, its context.Canceled was kept as the result
// of the last try, and every credential check for the next second was an
// unavailable error (a 503 seen by `make bench` at a scenario's end).
func TestTokenViewReloadOutlivesTheRequestThatStartedIt(t *testing.T) {
	store := listHonoursContext{inmemory.New()}
	now := time.Now()
	here := NewUserTokens(store, UserTokensOptions{Now: func() time.Time { return now }})
	tok, _, err := here.Create(t.Context(), UserTokenSpec{User: "bob", Scopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(tokenViewMaxAge + time.Second)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	here.Authenticate(gone, Credentials{Bearer: tok}) // whatever it answers the caller that left
	if _, err := here.Authenticate(t.Context(), Credentials{Bearer: tok}); err != nil {
		t.Fatalf("the next request, right after one that was cancelled: %v", err)
	}
}
