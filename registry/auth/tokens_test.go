package auth

import (
	"regexp"
	"strings"
	"testing"
)

func TestNewTokenHasPrefixLengthAndBase62Alphabet(t *testing.T) {
	body := regexp.MustCompile(`^[0-9A-Za-z]{43}$`)
	seen := make(map[string]bool)
	used := make(map[rune]bool)
	const draws = 200
	for range draws {
		tok, err := NewToken()
		if err != nil {
			t.Fatalf("NewToken: %v", err)
		}
		if !strings.HasPrefix(tok, "unireg_") {
			t.Fatalf("token %q does not start with unireg_", tok)
		}
		if len(tok) != len("unireg_")+43 {
			t.Fatalf("token %q has length %d, want %d", tok, len(tok), len("unireg_")+43)
		}
		rest := strings.TrimPrefix(tok, TokenPrefix)
		if !body.MatchString(rest) {
			t.Fatalf("token %q has characters outside base62 after the prefix", tok)
		}
		if seen[tok] {
			t.Fatalf("NewToken returned %q twice in %d draws", tok, draws)
		}
		seen[tok] = true
		for _, r := range rest {
			used[r] = true
		}
	}
	// 200×43 draws from 62 symbols miss one with probability ~62·e^-139:
	// a smaller set means the alphabet is cut short or the draw is biased.
	if len(used) != 62 {
		t.Errorf("200 tokens used %d distinct characters, want all 62", len(used))
	}
}

func TestHashTokenIsSHA256Hex(t *testing.T) {
	format := regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	h := HashToken("unireg_test")
	if !format.MatchString(h) {
		t.Fatalf("HashToken = %q, want sha256: and 64 lowercase hex digits", h)
	}
	if h != HashToken("unireg_test") {
		t.Error("HashToken is not deterministic")
	}
	if h == HashToken("unireg_tesT") {
		t.Error("HashToken gives the same hash for different tokens")
	}
	// sha256("abc") from FIPS 180-2.
	const abc = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := HashToken("abc"); got != abc {
		t.Errorf("HashToken(abc) = %q, want %q", got, abc)
	}
}

func TestTokenIDIsShortPrefixOfHash(t *testing.T) {
	h := HashToken("unireg_test")
	id := TokenID(h)
	if len(id) != 12 {
		t.Errorf("TokenID = %q (%d chars), want 12", id, len(id))
	}
	if !strings.HasPrefix(h, "sha256:"+id) {
		t.Errorf("TokenID %q is not a prefix of the hex in %q", id, h)
	}
	if strings.Contains(id, "sha256") {
		t.Errorf("TokenID %q keeps the algorithm prefix", id)
	}
	if got := TokenID("sha256:abc"); got != "abc" {
		t.Errorf("TokenID of a short hash = %q, want abc", got)
	}
}
