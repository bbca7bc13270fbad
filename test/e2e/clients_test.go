//go:build e2e

package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// repoRoot is the repository's root folder (tests run in test/e2e).
func repoRoot(t *testing.T) string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool is a client binary: $env, else the default path under the repository.
func tool(t *testing.T, env, rel string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	p := filepath.Join(repoRoot(t), rel)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found (%v): run make client-tools minio, or set %s", p, err, env)
	}
	return p
}

// credential is what a RegistryToken's Secret hands out.
type credential struct {
	token     string
	user      string
	registry  string // the URL in key "registry"
	npmrc     string
	dockerCfg map[string]dockerAuth
}

type dockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"`
}

func credentialFrom(t *testing.T, s *corev1.Secret) credential {
	t.Helper()
	if s.Type != corev1.SecretTypeDockerConfigJson {
		t.Fatalf("Secret %s has type %s, want %s", s.Name, s.Type, corev1.SecretTypeDockerConfigJson)
	}
	var cfg struct {
		Auths map[string]dockerAuth `json:"auths"`
	}
	if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		t.Fatalf("Secret %s: .dockerconfigjson: %v", s.Name, err)
	}
	c := credential{token: string(s.Data["token"]), registry: string(s.Data["registry"]), npmrc: string(s.Data[".npmrc"]), dockerCfg: cfg.Auths}
	u, err := url.Parse(c.registry)
	if err != nil {
		t.Fatalf("Secret %s: registry %q: %v", s.Name, c.registry, err)
	}
	a, ok := cfg.Auths[u.Host]
	if !ok || a.Password != c.token || c.token == "" {
		t.Fatalf("Secret %s: .dockerconfigjson has no credential for %s matching its token", s.Name, u.Host)
	}
	c.user = a.Username
	return c
}

// dockerConfigDir writes a docker config.json with the Secret's credentials,
// and the same credential for addr when the host reaches the registry under
// another address than the Secret names (a port-forward).
func (c credential) dockerConfigDir(t *testing.T, addr string) string {
	t.Helper()
	auths := map[string]dockerAuth{}
	for host, a := range c.dockerCfg {
		auths[host] = a
	}
	if _, ok := auths[addr]; !ok {
		auths[addr] = dockerAuth{Username: c.user, Password: c.token, Auth: base64.StdEncoding.EncodeToString([]byte(c.user + ":" + c.token))}
	}
	dir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"auths": auths})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// npmrcFile writes the Secret's .npmrc with the registry's address replaced
// by addr (the in-cluster DNS name does not resolve on the host).
func (c credential) npmrcFile(t *testing.T, addr string) string {
	t.Helper()
	u, _ := url.Parse(c.registry)
	if !strings.Contains(c.npmrc, "_authToken="+c.token) {
		t.Fatal(".npmrc in the Secret carries no _authToken for the token")
	}
	rc := strings.ReplaceAll(c.npmrc, u.Host, addr)
	p := filepath.Join(t.TempDir(), ".npmrc")
	if err := os.WriteFile(p, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// command runs a client and returns its combined output. Tokens never reach
// the output: the clients read them from files.
func command(t *testing.T, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// crane runs the crane CLI with the docker config in cfgDir.
func crane(t *testing.T, cfgDir string, args ...string) (string, error) {
	t.Helper()
	return command(t, "", []string{"DOCKER_CONFIG=" + cfgDir}, tool(t, "E2E_CRANE", "bin/crane"), append(args, "--insecure")...)
}

// npm runs the npm CLI with its own HOME and cache, and the given .npmrc.
func npm(t *testing.T, dir, npmrc string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	env := []string{"HOME=" + home, "npm_config_cache=" + filepath.Join(home, "cache"), "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false"}
	return command(t, dir, env, "npm", append(args, "--userconfig", npmrc)...)
}

// httpClient bounds every request of the suite, so that a hung registry
// fails a step instead of stalling it.
var httpClient = &http.Client{Timeout: 15 * time.Second}

// bearer gets a JWT from a registry through the Docker token flow, with the
// opaque token as the Basic password, for scope.
func bearer(addr string, c credential, scope string) (string, int, error) {
	resp, err := httpClient.Get("http://" + addr + "/v2/")
	if err != nil {
		return "", 0, err
	}
	resp.Body.Close()
	challenge := resp.Header.Get("WWW-Authenticate")
	params := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(challenge, "Bearer "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		params[k] = strings.Trim(v, `"`)
	}
	realm, err := url.Parse(params["realm"])
	if err != nil || params["realm"] == "" {
		return "", 0, fmt.Errorf("challenge %q has no realm", challenge)
	}
	q := url.Values{"service": {params["service"]}, "scope": {scope}}
	req, _ := http.NewRequest(http.MethodGet, realm.String()+"?"+q.Encode(), nil)
	req.SetBasicAuth(c.user, c.token)
	resp, err = httpClient.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, nil
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", resp.StatusCode, err
	}
	return body.Token, resp.StatusCode, nil
}

// do sends one request and returns status, headers and body.
func do(t *testing.T, method, rawURL, jwt string, body []byte, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if jwt != "" {
		req.Header.Set("Authorization", "Bearer "+jwt)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// minio is a MinIO server on this host, listening on every interface so
// that pods reach it at the node address.
type minio struct {
	port                 int
	accessKey, secretKey string
}

// startMinIO fails t when MinIO does not start, and stops it when owner
// ends.
func startMinIO(t, owner *testing.T) *minio {
	t.Helper()
	bin := tool(t, "E2E_MINIO", "tools/bin/minio")
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	m := &minio{port: port, accessKey: "unireg-e2e", secretKey: hex.EncodeToString(randomBytes(16))}
	dir := owner.TempDir()
	cmd := exec.Command(bin, "server", filepath.Join(dir, "data"), "--address", fmt.Sprintf(":%d", port), "--console-address", "127.0.0.1:0", "--quiet")
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.accessKey, "MINIO_ROOT_PASSWORD="+m.secretKey, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	logf, _ := os.Create(filepath.Join(dir, "minio.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	eventually(t, time.Minute, "MinIO live", func() (bool, string) {
		resp, err := httpClient.Get(fmt.Sprintf("http://127.0.0.1:%d/minio/health/live", port))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return m
}

// readDockerConfig reads the auths of a docker config folder.
func readDockerConfig(t *testing.T, dir string) map[string]dockerAuth {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]dockerAuth `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Auths
}
