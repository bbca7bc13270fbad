package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The exported defaults are what New applies to a zero Config, so that the
// flags showing them tell the truth. (DefaultUploadPurgeInterval has no
// observable effect within a test's time.)
func TestNewAppliesTheExportedDefaults(t *testing.T) {
	reg, err := New(context.Background(), Config{Storage: inmemory.New(), AnonymousScopes: []string{"oci:repository:*:pull"}})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if reg.cfg.TokenService != DefaultTokenService || reg.cfg.Limits.UploadsPerIdentity != DefaultUploadsPerIdentity {
		t.Errorf("service %q, uploads per identity %d", reg.cfg.TokenService, reg.cfg.Limits.UploadsPerIdentity)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/token?service=" + DefaultTokenService + "&scope=repository:x:pull")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		ExpiresIn int `json:"expires_in"`
	}
	// expires_in counts whole seconds from the answer, a moment after issue.
	err = json.NewDecoder(resp.Body).Decode(&body)
	if left := DefaultTokenTTL - time.Duration(body.ExpiresIn)*time.Second; err != nil || left < 0 || left > 2*time.Second {
		t.Errorf("token answer %d: expires_in %d (%v), want %s", resp.StatusCode, body.ExpiresIn, err, DefaultTokenTTL)
	}
}
