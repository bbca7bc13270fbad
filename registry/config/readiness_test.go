package config

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The readiness checks of an auth store fed through the API (a Secret) say
// what state it is in, never what the refused version held: /readyz
// answers anyone.
func TestAuthStoreReadinessRevealsNothingOfTheStore(t *testing.T) {
	const user, scope = "dave-from-payroll", "npm:package:@payroll/app:fly"
	bad := []byte("version: 1\ntokens:\n  - hash: sha256:" + strings.Repeat("a", 64) + "\n    user: " + user + "\n    scopes: [\"" + scope + "\"]\n")
	good := []byte("version: 1\ntokens: []\n")
	ts := auth.NewTokenStore(auth.TokenStoreOptions{})
	reg, err := registry.New(context.Background(), registry.Config{Storage: inmemory.New(), ReadyChecks: authStoreChecks(ts)})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	readyz := func() (int, string) {
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	for _, step := range []struct {
		name    string
		apply   []byte
		code    int
		message string
	}{
		{"first version refused", bad, 503, "not ready: auth store: auth store not loaded yet"},
		{"loaded", good, 200, "ok"},
		{"later version refused", bad, 200, "warning: auth store: last reload failed"},
	} {
		_ = ts.Apply(step.apply)
		code, body := readyz()
		if code != step.code || !strings.Contains(body, step.message) {
			t.Errorf("%s: %d %q, want %d with %q", step.name, code, body, step.code, step.message)
		}
		for _, secret := range []string{user, "payroll", "fly", "tokens["} {
			if strings.Contains(body, secret) {
				t.Errorf("%s: readyz reveals %q: %q", step.name, secret, body)
			}
		}
	}
}
