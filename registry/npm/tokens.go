package npm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage"
)

// Tokens keeps the tokens created through the npm token API (`npm token
// create`) in registry storage, hashed like every other token, and the list
// of tokens revoked by `npm logout`. It is an auth.Authenticator for the
// former and an auth.Revocations for all tokens.
type Tokens struct {
	store storage.Driver
}

// NewTokens returns the token store over s.
func NewTokens(s storage.Driver) *Tokens { return &Tokens{store: s} }

// storedToken is npm/tokens/<sha256 hex>.
type storedToken struct {
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
}

// tokenSpec is what a new token is made of.
type tokenSpec struct {
	user, name string
	scopes     []string
	readonly   bool
	expires    time.Time
}

func tokenKey(hashHex string) string   { return "npm/tokens/" + hashHex }
func revokedKey(hashHex string) string { return "npm/revoked/" + hashHex }

func hashHex(token string) string { return strings.TrimPrefix(auth.HashToken(token), "sha256:") }

// Authenticate implements auth.Authenticator.
func (t *Tokens) Authenticate(ctx context.Context, c auth.Credentials) (*auth.Identity, error) {
	token := c.Password
	if token == "" {
		token = c.Bearer
	}
	if !strings.HasPrefix(token, auth.TokenPrefix) {
		return nil, auth.ErrInvalidCredentials
	}
	st, err := t.get(ctx, hashHex(token))
	if err != nil {
		return nil, err
	}
	if !st.Expires.IsZero() && !time.Now().Before(st.Expires) {
		return nil, fmt.Errorf("token expired: %w", auth.ErrInvalidCredentials)
	}
	scopes, err := auth.ParseScopes(st.Scopes)
	if err != nil {
		return nil, fmt.Errorf("stored token %s: %w", auth.TokenID(st.Key), err)
	}
	return &auth.Identity{Subject: st.User, Scopes: scopes, TokenID: auth.TokenID(st.Key), ExpiresAt: st.Expires}, nil
}

func (t *Tokens) get(ctx context.Context, key string) (*storedToken, error) {
	b, _, err := storage.ReadAll(ctx, t.store, tokenKey(key))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, auth.ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	var st storedToken
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode token %s: %w", auth.TokenID(key), err)
	}
	return &st, nil
}

// IsRevoked implements auth.Revocations.
func (t *Tokens) IsRevoked(ctx context.Context, tokenHash string) (bool, error) {
	_, err := t.store.Stat(ctx, revokedKey(strings.TrimPrefix(tokenHash, "sha256:")))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Revoke makes a token unusable for good, whoever issued it.
func (t *Tokens) Revoke(ctx context.Context, token string) error {
	key := hashHex(token)
	if _, err := t.store.Put(ctx, revokedKey(key), strings.NewReader(time.Now().UTC().Format(time.RFC3339)), storage.Condition{}); err != nil {
		return err
	}
	if err := t.store.Delete(ctx, tokenKey(key)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// create stores a new token.
func (t *Tokens) create(ctx context.Context, spec tokenSpec) (string, *storedToken, error) {
	token, err := auth.NewToken()
	if err != nil {
		return "", nil, err
	}
	st := &storedToken{Key: hashHex(token), User: spec.user, Scopes: spec.scopes, Readonly: spec.readonly,
		Created: time.Now().UTC(), Preview: token[:len(auth.TokenPrefix)+4], Name: spec.name, Expires: spec.expires}
	b, _ := json.Marshal(st)
	if _, err := t.store.Put(ctx, tokenKey(st.Key), bytes.NewReader(b), storage.Condition{IfNoneMatch: true}); err != nil {
		return "", nil, fmt.Errorf("store token: %w", err)
	}
	return token, st, nil
}

// list returns the tokens of user.
func (t *Tokens) list(ctx context.Context, user string) ([]*storedToken, error) {
	keys, err := t.store.List(ctx, "npm/tokens")
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*storedToken
	for _, k := range keys {
		st, err := t.get(ctx, k)
		if err != nil {
			continue // revoked meanwhile
		}
		if st.User == user {
			out = append(out, st)
		}
	}
	return out, nil
}

// delete removes a token of user by its key.
func (t *Tokens) delete(ctx context.Context, user, key string) error {
	st, err := t.get(ctx, key)
	if err != nil || st.User != user {
		return errTokenNotFound
	}
	if _, err := t.store.Put(ctx, revokedKey(key), strings.NewReader(time.Now().UTC().Format(time.RFC3339)), storage.Condition{}); err != nil {
		return err
	}
	return t.store.Delete(ctx, tokenKey(key))
}

var errTokenNotFound = errors.New("token not found")

// readonlyScopes turns every grant into its read-only form: oci pull, npm read.
func readonlyScopes(scopes auth.Scopes) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s auth.Scope) {
		if k := s.String(); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, s := range scopes {
		switch s.Protocol {
		case auth.ProtocolOCI:
			s.Action = auth.ActionPull
			add(s)
		case auth.ProtocolNPM:
			s.Action = auth.ActionRead
			add(s)
		default: // "*": both protocols
			oci, npm := s, s
			oci.Protocol, oci.Action = auth.ProtocolOCI, auth.ActionPull
			npm.Protocol, npm.Action = auth.ProtocolNPM, auth.ActionRead
			if s.Type == "*" || s.Type == auth.TypeRepository {
				oci.Type = auth.TypeRepository
				add(oci)
			}
			if s.Type == "*" || s.Type == auth.TypePackage {
				npm.Type = auth.TypePackage
				add(npm)
			}
		}
	}
	return out
}
