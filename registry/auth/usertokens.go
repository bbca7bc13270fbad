package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/storage"
)

// UserTokens keeps the tokens users make themselves through a token API
// (`npm token create`) in registry storage, hashed like every other token,
// and the list of tokens revoked by `npm logout` and `npm token revoke`,
// which holds for every credential of both protocols. It is an
// Authenticator and a TokenLiveness for the former and the Revocations of
// all tokens: the registry puts it after its Authenticator, in
// WithRevocations(Chain{authenticator, tokens}, tokens).
//
// Every token it makes records its parent: the TokenID of the credential it
// was made with. A token works only while its parent does, and the parent's
// parent, up to a credential outside the token API, which the Parents
// liveness judges (the registry's Authenticator).
//
// No request waits on storage to learn whether a credential still works:
// tokens and revocations are held in memory, in a view that RunRefresh
// reloads from storage every TokenRefreshInterval and this process's own
// creations and revocations update at once, so that a revocation by any
// replica holds in every replica within seconds. A view older than
// tokenViewMaxAge is reloaded before it is used; when that fails,
// credentials cannot be checked (503) rather than checked against a stale
// view.
type UserTokens struct {
	store   storage.Driver
	now     func() time.Time
	parents TokenLiveness

	mu   sync.RWMutex
	view tokenSnapshot

	refreshMu sync.Mutex // serialises refreshes
	lastTry   time.Time  // when the last refresh began, guarded by refreshMu
	lastErr   error      // how it ended, guarded by refreshMu
}

// UserTokensOptions configure NewUserTokens.
type UserTokensOptions struct {
	// Parents tells whether a credential outside the token API, with which
	// tokens were made, still works; the registry passes its Authenticator.
	// nil: tokens made with such credentials are refused.
	Parents TokenLiveness
	// Now is the clock of expiry; nil means time.Now.
	Now func() time.Time
}

// tokenSnapshot is what UserTokens knows of storage, guarded by UserTokens.mu.
type tokenSnapshot struct {
	// loaded is when the listing of the last successful refresh began;
	// zero: never.
	loaded  time.Time
	byKey   map[string]*UserToken // sha256 hex -> token
	byID    map[string]*UserToken // TokenID -> token
	revoked map[string]bool       // TokenIDs of revoked tokens, any issuer's
}

const (
	// TokenRefreshInterval is how often RunRefresh reloads the user tokens
	// and revocations from storage.
	TokenRefreshInterval = 3 * time.Second
	// tokenViewMaxAge is the oldest view used without reloading it first: a
	// revocation made by another replica is seen within it (under 10 s).
	tokenViewMaxAge = 8 * time.Second
	// refreshRetryEvery spaces the reloads that requests trigger while the
	// view is too old (storage failing): one at a time, at most one a second.
	refreshRetryEvery = time.Second
	// refreshTimeout bounds a reload that requests wait for.
	refreshTimeout = 10 * time.Second
	// maxTokenChain bounds the parents followed from one token.
	maxTokenChain = 32
)

// NewUserTokens returns the user tokens kept in s.
func NewUserTokens(s storage.Driver, opts UserTokensOptions) *UserTokens {
	t := &UserTokens{store: s, now: opts.Now, parents: opts.Parents, view: tokenSnapshot{
		byKey: map[string]*UserToken{}, byID: map[string]*UserToken{}, revoked: map[string]bool{},
	}}
	if t.now == nil {
		t.now = time.Now
	}
	return t
}

// UserToken is one token made through a token API, as stored at
// npm/tokens/<sha256 hex> (the storage keys predate this package). Tokens
// are written once and never changed; revoking one records its revocation,
// then deletes it.
type UserToken struct {
	Key      string    `json:"key"` // sha256 hex of the token
	User     string    `json:"user"`
	Scopes   []string  `json:"scopes"`
	Readonly bool      `json:"readonly"`
	Created  time.Time `json:"created"`
	// Preview is the token's first characters, to recognise it in a list.
	Preview string   `json:"preview"`
	CIDR    []string `json:"cidrWhitelist,omitempty"`
	Name    string   `json:"name,omitempty"`
	// Expires, when set, is the instant from which the token is refused.
	Expires time.Time `json:"expires,omitzero"`
	// Parent is the TokenID of the credential the token was made with;
	// empty only for tokens made before parents were recorded.
	Parent string `json:"parent,omitempty"`

	// grants are Scopes parsed, once, when the token is read or made;
	// grantsErr is why they do not parse (the token then authenticates
	// nothing).
	grants    Scopes
	grantsErr error
}

