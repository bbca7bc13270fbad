package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/npm"
	"github.com/unireg/unireg/registry/oci"
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
	req.RemoteAddr = "10.0.0.1:4000" // an ingress controller, trusted by default
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

// A disabled protocol answers under its prefix in its own error format, so
// its clients can say why; the registry's own routes are untouched.
func TestDisabledProtocolAnswersInItsOwnFormat(t *testing.T) {
	const npmBody = `{"error":"the npm registry is disabled on this server"}`
	tests := []struct {
		name     string
		cfg      Config
		path     string
		status   int
		want     string // the body, or for OCI the error code
		wantCode bool
	}{
		{"npm root", Config{NPM: NPMConfig{Disabled: true}}, "/npm", 404, npmBody, false},
		{"npm package", Config{NPM: NPMConfig{Disabled: true}}, "/npm/@acme%2fx", 404, npmBody, false},
		{"npm moved prefix", Config{NPM: NPMConfig{Disabled: true, Settings: npm.Settings{Prefix: "/js/"}}}, "/js/-/ping", 404, npmBody, false},
		{"oci base", Config{OCI: OCIConfig{Disabled: true}}, "/v2/", 404, "UNSUPPORTED", true},
		{"oci manifest", Config{OCI: OCIConfig{Disabled: true}}, "/v2/a/manifests/latest", 404, "UNSUPPORTED", true},
		{"oci moved prefix", Config{OCI: OCIConfig{Disabled: true, Settings: oci.Settings{Prefix: "/registry/v2"}}}, "/registry/v2/", 404, "UNSUPPORTED", true},
		{"health unaffected", Config{OCI: OCIConfig{Disabled: true}, NPM: NPMConfig{Disabled: true}}, "/healthz", 200, "ok\n", false},
		{"the other protocol unaffected", Config{OCI: OCIConfig{Disabled: true}, DisableAuth: true}, "/npm/-/ping", 200, "{}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Storage = inmemory.New()
			reg, err := New(context.Background(), tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			w := httptest.NewRecorder()
			reg.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
			if w.Code != tt.status {
				t.Fatalf("GET %s: %d %s, want %d", tt.path, w.Code, w.Body.String(), tt.status)
			}
			if !tt.wantCode {
				if got := strings.TrimSpace(w.Body.String()); got != strings.TrimSpace(tt.want) {
					t.Fatalf("GET %s: body %s, want %s", tt.path, got, tt.want)
				}
				return
			}
			var body struct {
				Errors []struct{ Code, Message string }
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != tt.want {
				t.Fatalf("GET %s: body %s, want one %s error", tt.path, w.Body.String(), tt.want)
			}
		})
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

// `npm logout` names its token in the path; the request log must not.
func TestRequestLogRedactsTheLogoutToken(t *testing.T) {
	const token = "unireg_thisIsTheTokenNpmLogoutSendsInThePath0000"
	for _, disabled := range []bool{false, true} {
		var logs bytes.Buffer
		reg, err := New(context.Background(), Config{
			Storage: inmemory.New(), NPM: NPMConfig{Disabled: disabled},
			Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("DELETE", "/npm/-/user/token/"+token, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		reg.ServeHTTP(httptest.NewRecorder(), req)
		reg.Close()
		if strings.Contains(logs.String(), "TokenNpmLogout") || !strings.Contains(logs.String(), `/npm/-/user/token/[redacted]`) {
			t.Fatalf("npm disabled=%v: log %s", disabled, logs.String())
		}
	}
}
