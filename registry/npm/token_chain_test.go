package npm

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/auth"
)

// createTokenWith posts to the token API with token as the credential and
// returns the new token.
func (hs *harness) createTokenWith(token string, body map[string]any) string {
	hs.t.Helper()
	w := hs.do(call{method: http.MethodPost, path: "/-/npm/v1/tokens", body: jsonString(hs.t, body), token: token})
	expectStatus(hs.t, w, http.StatusOK)
	tok, _ := decodeBody(hs.t, w)["token"].(string)
	if tok == "" {
		hs.t.Fatalf("no token in %s", w.Body)
	}
	return tok
}

func (hs *harness) whoami(token string) int {
	hs.t.Helper()
	return hs.do(call{method: http.MethodGet, path: "/-/whoami", token: token}).Code
}

// A token made with the token API works only while the token it was made
// with does, all the way up the chain.
func TestChildTokenStopsWhenItsParentIsRevoked(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	parent := hs.createTokenWith(hs.tokens["bob"], map[string]any{"name": "parent"})
	child := hs.createTokenWith(parent, map[string]any{"name": "child"})
	grandchild := hs.createTokenWith(child, map[string]any{"name": "grandchild"})
	sibling := hs.createTokenWith(hs.tokens["bob"], map[string]any{"name": "sibling"})
	for _, tok := range []string{parent, child, grandchild, sibling} {
		if code := hs.whoami(tok); code != http.StatusOK {
			t.Fatalf("fresh token: whoami %d", code)
		}
	}

	w := hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + tokenIDOf(parent), user: "bob"})
	expectStatus(t, w, http.StatusNoContent)
	for name, tok := range map[string]string{"parent": parent, "child": child, "grandchild": grandchild} {
		if code := hs.whoami(tok); code != http.StatusUnauthorized {
			t.Errorf("%s of a revoked token: whoami %d, want 401", name, code)
		}
	}
	if code := hs.whoami(sibling); code != http.StatusOK {
		t.Errorf("a token made with bob's own token: whoami %d after another was revoked", code)
	}

	// npm logout revokes the token it is run with: its children go with it.
	child2 := hs.createTokenWith(sibling, map[string]any{})
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/user/token/" + sibling, token: sibling}), http.StatusOK)
	if code := hs.whoami(child2); code != http.StatusUnauthorized {
		t.Errorf("child of a logged-out token: whoami %d, want 401", code)
	}
}

// A token narrowed to some packages sees and revokes only the tokens it
// covers; the list shows ids, never hashes.
func TestNarrowedTokenManagesOnlyTokensItCovers(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	full := hs.createTokenWith(hs.tokens["bob"], map[string]any{"name": "full"})
	narrow := hs.createTokenWith(hs.tokens["bob"], map[string]any{"name": "narrow", "packages": []string{"x"}})
	narrower := hs.createTokenWith(narrow, map[string]any{"name": "narrower", "packages": []string{"x"}, "readonly": true})

	w := hs.do(call{method: http.MethodGet, path: "/-/npm/v1/tokens", token: narrow})
	expectStatus(t, w, http.StatusOK)
	listed := w.Body.String()
	for _, tok := range []string{full, narrow, narrower, hs.tokens["bob"]} {
		if strings.Contains(listed, hashHex(tok)) {
			t.Errorf("the token list shows a token's full hash: %s", listed)
		}
	}
	if strings.Contains(listed, tokenIDOf(full)) {
		t.Errorf("a token narrowed to x lists bob's full token: %s", listed)
	}
	if !strings.Contains(listed, tokenIDOf(narrow)) || !strings.Contains(listed, tokenIDOf(narrower)) {
		t.Errorf("a narrowed token does not list itself and the tokens it made: %s", listed)
	}
	if regexp.MustCompile(`[0-9a-f]{64}`).MatchString(listed) {
		t.Errorf("the token list holds a SHA-256: %s", listed)
	}

	w = hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + tokenIDOf(full), token: narrow})
	expectError(t, w, http.StatusForbidden, "at least as broad")
	if code := hs.whoami(full); code != http.StatusOK {
		t.Fatalf("bob's full token after a narrowed token tried to revoke it: whoami %d", code)
	}
	w = hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + tokenIDOf(narrower), token: narrow})
	expectStatus(t, w, http.StatusNoContent)
	w = hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + tokenIDOf(narrow), token: full})
	expectStatus(t, w, http.StatusNoContent)
}