// ID is the token's TokenID, the one identifier a list shows.
func (st *UserToken) ID() string { return authstore.TokenID(st.Key) }

// Grants returns the token's scopes, parsed; ok is false when the stored
// scopes do not parse.
func (st *UserToken) Grants() (scopes Scopes, ok bool) { return st.grants, st.grantsErr == nil }

func (st *UserToken) parseScopes() {
	st.grants, st.grantsErr = ParseScopes(st.Scopes)
}

// UserTokenSpec is what a new token is made of.
type UserTokenSpec struct {
	User, Name string
	Scopes     []string
	Readonly   bool
	Expires    time.Time
	// Parent is the TokenID of the credential the token is made with.
	Parent string
}

// ErrTokenNotFound is returned by RevokeOwn for a token the user does not
// have.
var ErrTokenNotFound = errors.New("token not found")

func tokenKey(hashHex string) string   { return "npm/tokens/" + hashHex }
func revokedKey(hashHex string) string { return "npm/revoked/" + hashHex }

// idKey indexes a token by its id, for the JWTs and tokens that name it
// before this replica's view holds it: it holds the token's hash hex.
func idKey(tokenID string) string { return "npm/token-ids/" + tokenID }

// hashHex is the form of a token's hash the storage keys hold.
func hashHex(token string) string { return strings.TrimPrefix(HashToken(token), "sha256:") }

// Authenticate implements Authenticator.
func (t *UserTokens) Authenticate(ctx context.Context, c Credentials) (*Identity, error) {
	token := c.Password
	if token == "" {
		token = c.Bearer
	}
	if !strings.HasPrefix(token, TokenPrefix) {
		return nil, ErrInvalidCredentials
	}
	if err := t.fresh(ctx); err != nil {
		return nil, err
	}
	key := hashHex(token)
	t.mu.RLock()
	st := t.view.byKey[key]
	t.mu.RUnlock()
	if st == nil {
		// Made by another replica since the last refresh, or no token of
		// ours at all.
		var err error
		if st, err = t.read(ctx, key); err != nil {
			return nil, err
		}
		t.remember(st)
	}
	live, err := t.chainLive(ctx, st)
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, fmt.Errorf("token revoked, expired, or made with a credential that no longer works: %w", ErrInvalidCredentials)
	}
	if st.grantsErr != nil {
		return nil, fmt.Errorf("stored token %s: %w", st.ID(), st.grantsErr)
	}
	return &Identity{Subject: st.User, Scopes: slices.Clone(st.grants), TokenID: st.ID(), ExpiresAt: st.Expires}, nil
}

// TokenLive implements TokenLiveness for the tokens of the token API.
func (t *UserTokens) TokenLive(ctx context.Context, tokenID string) (bool, error) {
	if err := t.fresh(ctx); err != nil {
		return false, err
	}
	st, err := t.find(ctx, tokenID)
	if st == nil || err != nil {
		return false, err
	}
	return t.chainLive(ctx, st)
}

