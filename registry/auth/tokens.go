package auth

import "github.com/unireg/unireg/registry/authstore"

// TokenPrefix starts every token unireg generates, so that secret scanners
// can recognise a leaked one.
const TokenPrefix = authstore.TokenPrefix

// NewToken returns a fresh opaque token with 256 bits of entropy.
func NewToken() (string, error) { return authstore.NewToken() }

// HashToken returns the stored form of a token: "sha256:" and the hex SHA-256
// of the whole token string (the auth-store format owns it).
func HashToken(token string) string { return authstore.HashToken(token) }

// TokenID returns a short non-secret fingerprint of a token hash, safe to
// log (the auth-store format owns it: authstore.TokenID).
func TokenID(hash string) string { return authstore.TokenID(hash) }
