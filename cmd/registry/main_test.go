package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/auth"
)

// These tests run the real binary, as users and scripts do.

var registryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "unireg-bin")
	if err != nil {
		panic(err)
	}
	registryBin = filepath.Join(dir, "registry")
	if out, err := exec.Command("go", "build", "-o", registryBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build registry: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if leaks := secretsInServerLogs(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "secrets found in the logs of the servers this run started:\n%s\n", strings.Join(leaks, "\n"))
		code = 1
	}
	os.Exit(code)
}

// Every server the tests start keeps its logs here, so that TestMain can
// check, after the whole run, that none of them ever printed a secret.
var serverLogs struct {
	sync.Mutex
	byTest []testLogs
	// noted are secrets without a shape the sweep knows (a TLS private
	// key's PEM lines, its path), added by noteSecret.
	noted []string
}

// noteSecret makes the sweep after the run look for secret in every log.
func noteSecret(secret string) {
	serverLogs.Lock()
	defer serverLogs.Unlock()
	serverLogs.noted = append(serverLogs.noted, secret)
}

type testLogs struct {
	test string
	logs *syncBuffer
}

// secretShapes match the credentials the run uses whatever made them: the
// registry's tokens (admin tokens, auth-store tokens, npm tokens) and JWTs.
var secretShapes = regexp.MustCompile(`unireg_[0-9A-Za-z]{43}|eyJ[0-9A-Za-z_-]{8,}\.eyJ[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]*`)

// secretsInServerLogs names every server log holding a token, a JWT, the
// S3 secret key or a noted secret, without printing the secret itself.
func secretsInServerLogs() []string {
	var literal []string
	if k := os.Getenv("AWS_SECRET_ACCESS_KEY"); k != "" {
		literal = append(literal, k)
	}
	serverLogs.Lock()
	defer serverLogs.Unlock()
	var leaks []string
	for _, tl := range serverLogs.byTest {
		text := tl.logs.String()
		if loc := secretShapes.FindStringIndex(text); loc != nil {
			leaks = append(leaks, fmt.Sprintf("%s: a credential at byte %d: %q...", tl.test, loc[0], text[max(0, loc[0]-80):loc[0]]))
		}
		for _, secret := range literal {
			if i := strings.Index(text, secret); i >= 0 {
				leaks = append(leaks, fmt.Sprintf("%s: the S3 secret key at byte %d", tl.test, i))
			}
		}
		for _, secret := range serverLogs.noted {
			if i := strings.Index(text, secret); i >= 0 {
				leaks = append(leaks, fmt.Sprintf("%s: a noted secret (TLS key) at byte %d", tl.test, i))
			}
		}
	}
	return leaks
}

// syncBuffer collects the server's log lines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type server struct {
	bucket  string // the S3 bucket when the suite runs on S3, else ""
	t       testing.TB
	cmd     *exec.Cmd
	url     string
	dataDir string
	logs    *syncBuffer
	exited  chan error
}

var listeningRE = regexp.MustCompile(`"msg":"listening".*?"address":"([^"]+)"`)

// startServer runs the registry with a fresh (or given) data dir on a free
// port and waits until it listens.
func startServer(t testing.TB, dataDir string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, dataDir, nil, args...)
}

