package auth

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unireg/unireg/registry/authstore"
)

type storedToken struct {
	hash      string
	user      string
	scopes    Scopes
	expiresAt time.Time // zero: never
}

type tokenTable struct {
	byHash map[string]*storedToken
	// byID holds the tokens by TokenID, for TokenLive: the JWTs and npm
	// tokens made from a token name it by its id.
	byID map[string][]*storedToken
	raw  []byte
}

// TokenStore is the built-in Authenticator: it checks opaque tokens (sent as
// the Basic password or as a Bearer token) against an auth-store file,
// comparing only SHA-256 hashes. It reloads the file when it changes; a
// broken file keeps the previous table and is reported by Err. It implements
// TokenLiveness: a token removed from the file, or past its expiry, takes the
// JWTs and npm tokens made from it down with it at the next reload.
type TokenStore struct {
	path   string
	log    *slog.Logger
	now    func() time.Time
	table  atomic.Pointer[tokenTable]
	errMu  sync.Mutex
	err    error
	onLoad func(err error)
	watch  *fileWatch
}

// TokenStoreOptions configure OpenTokenStore.
type TokenStoreOptions struct {
	// Logger receives reload messages; nil discards them.
	Logger *slog.Logger
	// OnReload, when set, is called after every load attempt with its error.
	OnReload func(err error)
	// Now is the clock used for expiry; nil means time.Now.
	Now func() time.Time
	// Watch keeps the store in sync with the file until Close.
	Watch bool
}

// OpenTokenStore loads the auth store at path. The first load must succeed.
func OpenTokenStore(path string, opts TokenStoreOptions) (*TokenStore, error) {
	s := &TokenStore{path: path, log: opts.Logger, now: opts.Now, onLoad: opts.OnReload}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	if opts.Watch {
		w, err := watchFile(s.path, "auth store", time.Second, s.log, s.reloadLogged)
		if err != nil {
			return nil, err
		}
		s.watch = w
	}
	return s, nil
}

// NewStaticTokenStore builds a store from an in-memory auth store, for
// programs and tests that do not keep one in a file.
func NewStaticTokenStore(f *authstore.File) (*TokenStore, error) {
	t, err := buildTable(f, nil)
	if err != nil {
		return nil, err
	}
	s := &TokenStore{log: slog.New(slog.DiscardHandler), now: time.Now}
	s.table.Store(t)
	return s, nil
}

// ParseAuthStore reads an auth store as the server does: its structure
// (authstore.Parse) and every token's scopes (ParseScope). A store it
// refuses, a TokenStore refuses whole, keeping the tokens it had; whoever
// writes one (the operator) checks it with this before writing.
// authstore.Parse cannot check the scopes itself: this package imports it.
func ParseAuthStore(data []byte) (*authstore.File, error) {
	f, err := authstore.Parse(data)
	if err != nil {
		return nil, err
	}
	if _, err := buildTable(f, nil); err != nil {
		return nil, err
	}
	return f, nil
}

func buildTable(f *authstore.File, raw []byte) (*tokenTable, error) {
	t := &tokenTable{byHash: make(map[string]*storedToken, len(f.Tokens)), byID: make(map[string][]*storedToken, len(f.Tokens)), raw: raw}
	for i, tok := range f.Tokens {
		scopes, err := ParseScopes(tok.Scopes)
		if err != nil {
			return nil, fmt.Errorf("auth store: tokens[%d] (user %s): %w", i, tok.User, err)
		}
		st := &storedToken{hash: tok.Hash, user: tok.User, scopes: scopes}
		if tok.ExpiresAt != nil {
			st.expiresAt = *tok.ExpiresAt
		}
		t.byHash[tok.Hash] = st
		id := TokenID(tok.Hash)
		t.byID[id] = append(t.byID[id], st)
	}
	return t, nil
}

// Reload reads the file again. On error the previous table stays in force.
func (s *TokenStore) Reload() error {
	err := s.reload()
	s.errMu.Lock()
	s.err = err
	s.errMu.Unlock()
	if s.onLoad != nil {
		s.onLoad(err)
	}
	return err
}

