package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// npm audit signatures with the real npm: registry signatures (ours for
// what is published here, the upstream's kept for what came through the
// uplink) verify with the keys unireg serves at /-/npm/v1/keys.
//
// npm asks the Sigstore TUF repository (https://tuf-repo-cdn.sigstore.dev)
// for signed copies of a registry's keys before it asks the registry, and
// gives up when that repository cannot be reached, whichever registry it
// checks (docs/npm.md#registry-signatures). So the test runs npm twice:
// as it is, which must pass where the internet is reachable and is
// skipped, with the reason, where it is not; and with that one TUF lookup
// answered as the real repository answers it for any registry but
// registry.npmjs.org ("target not found"), which is everything npm does
// next, unchanged, offline.

// tufNotFound replaces npm's @sigstore/tuf with a client that holds no
// target, which is what the real TUF repository answers for unireg's
// host: npm then asks the registry's own /-/npm/v1/keys.
const tufNotFound = `
const Module = require('module')
const load = Module._load
Module._load = function (request, parent, isMain) {
  if (request === '@sigstore/tuf') {
    return {
      initTUF: async () => ({
        getTarget: async (name) => {
          throw Object.assign(new Error('target ' + name + ' not found'), { code: 'TUF_FIND_TARGET_ERROR' })
        },
      }),
    }
  }
  return load.apply(this, arguments)
}
`

// npmWithoutTUF is the npm command line with tufNotFound preloaded.
func npmWithoutTUF(t *testing.T, w *npmWorld, npm []string) []string {
	t.Helper()
	cli, err := filepath.EvalSymlinks(npm[0])
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Ext(cli) != ".js" {
		t.Skipf("npm at %s is not npm-cli.js; cannot preload into it", cli)
	}
	preload := filepath.Join(w.home, "tuf-not-found.js")
	if err := os.WriteFile(preload, []byte(tufNotFound), 0o644); err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH")
	}
	return []string{node, "-r", preload, cli}
}

// auditSignatures runs `npm audit signatures` within a bound, returning
// its output and whether it succeeded.
func auditSignatures(t *testing.T, w *npmWorld, dir string, client []string, args ...string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := w.cmd(dir, client, append([]string{"audit", "signatures"}, args...)...)
	cmd := exec.CommandContext(ctx, c.Path, c.Args[1:]...)
	cmd.Dir, cmd.Env = c.Dir, c.Env
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("npm audit signatures did not end within 3 minutes:\n%s", out)
	}
	return string(out), err == nil
}

// offline reports whether npm failed for want of the Sigstore TUF
// repository.
func offline(out string) bool {
	return strings.Contains(out, "tuf-repo-cdn.sigstore.dev") ||
		strings.Contains(out, "TUF") && (strings.Contains(out, "ENOTFOUND") || strings.Contains(out, "EAI_AGAIN") || strings.Contains(out, "ECONNREFUSED"))
}

