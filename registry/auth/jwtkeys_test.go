package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	keyA = []byte(strings.Repeat("a", 64))
	keyB = []byte(strings.Repeat("b", 64))
	keyC = []byte(strings.Repeat("c", 64))
)

func jwtHeader(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]any{}
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func issuerWith(t *testing.T, keys *JWTKeys) *JWTIssuer {
	t.Helper()
	j, err := NewJWTIssuer(JWTIssuerOptions{Keys: keys, Service: "unireg"})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func mustKeys(t *testing.T, sign []byte, verify ...[]byte) *JWTKeys {
	t.Helper()
	k, err := NewJWTKeys(sign, verify...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestJWTNamesItsKeyByKid(t *testing.T) {
	j := issuerWith(t, mustKeys(t, keyA))
	tok, _, err := j.Issue("alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(keyA)
	want := hex.EncodeToString(sum[:8])
	if got := jwtHeader(t, tok)["kid"]; got != want || KeyID(keyA) != want {
		t.Fatalf("kid = %v (KeyID %s); want %s, the hex of the first 8 bytes of the key's SHA-256", got, KeyID(keyA), want)
	}
}

// A rotation: B signs from now on, A verifies until the JWTs it signed
// have expired, then goes.
func TestJWTSignedWithThePreviousKeyVerifiesAfterRotation(t *testing.T) {
	keys := mustKeys(t, keyA)
	j := issuerWith(t, keys)
	old, _, err := j.Issue("alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Verify(old); err != nil {
		t.Fatal(err)
	}
	if err := keys.Set(keyB, keyA); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Verify(old); err != nil {
		t.Fatalf("a JWT of the previous key, still listed: %v", err)
	}
	fresh, _, err := j.Issue("alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if jwtHeader(t, fresh)["kid"] != KeyID(keyB) {
		t.Fatalf("after the rotation the JWT is signed by %v, want the new key %s", jwtHeader(t, fresh)["kid"], KeyID(keyB))
	}
	// Another replica that has the new keys verifies the fresh JWT.
	if _, err := issuerWith(t, mustKeys(t, keyB, keyA)).Verify(fresh); err != nil {
		t.Fatal(err)
	}
	// The previous key dropped: its JWTs stop working, cached or not.
	if err := keys.Set(keyB); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Verify(old); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("a JWT of a dropped key: %v, want ErrInvalidCredentials", err)
	}
	if _, err := j.Verify(fresh); err != nil {
		t.Fatal(err)
	}
}

func TestJWTWithAnUnknownKidIsRefused(t *testing.T) {
	j := issuerWith(t, mustKeys(t, keyA, keyB))
	claims := Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "unireg", Audience: jwt.ClaimStrings{"unireg"},
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}
	for name, kid := range map[string]any{"unknown": KeyID(keyC), "not a string": 7, "empty": ""} {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
		tok.Header["kid"] = kid
		// Signed with a key the issuer has: only the kid is wrong, and a
		// kid the issuer does not know is not a reason to try every key.
		s, err := tok.SignedString(keyA)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Verify(s); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("%s kid: %v, want ErrInvalidCredentials", name, err)
		}
	}
	// The kid picks the key: a JWT of B naming A's kid is refused.
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	tok.Header["kid"] = KeyID(keyA)
	s, _ := tok.SignedString(keyB)
	if _, err := j.Verify(s); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("JWT of key B naming key A: %v, want ErrInvalidCredentials", err)
	}
}

// JWTs issued before JWTs carried a kid verify with any configured key.
func TestJWTWithoutKidVerifiesWithAnyKey(t *testing.T) {
	claims := Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "unireg", Audience: jwt.ClaimStrings{"unireg"},
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(keyA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := issuerWith(t, mustKeys(t, keyB, keyA)).Verify(s); err != nil {
		t.Errorf("a JWT without kid of the verify-only key: %v", err)
	}
	if _, err := issuerWith(t, mustKeys(t, keyB, keyC)).Verify(s); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("a JWT without kid of no configured key: %v, want ErrInvalidCredentials", err)
	}
}

func TestJWTKeyFileFormat(t *testing.T) {
	cases := []struct {
		name, body string
		sign       []byte
		verify     int
		err        string
	}{
		{"one key, as before", string(keyA) + "\n", keyA, 0, ""},
		{"one key without newline", string(keyA), keyA, 0, ""},
		{"previous keys on later lines", string(keyB) + "\n" + string(keyA) + "\n\n" + string(keyC) + "\n", keyB, 2, ""},
		{"whitespace around lines", "  " + string(keyB) + " \r\n\t" + string(keyA) + "\n", keyB, 1, ""},
		{"empty", "\n \n", nil, 0, "no key"},
		{"short previous key", string(keyA) + "\nshort\n", nil, 0, "line 2: 5 bytes, want at least 32"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sign, verify, err := ParseJWTKeyFile([]byte(c.body))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || string(sign) != string(c.sign) || len(verify) != c.verify {
				t.Fatalf("sign %q, %d verify keys, err %v; want %q and %d", sign, len(verify), err, c.sign, c.verify)
			}
		})
	}
}

// writeKubeletSecret lays out a Secret volume the way the kubelet does: the
// files are symlinks through ..data, which is swapped to a new timestamped
// directory at each update.
func writeKubeletSecret(t *testing.T, dir, version, body string) {
	t.Helper()
	ts := filepath.Join(dir, "..ts-"+version)
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "jwt.key"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "jwt.key")); os.IsNotExist(err) {
		if err := os.Symlink("..data/jwt.key", filepath.Join(dir, "jwt.key")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestJWTKeyFileIsReadAgainWhenTheSecretChanges(t *testing.T) {
	dir := t.TempDir()
	writeKubeletSecret(t, dir, "1", string(keyA)+"\n")
	// Polling is off (an hour): only the file watch can see the change.
	kf, err := OpenJWTKeyFile(filepath.Join(dir, "jwt.key"), JWTKeyFileOptions{Watch: true, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	j := issuerWith(t, kf.Keys())
	old, _, err := j.Issue("alice", nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	writeKubeletSecret(t, dir, "2", string(keyB)+"\n"+string(keyA)+"\n")
	waitFor(t, "the new key signs", func() bool {
		tok, _, err := j.Issue("alice", nil, nil)
		return err == nil && jwtHeader(t, tok)["kid"] == KeyID(keyB)
	})
	if _, err := j.Verify(old); err != nil {
		t.Fatalf("the previous key's JWT after the reload: %v", err)
	}

	// A broken version keeps the keys in force.
	writeKubeletSecret(t, dir, "3", "short\n")
	waitFor(t, "the broken version is seen", func() bool { return kf.Err() != nil })
	if _, err := j.Verify(old); err != nil {
		t.Fatalf("after a refused version: %v", err)
	}

	writeKubeletSecret(t, dir, "4", string(keyB)+"\n")
	waitFor(t, "the previous key dropped", func() bool { _, err := j.Verify(old); return err != nil && kf.Err() == nil })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
