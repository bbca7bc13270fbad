package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// userDB is a custom Authenticator, as a program with its own users has.
type userDB map[string]string // user -> password

func (db userDB) Authenticate(_ context.Context, c auth.Credentials) (*auth.Identity, error) {
	if pw, ok := db[c.Username]; ok && pw == c.Password {
		return &auth.Identity{Subject: c.Username}, nil
	}
	return nil, auth.ErrInvalidCredentials
}

// ownerAuthorizer lets each user push to repositories named after them.
type ownerAuthorizer struct{}

func (ownerAuthorizer) Authorize(_ context.Context, id *auth.Identity, a auth.Access) bool {
	return strings.HasPrefix(a.Name, id.Subject+"/")
}

func TestCustomAuthThroughTheTokenFlow(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	reg, err := New(context.Background(), Config{
		Storage:       inmemory.New(),
		Authenticator: userDB{"alice": "secret"},
		Authorizer:    ownerAuthorizer{},
		OnEvent: func(_ context.Context, e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()

	token := func(scope string) string {
		req, _ := http.NewRequest("GET", srv.URL+"/token?service=unireg&scope="+scope, nil)
		req.SetBasicAuth("alice", "secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr struct {
			Token string `json:"token"`
		}
		json.NewDecoder(resp.Body).Decode(&tr)
		return tr.Token
	}
	push := func(repo, jwt string) int {
		content := []byte("layer")
		req, _ := http.NewRequest("POST", srv.URL+"/v2/"+repo+"/blobs/uploads/?digest="+digest.FromBytes(content).String(), bytes.NewReader(content))
		req.Header.Set("Authorization", "Bearer "+jwt)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := push("alice/app", token("repository:alice/app:pull,push")); got != http.StatusCreated {
		t.Fatalf("alice pushing her own repository: %d", got)
	}
	if got := push("bob/app", token("repository:bob/app:pull,push")); got != http.StatusUnauthorized {
		t.Fatalf("alice pushing bob's repository: %d, want 401 (a JWT without the action)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Action != "blob.pushed" || events[0].Repository != "alice/app" || events[0].Identity.Subject != "alice" {
		t.Fatalf("events = %+v", events)
	}
}

func TestNewChecksConfig(t *testing.T) {
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Fatal("a registry without storage was built")
	}
	if _, err := New(context.Background(), Config{Storage: inmemory.New(), PublicURL: "registry.example.com"}); err == nil {
		t.Fatal("a relative PublicURL was accepted")
	}
	if _, err := New(context.Background(), Config{Storage: inmemory.New(), AnonymousScopes: []string{"oci:repository:*"}}); err == nil {
		t.Fatal("an invalid anonymous scope was accepted")
	}
}

func TestBaseURLFollowsProxyHeadersUnlessPublicURLIsSet(t *testing.T) {
	reg, _ := New(context.Background(), Config{Storage: inmemory.New()})
	defer reg.Close()
	req := httptest.NewRequest("GET", "/v2/", nil)
	req.Host = "internal:5000"
	if got := reg.BaseURL(req); got != "http://internal:5000" {
		t.Fatalf("BaseURL = %s", got)
	}
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "registry.example.com")
	if got := reg.BaseURL(req); got != "https://registry.example.com" {
		t.Fatalf("BaseURL behind a proxy = %s", got)
	}
	fixed, _ := New(context.Background(), Config{Storage: inmemory.New(), PublicURL: "https://r.example.com/"})
	defer fixed.Close()
	if got := fixed.BaseURL(req); got != "https://r.example.com" {
		t.Fatalf("BaseURL with PublicURL = %s", got)
	}
}

func TestDisabledOCIAnswersNotFound(t *testing.T) {
	reg, _ := New(context.Background(), Config{Storage: inmemory.New(), OCI: OCIConfig{Disabled: true}})
	defer reg.Close()
	w := httptest.NewRecorder()
	reg.ServeHTTP(w, httptest.NewRequest("GET", "/v2/", nil))
	if w.Code != http.StatusNotFound {
		t.Fatalf("disabled OCI /v2/: %d", w.Code)
	}
}

func TestDisableAuthAllowsEverything(t *testing.T) {
	reg, _ := New(context.Background(), Config{Storage: inmemory.New(), DisableAuth: true})
	defer reg.Close()
	w := httptest.NewRecorder()
	reg.ServeHTTP(w, httptest.NewRequest("POST", "/v2/any/repo/blobs/uploads/", nil))
	if w.Code != http.StatusAccepted {
		t.Fatalf("upload without auth: %d", w.Code)
	}
}
