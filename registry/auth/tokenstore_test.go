package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/authstore"
)

// storeToken is one token of a test auth store, with its plain value.
type storeToken struct {
	token     string
	user      string
	scopes    []string
	expiresAt *time.Time
}

func newStoreToken(t *testing.T, user string, scopes ...string) storeToken {
	t.Helper()
	tok, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return storeToken{token: tok, user: user, scopes: scopes}
}

func marshalStore(t *testing.T, toks ...storeToken) []byte {
	t.Helper()
	f := &authstore.File{Version: authstore.Version, Tokens: []authstore.Token{}}
	for _, st := range toks {
		f.Tokens = append(f.Tokens, authstore.Token{Hash: HashToken(st.token), User: st.user, Scopes: st.scopes, ExpiresAt: st.expiresAt})
	}
	data, err := authstore.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writeAtomic replaces path the way editors and config tools do: write a
// sibling file, then rename it over the old one.
func writeAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
}

func writeStore(t *testing.T, toks ...storeToken) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(path, marshalStore(t, toks...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func openStore(t *testing.T, path string, opts TokenStoreOptions) *TokenStore {
	t.Helper()
	s, err := OpenTokenStore(path, opts)
	if err != nil {
		t.Fatalf("OpenTokenStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func accepts(s *TokenStore, token string) bool {
	_, err := s.Authenticate(context.Background(), Credentials{Bearer: token})
	return err == nil
}

func refuses(s *TokenStore, token string) bool {
	_, err := s.Authenticate(context.Background(), Credentials{Bearer: token})
	return errors.Is(err, ErrInvalidCredentials)
}

func TestTokenStoreAuthenticatesBasicPasswordAndBearer(t *testing.T) {
	ci := newStoreToken(t, "ci", "oci:repository:team/*:push", "npm:package:@acme/*:write")
	other := newStoreToken(t, "other", "*")
	s := openStore(t, writeStore(t, ci, other), TokenStoreOptions{})
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}

	tests := []struct {
		name  string
		creds Credentials
	}{
		{"basic password", Credentials{Username: "ci", Password: ci.token}},
		{"basic password with any user name", Credentials{Username: "whoever", Password: ci.token}},
		{"basic password without user name", Credentials{Password: ci.token}},
		{"bearer", Credentials{Bearer: ci.token}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.Authenticate(context.Background(), tt.creds)
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if id.Subject != "ci" {
				t.Errorf("Subject = %q, want ci", id.Subject)
			}
			if id.Anonymous || id.Issued() {
				t.Errorf("identity is anonymous=%v issued=%v, want neither", id.Anonymous, id.Issued())
			}
			if want := ci.scopes; !slices.Equal(id.Scopes.Strings(), want) {
				t.Errorf("Scopes = %v, want %v", id.Scopes.Strings(), want)
			}
			if want := TokenID(HashToken(ci.token)); id.TokenID != want {
				t.Errorf("TokenID = %q, want %q", id.TokenID, want)
			}
			if strings.Contains(ci.token, id.TokenID) {
				t.Errorf("TokenID %q is part of the secret token", id.TokenID)
			}
			if !id.Scopes.Allows(oci("team/app", "pull")) || id.Scopes.Allows(oci("teamx/app", "pull")) {
				t.Errorf("scopes %v do not decide as parsed", id.Scopes.Strings())
			}
		})
	}
}

func TestTokenStoreRefusesWrongCredentials(t *testing.T) {
	ci := newStoreToken(t, "ci", "*")
	s := openStore(t, writeStore(t, ci), TokenStoreOptions{})
	wrong := newStoreToken(t, "x").token
	tests := []struct {
		name  string
		creds Credentials
	}{
		{"unknown token as password", Credentials{Username: "ci", Password: wrong}},
		{"unknown token as bearer", Credentials{Bearer: wrong}},
		{"hash instead of token", Credentials{Bearer: HashToken(ci.token)}},
		{"token with trailing byte", Credentials{Bearer: ci.token + "x"}},
		{"token truncated", Credentials{Bearer: ci.token[:len(ci.token)-1]}},
		{"user name only", Credentials{Username: "ci"}},
		{"token as user name", Credentials{Username: ci.token}},
		{"nothing", Credentials{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.Authenticate(context.Background(), tt.creds)
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("Authenticate = %+v, %v; want ErrInvalidCredentials", id, err)
			}
			if id != nil {
				t.Errorf("Authenticate returned identity %+v with its error", id)
			}
		})
	}
}

func TestTokenStoreRefusesExpiredToken(t *testing.T) {
	expiry := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tok := newStoreToken(t, "temp", "*")
	tok.expiresAt = &expiry
	forever := newStoreToken(t, "forever", "*")
	var now time.Time
	s := openStore(t, writeStore(t, tok, forever), TokenStoreOptions{Now: func() time.Time { return now }})

	tests := []struct {
		name  string
		now   time.Time
		token string
		ok    bool
	}{
		{"long before expiry", expiry.Add(-24 * time.Hour), tok.token, true},
		{"just before expiry", expiry.Add(-time.Nanosecond), tok.token, true},
		{"at expiry", expiry, tok.token, false},
		{"after expiry", expiry.Add(time.Second), tok.token, false},
		{"token without expiry far in the future", expiry.AddDate(100, 0, 0), forever.token, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = tt.now
			id, err := s.Authenticate(context.Background(), Credentials{Username: "temp", Password: tt.token})
			if tt.ok {
				if err != nil {
					t.Fatalf("Authenticate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("Authenticate = %+v, %v; want ErrInvalidCredentials", id, err)
			}
			if !strings.Contains(err.Error(), "expired") {
				t.Errorf("error %q does not say the token expired", err)
			}
		})
	}
}

func TestOpenTokenStoreFailsOnUnusableFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string // empty: the file does not exist
		want    string
	}{
		{"missing file", "", "read auth store"},
		{"bad yaml", "version: [", "auth store"},
		{"wrong version", "version: 3\n", "version 3"},
		{"invalid scope", "version: 1\ntokens:\n- hash: " + HashToken("x") + "\n  user: u\n  scopes: [\"oci:repository:foo:fly\"]\n", `tokens[0] (user u)`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "auth"+string(rune('a'+i))+".yaml")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var calls []error
			s, err := OpenTokenStore(path, TokenStoreOptions{OnReload: func(err error) { calls = append(calls, err) }})
			if err == nil {
				s.Close()
				t.Fatal("OpenTokenStore succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if len(calls) != 1 || calls[0] == nil {
				t.Errorf("OnReload calls = %v, want one with the error", calls)
			}
		})
	}
}

