package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// /readyz answers anyone. After a bad auth-store reload it says only that
// the reload failed; the details, which name users and scopes, go to the
// log, once for the failure and not once per probe.
func TestReadinessDoesNotRevealTheAuthStore(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "auth.yaml")
	writeStore := func(content string) {
		tmp := store + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, store); err != nil {
			t.Fatal(err)
		}
	}
	const user, scope = "carol-from-accounting", "oci:repository:payroll/app:fly"
	writeStore("version: 1\ntokens:\n  - hash: " + hashOf("unireg_readinessTokenAAAAAAAAAAAAAAAAAAAAAAAAAAAA") +
		"\n    user: " + user + "\n    scopes: [\"oci:repository:payroll/app:pull\"]\n")
	s := startServer(t, "", "--auth-store", store)

	writeStore("version: 1\ntokens:\n  - hash: " + hashOf("unireg_readinessTokenBBBBBBBBBBBBBBBBBBBBBBBBBBBB") +
		"\n    user: " + user + "\n    scopes: [\"" + scope + "\"]\n")
	readyz := func() string {
		resp := s.request("GET", "/readyz", "", nil)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	eventually(t, 5*time.Second, "readyz reports the failed reload", func() bool {
		return strings.Contains(readyz(), "warning: auth store")
	})
	for range 5 {
		body := readyz()
		if !strings.Contains(body, "auth store: last reload failed") {
			t.Fatalf("readyz %q does not say the reload failed", body)
		}
		for _, secret := range []string{user, "payroll", "fly", "tokens[", "sha256"} {
			if strings.Contains(body, secret) {
				t.Fatalf("readyz reveals %q of the auth store: %q", secret, body)
			}
		}
		time.Sleep(1100 * time.Millisecond) // the store re-checks the file every second
	}
	logs := s.logs.String()
	if n := strings.Count(logs, user); n != 1 || !strings.Contains(logs, "payroll/app:fly") {
		t.Fatalf("the log names the failure's details %d times, want once:\n%s", n, logs)
	}
}
