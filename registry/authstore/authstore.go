// Package authstore owns the auth-store file format: the contract between
// whoever issues tokens (the operator, an administrator, the server's own
// first-run bootstrap) and the registry server that checks them. It only
// parses and writes the file; see docs/auth-store.md for the format.
package authstore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Version is the format version this package reads and writes.
const Version = 1

// SecretKey is the key of the Kubernetes Secret data that holds the auth
// store, and so the file name it has where that Secret is mounted; the
// server's own first-run store in its data directory uses the same name.
const SecretKey = "auth-store.yaml"

// File is the whole auth store.
type File struct {
	// Version must be 1.
	Version int `json:"version"`
	// Tokens lists every valid token by hash.
	Tokens []Token `json:"tokens"`
}

// Token is one credential.
type Token struct {
	// Hash is "sha256:" followed by the lowercase hex SHA-256 of the token.
	Hash string `json:"hash"`
	// User is the name requests with this token act as.
	User string `json:"user"`
	// Scopes are the grants, in the scope grammar.
	Scopes []string `json:"scopes"`
	// ExpiresAt, when set, is the instant from which the token is refused.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

var hashPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Parse decodes an auth store from YAML or JSON and checks its structure
// (version, hash syntax, users, duplicates). Scope syntax is checked by the
// caller that interprets them: auth.ParseAuthStore reads a store as the
// server does, scopes included (the scope parser lives in package auth,
// which imports this one, so this one cannot ask it).
func Parse(data []byte) (*File, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("auth store: %w", err)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("auth store: version %d is not supported (want %d)", f.Version, Version)
	}
	seen := make(map[string]bool, len(f.Tokens))
	for i, t := range f.Tokens {
		if !hashPattern.MatchString(t.Hash) {
			return nil, fmt.Errorf("auth store: tokens[%d]: hash must be sha256: and 64 lowercase hex digits", i)
		}
		if seen[t.Hash] {
			return nil, fmt.Errorf("auth store: tokens[%d]: duplicate hash", i)
		}
		seen[t.Hash] = true
		if t.User == "" {
			return nil, fmt.Errorf("auth store: tokens[%d]: user is empty", i)
		}
	}
	return &f, nil
}

// Marshal encodes the store as YAML with a stable field order.
func Marshal(f *File) ([]byte, error) {
	out := *f
	if out.Version == 0 {
		out.Version = Version
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(&out); err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(buf.Bytes())
}

// TokenPrefix starts every generated token, so that secret scanners can
// recognise a leaked one.
const TokenPrefix = "unireg_"

const tokenAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// tokenChars random base62 characters carry 43*log2(62) ≈ 256 bits.
const tokenChars = 43

// NewToken returns a fresh opaque token with 256 bits of entropy.
func NewToken() (string, error) {
	var b strings.Builder
	b.WriteString(TokenPrefix)
	max := big.NewInt(int64(len(tokenAlphabet)))
	for range tokenChars {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		b.WriteByte(tokenAlphabet[n.Int64()])
	}
	return b.String(), nil
}

// TokenID returns the short, non-secret id of a token: the first 12 hex
// digits of its hash. It is what logs, `npm token list`, revocations and the
// JWTs bought with a token name it by, and what the operator shows in a
// RegistryToken's status. hash is the stored form (HashToken); the bare hex
// digits, as npm's storage keys hold them, give the same id.
func TokenID(hash string) string {
	h := strings.TrimPrefix(hash, hashPrefix)
	if len(h) > tokenIDDigits {
		h = h[:tokenIDDigits]
	}
	return h
}

// tokenIDDigits is the length of a TokenID: 48 bits, enough to tell a
// store's tokens apart, too few to help guess one.
const tokenIDDigits = 12

const hashPrefix = "sha256:"

// HashToken returns the stored form of a token: "sha256:" and the hex SHA-256
// of the whole token string.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hashPrefix + hex.EncodeToString(sum[:])
}