// Revoked implements Revocations.
func (t *UserTokens) Revoked(ctx context.Context, tokenID string) (bool, error) {
	if err := t.fresh(ctx); err != nil {
		return false, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.view.revoked[tokenID], nil
}

// lookup returns the token with this id (nil: none known) and whether the id
// is revoked.
func (t *UserTokens) lookup(tokenID string) (*UserToken, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.view.byID[tokenID], t.view.revoked[tokenID]
}

// chainLive reports whether st works: not revoked, not expired, and made
// with a credential that works, all the way up its parents.
func (t *UserTokens) chainLive(ctx context.Context, st *UserToken) (bool, error) {
	now := t.now()
	for range maxTokenChain {
		if !st.Expires.IsZero() && !now.Before(st.Expires) {
			return false, nil
		}
		if _, revoked := t.lookup(st.ID()); revoked {
			return false, nil
		}
		if st.Parent == "" {
			return true, nil
		}
		parent, revoked := t.lookup(st.Parent)
		if revoked {
			return false, nil
		}
		if parent == nil && t.parents != nil {
			// Most tokens are made with a token of the auth store.
			if live, err := t.parents.TokenLive(ctx, st.Parent); err != nil || live {
				return live, err
			}
		}
		if parent == nil {
			// A token of the API that another replica made moments ago, or
			// a credential gone for good.
			var err error
			if parent, err = t.find(ctx, st.Parent); parent == nil || err != nil {
				return false, err
			}
		}
		st = parent
	}
	return false, nil // no chain this long is made by the token API
}

// find returns the token with this id: from the view, else (made by another
// replica since the last refresh, or no token at all) through its id's index
// object in storage. nil: there is none, or it was revoked.
func (t *UserTokens) find(ctx context.Context, tokenID string) (*UserToken, error) {
	st, revoked := t.lookup(tokenID)
	if st != nil || revoked {
		return st, nil
	}
	if !validTokenID(tokenID) {
		return nil, nil
	}
	key, _, err := storage.ReadAll(ctx, t.store, idKey(tokenID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find user token %s: %w", tokenID, err)
	}
	st, err = t.read(ctx, string(key))
	if errors.Is(err, ErrInvalidCredentials) {
		return nil, nil
	}
	if err != nil || st.ID() != tokenID {
		return nil, err
	}
	t.remember(st)
	return st, nil
}

// validTokenID tells a TokenID of a hash (12 lowercase hex digits) from
// anything else a JWT or a stored record might name.
func validTokenID(id string) bool {
	if len(id) != 12 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// fresh makes sure the view is recent enough to judge credentials with.
func (t *UserTokens) fresh(ctx context.Context) error {
	t.mu.RLock()
	loaded := t.view.loaded
	t.mu.RUnlock()
	if !loaded.IsZero() && t.now().Sub(loaded) <= tokenViewMaxAge {
		return nil
	}
	// The reload is every waiting request's, not the one that happened to
	// start it: a caller that hangs up must not fail it (its error would
	// answer the others until the next retry).
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	if err := t.refreshUnlessRecent(rctx, refreshRetryEvery); err != nil {
		return fmt.Errorf("npm tokens and revocations cannot be checked: %w: %w", storage.ErrUnavailable, err)
	}
	t.mu.RLock()
	loaded = t.view.loaded
	t.mu.RUnlock()
	if loaded.IsZero() || t.now().Sub(loaded) > tokenViewMaxAge {
		return fmt.Errorf("npm tokens and revocations cannot be checked: %w", storage.ErrUnavailable)
	}
	return nil
}

// Refresh reloads the tokens and revocations from storage now.
func (t *UserTokens) Refresh(ctx context.Context) error { return t.refreshUnlessRecent(ctx, 0) }

// refreshUnlessRecent reloads the view, unless a reload began less than
// `every` ago: then it reports how that one ended.
func (t *UserTokens) refreshUnlessRecent(ctx context.Context, every time.Duration) error {
	t.refreshMu.Lock()
	defer t.refreshMu.Unlock()
	if every > 0 && !t.lastTry.IsZero() && t.now().Sub(t.lastTry) < every {
		return t.lastErr
	}
	t.lastTry = t.now()
	t.lastErr = t.refresh(ctx, t.lastTry)
	return t.lastErr
}

// refresh lists tokens and revocations and swaps them into the view. Tokens
// never change once written, so only those it has not seen are read.
func (t *UserTokens) refresh(ctx context.Context, started time.Time) error {
	keys, err := listKeys(ctx, t.store, "npm/tokens")
	if err != nil {
		return fmt.Errorf("list npm tokens: %w", err)
	}
	byKey := make(map[string]*UserToken, len(keys))
	for _, k := range keys {
		t.mu.RLock()
		st := t.view.byKey[k]
		t.mu.RUnlock()
		if st == nil {
			if st, err = t.read(ctx, k); errors.Is(err, ErrInvalidCredentials) {
				continue // revoked meanwhile
			} else if err != nil {
				return err
			}
		}
		byKey[k] = st
	}
	revoked, err := listKeys(ctx, t.store, "npm/revoked")
	if err != nil {
		return fmt.Errorf("list npm revocations: %w", err)
	}
	byID := make(map[string]*UserToken, len(byKey))
	for _, st := range byKey {
		byID[st.ID()] = st
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// A revocation is for good: what this process revoked while the listing
	// ran stays revoked even if the listing predates it.
	for _, k := range revoked {
		t.view.revoked[authstore.TokenID(k)] = true
	}
	t.view.byKey, t.view.byID, t.view.loaded = byKey, byID, started
	return nil
}

// listKeys lists the names under prefix; a missing prefix is empty.
func listKeys(ctx context.Context, s storage.Driver, prefix string) ([]string, error) {
	keys, err := s.List(ctx, prefix)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	return keys, err
}

// remember adds a token this process made or read to the view.
func (t *UserTokens) remember(st *UserToken) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.view.byKey[st.Key] = st
	t.view.byID[st.ID()] = st
}

// forget records a revocation in the view.
func (t *UserTokens) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.view.revoked[authstore.TokenID(key)] = true
	if st := t.view.byKey[key]; st != nil {
		delete(t.view.byKey, key)
		delete(t.view.byID, st.ID())
	}
}

// read loads one token from storage; ErrInvalidCredentials when there is none.
func (t *UserTokens) read(ctx context.Context, key string) (*UserToken, error) {
	b, _, err := storage.ReadAll(ctx, t.store, tokenKey(key))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	var st UserToken
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode token %s: %w", authstore.TokenID(key), err)
	}
	if st.Key != key {
		return nil, fmt.Errorf("token %s: stored under another key", authstore.TokenID(key))
	}
	st.parseScopes()
	return &st, nil
}

// Revoke makes a token unusable for good, whoever issued it, and so every
// JWT and token made from it.
func (t *UserTokens) Revoke(ctx context.Context, token string) error {
	return t.revokeKey(ctx, hashHex(token))
}

func (t *UserTokens) revokeKey(ctx context.Context, key string) error {
	if _, err := t.store.Put(ctx, revokedKey(key), strings.NewReader(t.now().UTC().Format(time.RFC3339)), storage.Condition{}); err != nil {
		return err
	}
	t.forget(key)
	for _, k := range []string{tokenKey(key), idKey(authstore.TokenID(key))} {
		if err := t.store.Delete(ctx, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Create stores a new token and returns it with its record: its id's index
// first, so that no stored token lacks one; an id already taken (a 48-bit
// collision) draws another token.
func (t *UserTokens) Create(ctx context.Context, spec UserTokenSpec) (string, *UserToken, error) {
	for range 3 {
		token, err := NewToken()
		if err != nil {
			return "", nil, err
		}
		st := &UserToken{Key: hashHex(token), User: spec.User, Scopes: spec.Scopes, Readonly: spec.Readonly,
			Created: t.now().UTC(), Preview: token[:len(TokenPrefix)+4], Name: spec.Name, Expires: spec.Expires,
			Parent: spec.Parent}
		st.parseScopes()
		_, err = t.store.Put(ctx, idKey(st.ID()), strings.NewReader(st.Key), storage.Condition{IfNoneMatch: true})
		if errors.Is(err, storage.ErrPreconditionFailed) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("store token: %w", err)
		}
		b, _ := json.Marshal(st)
		if _, err := t.store.Put(ctx, tokenKey(st.Key), bytes.NewReader(b), storage.Condition{IfNoneMatch: true}); err != nil {
			return "", nil, fmt.Errorf("store token: %w", err)
		}
		t.remember(st)
		return token, st, nil
	}
	return "", nil, errors.New("store token: no free token id")
}

// List returns the live tokens of user, oldest first, as storage has them
// now.
func (t *UserTokens) List(ctx context.Context, user string) ([]*UserToken, error) {
	if err := t.Refresh(ctx); err != nil {
		return nil, err
	}
	t.mu.RLock()
	var out []*UserToken
	for _, st := range t.view.byKey {
		if st.User == user && !t.view.revoked[st.ID()] {
			out = append(out, st)
		}
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b *UserToken) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// RevokeOwn revokes a token of user by its key (UserToken.Key);
// ErrTokenNotFound when user has no such token.
func (t *UserTokens) RevokeOwn(ctx context.Context, user, key string) error {
	st, err := t.read(ctx, key)
	if errors.Is(err, ErrInvalidCredentials) || (err == nil && st.User != user) {
		return ErrTokenNotFound
	}
	if err != nil {
		return err
	}
	return t.revokeKey(ctx, key)
}

// RunRefresh reloads the tokens and revocations from storage every
// TokenRefreshInterval until ctx ends, so that checking a credential never
// waits on storage and revocations made by other replicas hold here within
// seconds. log receives a failure once, and the recovery.
func (t *UserTokens) RunRefresh(ctx context.Context, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tick := time.NewTicker(TokenRefreshInterval)
	defer tick.Stop()
	failing := false
	for {
		err := t.Refresh(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Error("npm tokens and revocations: refresh failed; credentials cannot be checked once the view is older than "+tokenViewMaxAge.String(), "error", err)
			failing = true
		case err == nil && failing:
			log.Info("npm tokens and revocations: refresh recovered")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
