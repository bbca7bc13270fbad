package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// listCounter is a storage that counts the listings below each prefix: the
// catalog walks "repositories", npm search lists "npm/packages".
type listCounter struct {
	storage.Driver
	mu    sync.Mutex
	lists map[string]int
}

func (c *listCounter) List(ctx context.Context, prefix string) ([]string, error) {
	c.mu.Lock()
	for _, p := range []string{"repositories", "npm/packages"} {
		if prefix == p || strings.HasPrefix(prefix, p+"/") {
			c.lists[p]++
		}
	}
	c.mu.Unlock()
	return c.Driver.List(ctx, prefix)
}

func (c *listCounter) take(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.lists[prefix]
	c.lists[prefix] = 0
	return n
}

// visibilityWorld holds one repository and one package, and callers with
// grants on one protocol only.
type visibilityWorld struct {
	t      *testing.T
	srv    *httptest.Server
	store  *listCounter
	tokens map[string]string
}

func newVisibilityWorld(t *testing.T, authorizer auth.Authorizer) *visibilityWorld {
	t.Helper()
	w := &visibilityWorld{t: t, store: &listCounter{Driver: inmemory.New(), lists: map[string]int{}}, tokens: map[string]string{}}
	f := &authstore.File{Version: authstore.Version}
	for user, scopes := range map[string][]string{
		"owner":   {"*"},
		"ocionly": {"oci:repository:team/*:pull"},
		"npmonly": {"npm:package:@team/*:read"},
		"pushers": {"oci:repository:*:push"},   // pushing implies pulling
		"writers": {"*:package:@team/*:write"}, // writing implies reading
		"deleter": {"oci:repository:*:delete"}, // may delete, never pull
		"strange": {"npm:package:*:delete"},
	} {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		w.tokens[user] = tok
		f.Tokens = append(f.Tokens, authstore.Token{Hash: auth.HashToken(tok), User: user, Scopes: scopes})
	}
	ts, err := auth.NewStaticTokenStore(f)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(context.Background(), Config{Storage: w.store, Authenticator: ts, Authorizer: authorizer,
		OCI: OCIConfig{UploadPurgeInterval: -1}})
	if err != nil {
		t.Fatal(err)
	}
	w.srv = httptest.NewServer(reg)
	t.Cleanup(func() { w.srv.Close(); reg.Close() })

	layer := []byte("layer")
	w.expect(w.do("owner", "POST", "/v2/team/app/blobs/uploads/?digest="+digest.FromBytes(layer).String(), string(layer)), http.StatusCreated)
	w.expect(w.do("owner", "PUT", "/npm/@team%2fpkg", string(npmPublishBody(w.srv.URL, "@team/pkg", "1.0.0"))), http.StatusCreated)
	w.store.take("repositories")
	w.store.take("npm/packages")
	return w
}