// npm logout with a JWT answers 200, so that npm forgets it, and says in the
// npm-notice header (which npm prints) that the JWT stays valid.
func TestLogoutWithAJWTSaysItCannotBeRevoked(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	jwt, _, err := hs.gate.Issuer().Issue("bob", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := hs.do(call{method: http.MethodDelete, path: "/-/user/token/" + jwt, token: jwt})
	expectStatus(t, w, http.StatusOK)
	if notice := w.Header().Get("npm-notice"); !strings.Contains(notice, "cannot be revoked") {
		t.Errorf("npm-notice = %q, want it to say the JWT cannot be revoked", notice)
	}
	if body := decodeBody(t, w); body["ok"] != false {
		t.Errorf("logout of a JWT answers %v, want ok false", body)
	}
}

// An anonymous JWT of the token flow is no user on npm: where anonymous
// callers may read, it reads, and it stars nothing.
func TestAnonymousJWTIsAnonymousOnNPM(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), anonymous: []string{"npm:package:*:read"}})
	hs.mustPublish("x", "1.0.0")
	jwt, _, err := hs.gate.Issuer().Issue("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/-/whoami", "/-/npm/v1/tokens", "/-/user/org.couchdb.user:anonymous"} {
		if w := hs.do(call{method: http.MethodGet, path: path, token: jwt}); w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s with an anonymous JWT: %d %s, want 401", path, w.Code, w.Body)
		}
	}
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/x", token: jwt}), http.StatusOK)
	rev := hs.writeDoc("x")["_rev"].(string)
	star := jsonString(t, map[string]any{"_id": "x", "_rev": rev, "users": map[string]any{"anonymous": true}})
	if w := hs.do(call{method: http.MethodPut, path: "/x/-rev/" + rev, body: star, token: jwt}); w.Code != http.StatusUnauthorized {
		t.Errorf("star with an anonymous JWT: %d %s, want 401", w.Code, w.Body)
	}
	if users := hs.writeDoc("x")["users"]; users != nil && len(users.(map[string]any)) > 0 {
		t.Errorf("an anonymous JWT starred the package: users %v", users)
	}
}

// Tokens are made only with credentials the registry can follow: a token
// made with one whose Authenticator cannot tell when it stops would outlive
// it.
func TestTokensAreNotMadeWithCredentialsNothingFollows(t *testing.T) {
	h := mustNew(Options{Storage: newHarness(t, nil).store, Gate: auth.NewService(auth.ServiceOptions{Authenticator: fixedIdentity{&auth.Identity{
		Subject: "bob", TokenID: "custom", Scopes: auth.Scopes{{Protocol: "*", Type: "*", Name: "*", Action: "*"}},
	}}})})
	hs := &harness{t: t, h: h}
	w := hs.do(call{method: http.MethodPost, path: "/-/npm/v1/tokens", body: []byte(`{}`), token: "anything"})
	expectError(t, w, http.StatusForbidden, "cannot tell when it stops")
}

// fixedIdentity accepts any credential as one identity, and tracks nothing.
type fixedIdentity struct{ id *auth.Identity }

func (f fixedIdentity) Authenticate(context.Context, auth.Credentials) (*auth.Identity, error) {
	return f.id, nil
}

// npm token revoke names a token by its id (or a prefix of it), never by
// more of its hash: else the answers (403 for a token the caller may not
// revoke, 404 for none) would spell out, digit by digit, the full SHA-256
// of a token the caller may not even see in the list. Before, the key was
// matched against the whole hash, and a token narrowed to one package
// learnt its user's broadest token's hash in 16 requests a digit.
func TestRevokeNeverMatchesMoreOfAHashThanTheID(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	full := hs.createTokenWith(hs.tokens["bob"], map[string]any{"name": "full"})
	narrow := hs.createTokenWith(hs.tokens["bob"], map[string]any{"name": "narrow", "packages": []string{"x"}})
	answers := map[string]bool{}
	for _, digit := range "0123456789abcdef" {
		key := tokenIDOf(full) + string(digit)
		w := hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + key, token: narrow})
		answers[fmt.Sprintf("%d %s", w.Code, strings.ReplaceAll(w.Body.String(), key, "KEY"))] = true
	}
	if len(answers) != 1 {
		t.Fatalf("the answers tell the 13th digit of a hidden token's hash: %v", answers)
	}
	// Nor does the owner revoke by the hash: the key is the id.
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + hashHex(full), user: "bob"}), http.StatusNotFound)
	if code := hs.whoami(full); code != http.StatusOK {
		t.Fatalf("whoami %d after a revoke by hash", code)
	}
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + tokenIDOf(full), user: "bob"}), http.StatusNoContent)
}
