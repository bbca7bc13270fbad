package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// revocationWorld is one or more registries over one storage, as replicas
// are, authenticating with one auth-store file.
type revocationWorld struct {
	t     *testing.T
	path  string // the auth-store file
	store *auth.TokenStore
	data  storage.Driver
	admin string // a token with scope * in the file
}

func newRevocationWorld(t *testing.T) *revocationWorld {
	t.Helper()
	w := &revocationWorld{t: t, path: filepath.Join(t.TempDir(), "auth-store.yaml"), data: inmemory.New()}
	tok, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	w.admin = tok
	w.writeStore(nil)
	if w.store, err = auth.OpenTokenStore(w.path, auth.TokenStoreOptions{}); err != nil {
		t.Fatal(err)
	}
	return w
}

// writeStore writes the auth store with the admin token expiring at exp
// (nil: never), or without it when removed is set.
func (w *revocationWorld) writeStore(exp *time.Time, removed ...bool) {
	w.t.Helper()
	f := &authstore.File{Version: authstore.Version, Tokens: []authstore.Token{}}
	if len(removed) == 0 || !removed[0] {
		f.Tokens = append(f.Tokens, authstore.Token{Hash: auth.HashToken(w.admin), User: "admin", Scopes: []string{"*"}, ExpiresAt: exp})
	}
	b, err := authstore.Marshal(f)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(w.path, b, 0o600); err != nil {
		w.t.Fatal(err)
	}
	if w.store != nil {
		if err := w.store.Reload(); err != nil {
			w.t.Fatal(err)
		}
	}
}

// replica starts one more registry over the world's storage and auth store.
func (w *revocationWorld) replica() *httptest.Server {
	w.t.Helper()
	reg, err := New(context.Background(), Config{Storage: w.data, Authenticator: w.store, JWTKey: []byte(strings.Repeat("k", 32))})
	if err != nil {
		w.t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	w.t.Cleanup(func() { srv.Close(); reg.Close() })
	return srv
}

func send(t *testing.T, srv *httptest.Server, method, path, bearer, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (w *revocationWorld) npmToken(srv *httptest.Server, with string) string {
	w.t.Helper()
	code, out := send(w.t, srv, "POST", "/npm/-/npm/v1/tokens", with, `{}`)
	tok, _ := out["token"].(string)
	if code != http.StatusOK || tok == "" {
		w.t.Fatalf("npm token create: %d %v", code, out)
	}
	return tok
}

func (w *revocationWorld) jwt(srv *httptest.Server, with string) string {
	w.t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/token?service=unireg&scope=repository:team/app:pull,push", nil)
	req.SetBasicAuth("admin", with)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK || out.Token == "" {
		w.t.Fatalf("token endpoint: %d", resp.StatusCode)
	}
	return out.Token
}

// works reports whether a credential is accepted by srv: an OCI tag list
// for a JWT, npm whoami for a token.
func works(t *testing.T, srv *httptest.Server, credential string) bool {
	t.Helper()
	path := "/npm/-/whoami"
	if strings.Count(credential, ".") == 2 {
		path = "/v2/team/app/tags/list"
	}
	code, _ := send(t, srv, "GET", path, credential, "")
	switch code {
	case http.StatusOK, http.StatusNotFound: // a tag list of no repository: past authentication
		return true
	case http.StatusUnauthorized:
		return false
	}
	t.Fatalf("GET %s: %d", path, code)
	return false
}

// within polls until cond holds, for at most d.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A revocation on one replica holds on another within 10 s, for the token,
// the JWTs bought with it and the tokens made with it, though no request
// reads storage to check.
func TestRevocationReachesEveryReplicaWithinTenSeconds(t *testing.T) {
	w := newRevocationWorld(t)
	a, b := w.replica(), w.replica()
	parent := w.npmToken(a, w.admin)
	child := w.npmToken(a, parent)
	jwt := w.jwt(a, parent)
	for name, c := range map[string]string{"parent": parent, "child": child, "jwt": jwt} {
		if !works(t, b, c) {
			t.Fatalf("%s does not work on the other replica", name)
		}
	}
	if code, _ := send(t, a, "DELETE", "/npm/-/user/token/"+parent, parent, ""); code != http.StatusOK {
		t.Fatalf("npm logout: %d", code)
	}
	for name, c := range map[string]string{"parent": parent, "child": child, "jwt": jwt} {
		if works(t, a, c) {
			t.Errorf("%s still works on the replica that revoked it", name)
		}
		within(t, 10*time.Second, name+" refused on the other replica", func() bool { return !works(t, b, c) })
	}
}

// A token made with the npm token API stops working when the auth-store
// token it was made with leaves the store or expires, and so do the JWTs
// bought with either.
func TestChildTokenStopsWhenItsParentLeavesTheAuthStore(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(w *revocationWorld)
	}{
		{"removed", func(w *revocationWorld) { w.writeStore(nil, true) }},
		{"expired", func(w *revocationWorld) {
			past := time.Now().Add(-time.Second)
			w.writeStore(&past)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newRevocationWorld(t)
			srv := w.replica()
			child := w.npmToken(srv, w.admin)
			grandchild := w.npmToken(srv, child)
			jwt := w.jwt(srv, grandchild)
			for _, c := range []string{child, grandchild, jwt} {
				if !works(t, srv, c) {
					t.Fatal("a fresh credential does not work")
				}
			}
			tt.change(w)
			for name, c := range map[string]string{"child": child, "grandchild": grandchild, "jwt": jwt} {
				if works(t, srv, c) {
					t.Errorf("%s works after the auth-store token it descends from was %s", name, tt.name)
				}
			}
		})
	}
}