func (w *visibilityWorld) do(user, method, path, body string) *http.Response {
	w.t.Helper()
	req, _ := http.NewRequest(method, w.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if strings.HasPrefix(user, "Bearer ") {
		req.Header.Set("Authorization", user)
	} else if user != "" {
		req.SetBasicAuth(user, w.tokens[user])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp
}

func (w *visibilityWorld) expect(resp *http.Response, status int) {
	w.t.Helper()
	resp.Body.Close()
	if resp.StatusCode != status {
		w.t.Fatalf("%s %s: %s, want %d", resp.Request.Method, resp.Request.URL.Path, resp.Status, status)
	}
}

// catalog returns the status and the repositories listed.
func (w *visibilityWorld) catalog(user string) (int, []string) {
	resp := w.do(user, "GET", "/v2/_catalog", "")
	defer resp.Body.Close()
	var body struct{ Repositories []string }
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Repositories
}

// search returns the status and the names found.
func (w *visibilityWorld) search(user string) (int, []string) {
	resp := w.do(user, "GET", "/npm/-/v1/search?text=pkg", "")
	defer resp.Body.Close()
	var body struct {
		Objects []struct{ Package struct{ Name string } }
	}
	json.NewDecoder(resp.Body).Decode(&body)
	var names []string
	for _, o := range body.Objects {
		names = append(names, o.Package.Name)
	}
	return resp.StatusCode, names
}

// jwtFor buys a token-flow JWT for pulling team/app with user's token.
func (w *visibilityWorld) jwtFor(user string) string {
	w.t.Helper()
	resp := w.do(user, "GET", "/token?service=unireg&scope=repository:team/app:pull", "")
	defer resp.Body.Close()
	var out struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&out)
	if out.Token == "" {
		w.t.Fatalf("token endpoint for %s: %s", user, resp.Status)
	}
	return "Bearer " + out.Token
}

// A caller no scope lets see any repository (or package) gets the answer it
// always got, without the registry listing its storage for it: the walk
// costs in proportion to the registry's size, and anyone can ask.
func TestListingsWalkNothingForCallersWithNothingToSee(t *testing.T) {
	w := newVisibilityWorld(t, nil)
	catalogs := []struct {
		caller string
		status int
		repos  int
		walks  bool
	}{
		{"", http.StatusUnauthorized, 0, false}, // anonymous, no anonymous scopes
		{"npmonly", http.StatusOK, 0, false},
		{"writers", http.StatusOK, 0, false}, // `*:package:...` names npm's type only
		{"deleter", http.StatusOK, 0, false},
		{"strange", http.StatusOK, 0, false},
		{w.jwtFor("npmonly"), http.StatusOK, 0, false}, // a JWT whose access is empty
		{"ocionly", http.StatusOK, 1, true},
		{"pushers", http.StatusOK, 1, true},
		{w.jwtFor("ocionly"), http.StatusOK, 1, true},
		{"owner", http.StatusOK, 1, true},
	}
	for _, c := range catalogs {
		status, repos := w.catalog(c.caller)
		walked := w.store.take("repositories") > 0
		if status != c.status || len(repos) != c.repos || walked != c.walks {
			t.Errorf("catalog as %.20q: %d %v, walked %v; want %d, %d repositories, walked %v",
				c.caller, status, repos, walked, c.status, c.repos, c.walks)
		}
	}
	searches := []struct {
		caller string
		hits   int
		walks  bool
	}{
		{"", 0, false},
		{"ocionly", 0, false},
		{"pushers", 0, false},
		{"deleter", 0, false},
		{"strange", 0, false}, // delete alone does not read
		{w.jwtFor("ocionly"), 0, false},
		{"npmonly", 1, true},  // the first caller who may see builds the search index
		{"writers", 1, false}, // which answers the next ones from memory
		{"owner", 1, false},
	}
	for _, c := range searches {
		status, names := w.search(c.caller)
		walked := w.store.take("npm/packages") > 0
		if status != http.StatusOK || len(names) != c.hits || walked != c.walks {
			t.Errorf("search as %.20q: %d %v, walked %v; want 200, %d hits, walked %v", c.caller, status, names, walked, c.hits, c.walks)
		}
	}
}

// With anonymous scopes, anonymous callers see what those allow, and with a
// custom Authorizer, scopes say nothing about an authenticated caller: the
// walks happen.
func TestListingsStillWalkWhenSomethingMayBeVisible(t *testing.T) {
	w := newVisibilityWorld(t, allowAll{})
	if status, repos := w.catalog("npmonly"); status != http.StatusOK || len(repos) != 1 {
		t.Errorf("catalog with a custom Authorizer: %d %v, want team/app", status, repos)
	}
	if status, names := w.search("ocionly"); status != http.StatusOK || len(names) != 1 {
		t.Errorf("search with a custom Authorizer: %d %v, want @team/pkg", status, names)
	}
	// A JWT does exactly what it carries, whatever the Authorizer.
	w.store.take("repositories")
	if status, repos := w.catalog(w.jwtFor("npmonly")); status != http.StatusOK || len(repos) != 1 || w.store.take("repositories") == 0 {
		t.Errorf("catalog with a JWT for team/app (custom Authorizer): %d %v", status, repos)
	}

	reg, err := New(context.Background(), Config{Storage: w.store, AnonymousScopes: []string{"oci:repository:team/*:pull", "npm:package:@team/*:read"}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	w.srv = srv
	if status, repos := w.catalog(""); status != http.StatusOK || len(repos) != 1 {
		t.Errorf("anonymous catalog with anonymous pull scopes: %d %v", status, repos)
	}
	if status, names := w.search(""); status != http.StatusOK || len(names) != 1 {
		t.Errorf("anonymous search with anonymous read scopes: %d %v", status, names)
	}
}