func TestTokenStoreKeepsPreviousTokensWhenReloadFails(t *testing.T) {
	old := newStoreToken(t, "old", "*")
	path := writeStore(t, old)
	var mu sync.Mutex
	var calls []error
	s := openStore(t, path, TokenStoreOptions{OnReload: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, err)
	}})
	if err := s.Err(); err != nil {
		t.Fatalf("Err after a good load = %v", err)
	}

	broken := []struct {
		name    string
		content string
	}{
		{"syntax error", "version: 1\ntokens: [\n"},
		{"invalid scope", "version: 1\ntokens:\n- {hash: " + HashToken("new") + ", user: u, scopes: [\"oci:package:x:pull\"]}\n"},
		{"truncated to nothing", ""},
	}
	for _, b := range broken {
		t.Run(b.name, func(t *testing.T) {
			writeAtomic(t, path, []byte(b.content))
			mu.Lock()
			calls = nil
			mu.Unlock()
			if err := s.Reload(); err == nil {
				t.Fatal("Reload of a broken file succeeded")
			}
			if s.Err() == nil {
				t.Error("Err() = nil after a failed reload")
			}
			mu.Lock()
			if len(calls) != 1 || calls[0] == nil {
				t.Errorf("OnReload calls = %v, want one with an error", calls)
			}
			mu.Unlock()
			if !accepts(s, old.token) {
				t.Error("the previous token stopped working after a failed reload")
			}
			if s.Len() != 1 {
				t.Errorf("Len = %d, want the previous 1", s.Len())
			}
		})
	}

	fixed := newStoreToken(t, "new", "*")
	writeAtomic(t, path, marshalStore(t, fixed))
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload of the fixed file: %v", err)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err() = %v after the file was fixed", err)
	}
	if !accepts(s, fixed.token) || !refuses(s, old.token) {
		t.Error("the fixed file is not in force")
	}
}