// startServerEnv is startServer with extra environment variables; flags in
// args come last, so they win over the S3 run's.
func startServerEnv(t testing.TB, dataDir string, env []string, args ...string) *server {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	s := &server{t: t, dataDir: dataDir, logs: &syncBuffer{}, exited: make(chan error, 1)}
	serverLogs.Lock()
	serverLogs.byTest = append(serverLogs.byTest, testLogs{test: t.Name(), logs: s.logs})
	serverLogs.Unlock()
	all := []string{"--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}
	if endpoint := os.Getenv("UNIREG_S3_ENDPOINT"); endpoint != "" {
		// The S3 run (make unit-s3): servers sharing a data dir share a bucket.
		s.bucket = fmt.Sprintf("t-%x", sha256.Sum256([]byte(dataDir)))[:40]
		all = append(all, "--s3-endpoint", endpoint, "--s3-bucket", s.bucket)
	}
	all = append(all, args...)
	s.cmd = exec.Command(registryBin, all...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(s.stop)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningRE.FindStringSubmatch(s.logs.String()); m != nil {
			s.url = "http://" + m[1]
			return s
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			t.Fatalf("registry exited: %v\n%s", err, s.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("registry did not start:\n%s", s.logs.String())
	return nil
}

func (s *server) stop() {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.exited <- nil
}

func (s *server) adminToken() string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin-token"))
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// request sends a request with Basic credentials when token is not empty.
func (s *server) request(method, path, token string, body io.Reader) *http.Response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.SetBasicAuth("user", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp
}

func (s *server) status(method, path, token string) int {
	resp := s.request(method, path, token, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFirstRunIsPrivateWithAReusedAdminToken(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	resp := s.request("GET", "/v2/", "", nil)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="`+s.url+`/token",service="unireg"`) {
		t.Fatalf("anonymous /v2/: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	token := s.adminToken()
	if !strings.HasPrefix(token, "unireg_") {
		t.Fatalf("admin token %q lacks the unireg_ prefix", token)
	}
	for _, name := range []string{"admin-token", "auth-store.yaml", "jwt.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", name, err, fi.Mode().Perm())
		}
	}
	if got := s.status("GET", "/v2/", token); got != 200 {
		t.Fatalf("/v2/ with the admin token: %d", got)
	}
	if strings.Contains(s.logs.String(), token) {
		t.Fatal("the admin token appears in the log")
	}
	if !strings.Contains(s.logs.String(), filepath.Join(dir, "admin-token")) {
		t.Fatal("the log does not say where the admin token is")
	}
	s.stop()

	again := startServer(t, dir)
	if again.adminToken() != token {
		t.Fatal("restart generated a new admin token")
	}
	if got := again.status("GET", "/v2/", token); got != 200 {
		t.Fatalf("/v2/ with the admin token after restart: %d", got)
	}
}

func TestAnonymousScopesOpenTheRegistryWithoutAnAdminToken(t *testing.T) {
	s := startServer(t, "", "--anonymous", "oci:repository:*:pull")
	if _, err := os.Stat(filepath.Join(s.dataDir, "admin-token")); err == nil {
		t.Fatal("an admin token was created although --anonymous was given")
	}
	if got := s.status("GET", "/v2/any/tags/list", ""); got != 404 {
		t.Fatalf("anonymous pull route: %d, want 404 NAME_UNKNOWN", got)
	}
	if got := s.status("POST", "/v2/any/blobs/uploads/", ""); got != 401 {
		t.Fatalf("anonymous push: %d, want 401", got)
	}
}

func TestAuthStoreChangesApplyWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "auth.yaml")
	const tokA, tokB = "unireg_tokenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "unireg_tokenBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	writeStore := func(content string) {
		tmp := store + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, store); err != nil {
			t.Fatal(err)
		}
	}
	entry := func(tok string) string {
		return fmt.Sprintf("  - hash: %s\n    user: u\n    scopes: [\"oci:repository:*:pull\"]\n", hashOf(tok))
	}
	writeStore("version: 1\ntokens:\n" + entry(tokA))
	s := startServer(t, "", "--auth-store", store)
	if got := s.status("GET", "/v2/", tokA); got != 200 {
		t.Fatalf("token A: %d", got)
	}
	writeStore("version: 1\ntokens:\n" + entry(tokB))
	eventually(t, 5*time.Second, "revoked token A refused", func() bool { return s.status("GET", "/v2/", tokA) == 401 })
	if got := s.status("GET", "/v2/", tokB); got != 200 {
		t.Fatalf("new token B: %d", got)
	}

	// A broken file keeps the previous tokens and shows in /readyz and metrics.
	writeStore("version: 1\ntokens: [this is not a token list\n")
	eventually(t, 5*time.Second, "readyz warns about the auth store", func() bool {
		resp := s.request("GET", "/readyz", "", nil)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && strings.Contains(string(b), "warning: auth store")
	})
	if got := s.status("GET", "/v2/", tokB); got != 200 {
		t.Fatalf("token B after a broken reload: %d", got)
	}
	resp := s.request("GET", "/metrics", "", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "unireg_auth_store_healthy 0") {
		t.Fatal("metrics do not show the unhealthy auth store")
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	out, err := exec.Command(registryBin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, flag := range []string{"listen", "data-dir", "config", "auth-store", "anonymous", "jwt-key-file", "public-url",
		"token-service", "token-ttl", "max-manifest-size", "upload-max-age", "oci-allow-sparse", "log-format", "shutdown-timeout"} {
		if !strings.Contains(string(out), "-"+flag) {
			t.Errorf("--help does not document --%s", flag)
		}
	}
	if !strings.Contains(string(out), "UNIREG_") {
		t.Error("--help does not explain the environment variables")
	}
}

func TestEveryRequestIsLoggedOnceWithoutSecrets(t *testing.T) {
	s := startServer(t, "")
	token := s.adminToken()
	// A JWT through the token flow, then used as Bearer.
	resp := s.request("GET", "/token?service=unireg&scope=repository:a:pull", token, nil)
	var tr struct {
		Token string `json:"token"`
	}
	json.NewDecoder(resp.Body).Decode(&tr)
	resp.Body.Close()
	if tr.Token == "" {
		t.Fatal("no JWT from the token endpoint")
	}
	req, _ := http.NewRequest("GET", s.url+"/v2/a/tags/list", nil)
	req.Header.Set("Authorization", "Bearer "+tr.Token)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	s.status("GET", "/v2/", "unireg_wrong_token_that_must_not_be_logged")

	var requests int
	eventually(t, 2*time.Second, "request lines logged", func() bool {
		requests = 0
		sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "request" {
				requests++
			}
		}
		return requests == 3
	})
	for _, secret := range []string{token, tr.Token, "unireg_wrong_token_that_must_not_be_logged"} {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatalf("a secret appears in the logs")
		}
	}
}

func TestMetricsCountRequestsByRoute(t *testing.T) {
	s := startServer(t, "")
	s.status("GET", "/v2/a/manifests/latest", s.adminToken())
	resp := s.request("GET", "/metrics", "", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`unireg_http_requests_total{method="GET",route="oci_manifest",status="404"} 1`,
		`unireg_http_request_duration_seconds_bucket{method="GET",route="oci_manifest",status="404"`,
		`unireg_http_sent_bytes_total{route="oci_manifest"}`,
		`unireg_uploads_in_progress 0`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	s := startServer(t, "")
	for _, p := range []string{"/healthz", "/readyz"} {
		if got := s.status("GET", p, ""); got != 200 {
			t.Errorf("%s: %d", p, got)
		}
	}
}

func hashOf(token string) string {
	return auth.HashToken(token)
}