func (s *TokenStore) reload() error {
	raw, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("read auth store: %w", err)
	}
	return s.apply(raw)
}

// Apply loads an auth store given as bytes (from a Kubernetes Secret watched
// through the API, say). On error the previous tokens stay in force, and Err
// reports it, as with a file.
func (s *TokenStore) Apply(raw []byte) error {
	err := s.apply(raw)
	if err != nil && errors.Is(s.Err(), ErrNotLoaded) {
		err = fmt.Errorf("%w: %w", ErrNotLoaded, err)
	}
	s.errMu.Lock()
	s.err = err
	s.errMu.Unlock()
	if s.onLoad != nil {
		s.onLoad(err)
	}
	if err != nil {
		s.log.Error("auth store update refused; keeping the previous tokens", "error", err)
	}
	return err
}

// NewTokenStore returns a store with no tokens yet, to be fed with Apply;
// Err reports that nothing was loaded until the first Apply.
func NewTokenStore(opts TokenStoreOptions) *TokenStore {
	s := &TokenStore{log: opts.Logger, now: opts.Now, onLoad: opts.OnReload, err: ErrNotLoaded}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.table.Store(&tokenTable{byHash: map[string]*storedToken{}, byID: map[string][]*storedToken{}})
	return s
}

// ErrNotLoaded is the error of a store that never loaded any version.
var ErrNotLoaded = errors.New("auth store not loaded yet")

func (s *TokenStore) apply(raw []byte) error {
	if cur := s.table.Load(); cur != nil && cur.raw != nil && bytes.Equal(cur.raw, raw) {
		return nil
	}
	f, err := authstore.Parse(raw)
	if err != nil {
		return err
	}
	t, err := buildTable(f, raw)
	if err != nil {
		return err
	}
	s.table.Store(t)
	s.log.Info("auth store loaded", "source", s.path, "tokens", len(t.byHash))
	return nil
}

// Err returns the error of the last load attempt, nil when it succeeded.
func (s *TokenStore) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Len returns the number of tokens in force.
func (s *TokenStore) Len() int { return len(s.table.Load().byHash) }

// Authenticate implements Authenticator. The token is the Basic password (any
// user name) or the Bearer token.
func (s *TokenStore) Authenticate(_ context.Context, c Credentials) (*Identity, error) {
	token := c.Password
	if token == "" {
		token = c.Bearer
	}
	if token == "" {
		return nil, ErrInvalidCredentials
	}
	hash := HashToken(token)
	st, ok := s.table.Load().byHash[hash]
	// The map lookup finds the candidate; the constant-time compare makes the
	// decision not depend on how many leading bytes matched.
	if !ok || subtle.ConstantTimeCompare([]byte(st.hash), []byte(hash)) != 1 {
		return nil, ErrInvalidCredentials
	}
	if !st.expiresAt.IsZero() && !s.now().Before(st.expiresAt) {
		return nil, fmt.Errorf("token expired: %w", ErrInvalidCredentials)
	}
	return &Identity{Subject: st.user, Scopes: slices.Clone(st.scopes), TokenID: TokenID(hash), ExpiresAt: st.expiresAt}, nil
}

// TokenLive implements TokenLiveness: the token with this id is in the table
// now and not past its expiry.
func (s *TokenStore) TokenLive(_ context.Context, tokenID string) (bool, error) {
	now := s.now()
	for _, st := range s.table.Load().byID[tokenID] {
		if st.expiresAt.IsZero() || now.Before(st.expiresAt) {
			return true, nil
		}
	}
	return false, nil
}

// reloadLogged reloads and logs a failure once, not at every tick.
func (s *TokenStore) reloadLogged() {
	before := s.Err()
	err := s.Reload()
	switch {
	case err != nil && (before == nil || before.Error() != err.Error()):
		s.log.Error("auth store reload failed; keeping the previous tokens", "path", s.path, "error", err)
	case err == nil && before != nil:
		s.log.Info("auth store reload recovered", "path", s.path)
	}
}

// Close stops watching the file.
func (s *TokenStore) Close() error {
	s.watch.Stop()
	s.watch = nil
	return nil
}