func TestTokenStoreFixingFileBackToPreviousContentClearsErr(t *testing.T) {
	tok := newStoreToken(t, "u", "*")
	good := marshalStore(t, tok)
	path := writeStore(t, tok)
	s := openStore(t, path, TokenStoreOptions{})

	writeAtomic(t, path, []byte("garbage: ["))
	if s.Reload() == nil || s.Err() == nil {
		t.Fatal("a broken file was not reported")
	}
	writeAtomic(t, path, good)
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err() = %v after restoring the previous good file", err)
	}
}

func TestTokenStoreWatchPicksUpRenamedFile(t *testing.T) {
	old := newStoreToken(t, "old", "oci:repository:foo:pull")
	path := writeStore(t, old)
	s := openStore(t, path, TokenStoreOptions{Watch: true})
	if !accepts(s, old.token) {
		t.Fatal("initial token refused")
	}

	added := newStoreToken(t, "new", "oci:repository:bar:push")
	writeAtomic(t, path, marshalStore(t, added))

	eventually(t, 3*time.Second, "the rewritten auth store is not in force", func() bool {
		return accepts(s, added.token) && refuses(s, old.token)
	})
	id, err := s.Authenticate(context.Background(), Credentials{Bearer: added.token})
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "new" || !slices.Equal(id.Scopes.Strings(), added.scopes) {
		t.Errorf("identity = %q %v, want new %v", id.Subject, id.Scopes.Strings(), added.scopes)
	}
}

func TestTokenStoreWatchReportsBrokenFileAndRecovers(t *testing.T) {
	old := newStoreToken(t, "old", "*")
	path := writeStore(t, old)
	var mu sync.Mutex
	var sawErr bool
	s := openStore(t, path, TokenStoreOptions{Watch: true, OnReload: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			sawErr = true
		}
	}})

	writeAtomic(t, path, []byte("version: 1\ntokens: {"))
	eventually(t, 3*time.Second, "a broken file is not reported by Err", func() bool { return s.Err() != nil })
	mu.Lock()
	if !sawErr {
		t.Error("OnReload was not called with an error")
	}
	mu.Unlock()
	if !accepts(s, old.token) {
		t.Error("the previous token stopped working")
	}

	added := newStoreToken(t, "new", "*")
	writeAtomic(t, path, marshalStore(t, added))
	eventually(t, 3*time.Second, "fixing the file does not clear Err", func() bool {
		return s.Err() == nil && accepts(s, added.token)
	})
}

// kubeSecretDir lays out a directory as the kubelet mounts a Secret:
// auth.yaml -> ..data/auth.yaml, ..data -> ..<timestamp>/.
type kubeSecretDir struct {
	t   *testing.T
	dir string
	gen int
}