func TestNPMAuditSignaturesVerifiesPrivateAndProxiedPackages(t *testing.T) {
	npm := npmClient(t, "npm")
	s := startNPMCache(t, "--npm-local-scope", "@acme")
	w := newNPMWorld(t, s.cache, s.cache.adminToken())
	lib := w.pkg("lib", "@acme/signed-lib", "1.0.0", nil)
	w.run(lib, npm, "publish")
	app := w.project("app")
	w.run(app, npm, "install", "--no-audit", "@acme/signed-lib", "cache-tree-a")

	// The keys: the cache's own, then the upstream's.
	keysOf := func(srv *server) []string {
		var doc struct {
			Keys []struct {
				KeyID   string  `json:"keyid"`
				Expires *string `json:"expires"`
			} `json:"keys"`
		}
		resp := srv.request("GET", "/npm/-/npm/v1/keys", "", nil) // no token: public keys
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("keys of %s: %d %v", srv.url, resp.StatusCode, err)
		}
		var ids []string
		for _, k := range doc.Keys {
			ids = append(ids, k.KeyID)
		}
		return ids
	}
	upKeys, cacheKeys := keysOf(s.up), keysOf(s.cache)
	if len(upKeys) != 1 || len(cacheKeys) != 2 || cacheKeys[1] != upKeys[0] || cacheKeys[0] == upKeys[0] {
		t.Fatalf("keys: upstream %v, cache %v", upKeys, cacheKeys)
	}
	// A proxied version carries the upstream's signature, a local one ours.
	if sig := signatureKeyID(t, packumentFrom(t, s.cache, "cache-tree-d"), "1.2.0"); sig != upKeys[0] {
		t.Fatalf("proxied cache-tree-d signed by %q, want the upstream's %s", sig, upKeys[0])
	}
	if sig := signatureKeyID(t, packumentFrom(t, s.cache, "@acme/signed-lib"), "1.0.0"); sig != cacheKeys[0] {
		t.Fatalf("@acme/signed-lib signed by %q, want the cache's %s", sig, cacheKeys[0])
	}

	const want = "5 packages have verified registry signatures"
	t.Run("npm as it is", func(t *testing.T) {
		// Without retries, an unreachable TUF repository fails at once
		// rather than after npm's minute of backoff; online it changes
		// nothing.
		out, ok := auditSignatures(t, w, app, npm, "--fetch-retries=0")
		if !ok && offline(out) {
			t.Skipf("needs https://tuf-repo-cdn.sigstore.dev, which npm asks before any registry (docs/npm.md#registry-signatures):\n%s", out)
		}
		if !ok || !strings.Contains(out, want) {
			t.Fatalf("npm audit signatures:\n%s", out)
		}
	})
	t.Run("npm with the TUF lookup answered not found", func(t *testing.T) {
		s.proxy.take()
		out, ok := auditSignatures(t, w, app, npmWithoutTUF(t, w, npm))
		if !ok || !strings.Contains(out, "audited 5 packages") || !strings.Contains(out, want) {
			t.Fatalf("npm audit signatures:\n%s\nserver log tail:\n%s", out, tail(s.cache.logs.String(), 10))
		}
		t.Logf("npm audit signatures:\n%s", out)
		// Only the private package, installed from the registry alone.
		solo := w.project("solo")
		w.run(solo, npm, "install", "--no-audit", "@acme/signed-lib")
		out, ok = auditSignatures(t, w, solo, npmWithoutTUF(t, w, npm))
		if !ok || !strings.Contains(out, "1 package has a verified registry signature") {
			t.Fatalf("npm audit signatures of the private package:\n%s", out)
		}
	})
	t.Run("a tampered integrity fails", func(t *testing.T) {
		// A proxy in front of the cache changes the integrity of the
		// private package's document on the way, as an attacker between
		// client and registry would; keys pass untouched.
		target, _ := url.Parse(s.cache.url)
		forged := "sha512-" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x42}, 64))
		rp := &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Header.Del("Accept-Encoding") },
			ModifyResponse: func(resp *http.Response) error {
				if !strings.Contains(resp.Request.URL.Path, "signed-lib") || strings.HasSuffix(resp.Request.URL.Path, ".tgz") {
					return nil
				}
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					return err
				}
				b = regexp.MustCompile(`"integrity":"sha512-[^"]+"`).ReplaceAll(b, []byte(`"integrity":"`+forged+`"`))
				resp.Body = io.NopCloser(bytes.NewReader(b))
				resp.ContentLength = int64(len(b))
				resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
				resp.Header.Del("ETag")
				return nil
			},
		}
		mitm := httptest.NewServer(rp)
		t.Cleanup(mitm.Close)
		w.write(".npmrc", readFile(t, filepath.Join(w.home, ".npmrc"))+"//"+strings.TrimPrefix(mitm.URL, "http://")+"/npm/:_authToken="+s.cache.adminToken()+"\n")
		out, ok := auditSignatures(t, w, filepath.Join(w.home, "solo"), npmWithoutTUF(t, w, npm), "--registry", mitm.URL+"/npm/", "--prefer-online")
		if ok || !strings.Contains(out, "1 package has an invalid registry signature") {
			t.Fatalf("npm audit signatures of a tampered document succeeded or said something else:\n%s", out)
		}
		t.Logf("npm audit signatures of a tampered document:\n%s", out)
	})

	// The private keys never reach a log.
	raw := readFile(t, filepath.Join(s.cache.dataDir, "npm-signing-key.pem"))
	b, _ := pem.Decode([]byte(raw))
	body := strings.Join(strings.Split(strings.TrimSpace(raw), "\n")[1:3], "")
	for _, srv := range []*server{s.up, s.cache} {
		if b == nil || strings.Contains(srv.logs.String(), body) {
			t.Fatalf("the signing key shows in the log, or the key file is not PEM")
		}
	}
}

func signatureKeyID(t *testing.T, doc map[string]any, version string) string {
	t.Helper()
	v, _ := doc["versions"].(map[string]any)[version].(map[string]any)
	dist, _ := v["dist"].(map[string]any)
	sigs, _ := dist["signatures"].([]any)
	if len(sigs) != 1 {
		t.Fatalf("%s: signatures %v", version, dist["signatures"])
	}
	id, _ := sigs[0].(map[string]any)["keyid"].(string)
	return id
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
