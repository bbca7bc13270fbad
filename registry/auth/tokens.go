package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
)

// TokenPrefix starts every token unireg generates, so that secret scanners
// can recognise a leaked one.
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

// HashToken returns the stored form of a token: "sha256:" and the hex SHA-256
// of the whole token string.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TokenID returns a short non-secret fingerprint of a token hash, safe to log.
func TokenID(hash string) string {
	h := strings.TrimPrefix(hash, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