func newKubeSecretDir(t *testing.T, data []byte) *kubeSecretDir {
	k := &kubeSecretDir{t: t, dir: t.TempDir()}
	target := k.writeGeneration(data)
	if err := os.Symlink(target, filepath.Join(k.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..data", "auth.yaml"), k.path()); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *kubeSecretDir) path() string { return filepath.Join(k.dir, "auth.yaml") }

func (k *kubeSecretDir) writeGeneration(data []byte) string {
	k.gen++
	name := "..2025_01_01_00_00_0" + string(rune('0'+k.gen)) + ".000000001"
	if err := os.Mkdir(filepath.Join(k.dir, name), 0o755); err != nil {
		k.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(k.dir, name, "auth.yaml"), data, 0o600); err != nil {
		k.t.Fatal(err)
	}
	return name
}

// update swaps ..data atomically to a new generation and removes the old
// one, as the kubelet's atomic writer does.
func (k *kubeSecretDir) update(data []byte) {
	old, err := os.Readlink(filepath.Join(k.dir, "..data"))
	if err != nil {
		k.t.Fatal(err)
	}
	target := k.writeGeneration(data)
	tmp := filepath.Join(k.dir, "..data_tmp")
	if err := os.Symlink(target, tmp); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		k.t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(k.dir, old)); err != nil {
		k.t.Fatal(err)
	}
}

func TestTokenStoreFollowsKubernetesSecretSymlinkSwap(t *testing.T) {
	first := newStoreToken(t, "first", "oci:repository:a:pull")
	k := newKubeSecretDir(t, marshalStore(t, first))
	s := openStore(t, k.path(), TokenStoreOptions{Watch: true})
	if !accepts(s, first.token) {
		t.Fatal("initial token refused")
	}

	second := newStoreToken(t, "second", "oci:repository:b:pull")
	k.update(marshalStore(t, second))
	eventually(t, 3*time.Second, "the store did not follow the ..data swap", func() bool {
		return accepts(s, second.token) && refuses(s, first.token)
	})

	third := newStoreToken(t, "third", "oci:repository:c:pull")
	k.update(marshalStore(t, second, third))
	eventually(t, 3*time.Second, "the store did not follow the second ..data swap", func() bool {
		return accepts(s, second.token) && accepts(s, third.token)
	})
	if err := s.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
}

func TestTokenStoreCloseIsIdempotent(t *testing.T) {
	s := openStore(t, writeStore(t), TokenStoreOptions{Watch: true})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStaticTokenStoreAuthenticates(t *testing.T) {
	tok := newStoreToken(t, "static", "npm:package:*:read")
	s, err := NewStaticTokenStore(&authstore.File{Version: 1, Tokens: []authstore.Token{
		{Hash: HashToken(tok.token), User: tok.user, Scopes: tok.scopes},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.Authenticate(context.Background(), Credentials{Bearer: tok.token})
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if id.Subject != "static" || !id.Scopes.Allows(npm("x", "read")) {
		t.Errorf("identity = %+v", id)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a static store: %v", err)
	}

	_, err = NewStaticTokenStore(&authstore.File{Version: 1, Tokens: []authstore.Token{
		{Hash: HashToken("x"), User: "u", Scopes: []string{"npm:package:x:pull"}},
	}})
	if err == nil {
		t.Error("NewStaticTokenStore accepted an invalid scope")
	}
}

// The operator checks a store before writing it; the check must be the one
// the server applies, which refuses a bad scope that authstore.Parse (the
// format alone) lets through.
func TestParseAuthStoreRefusesWhatTheServerRefuses(t *testing.T) {
	store := func(scope string) []byte {
		return []byte("version: 1\ntokens:\n- hash: " + HashToken("t") + "\n  user: ci\n  scopes: [\"" + scope + "\"]\n")
	}
	good, bad := store("oci:repository:team/*:push"), store("oci:repository:team/*:read")
	if _, err := authstore.Parse(bad); err != nil {
		t.Fatalf("authstore.Parse refused the bad scope itself (%v): the test no longer shows the gap", err)
	}
	if _, err := ParseAuthStore(bad); err == nil || !strings.Contains(err.Error(), "unknown action") {
		t.Fatalf("ParseAuthStore of a store with an unknown action: %v, want the server's refusal", err)
	}
	if err := NewTokenStore(TokenStoreOptions{}).Apply(bad); err == nil {
		t.Fatal("the server's TokenStore accepted the store ParseAuthStore refused")
	}
	if f, err := ParseAuthStore(good); err != nil || len(f.Tokens) != 1 {
		t.Fatalf("ParseAuthStore of a good store: %v, %v", f, err)
	}
}
