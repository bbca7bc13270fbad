package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "unireg test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a server certificate for 127.0.0.1 with the serial given, and
// its key; both PEM. The key's lines are noted for the log sweep.
func (ca *testCA) issue(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for _, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) >= 32 && !strings.HasPrefix(line, "-----") {
			noteSecret(line)
		}
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM
}

// secretVolume lays files out as the kubelet does in a Secret volume:
// tls.crt -> ..data/tls.crt, ..data -> ..TIMESTAMP, and an update writes a
// new timestamped directory and renames a new ..data symlink over the old.
type secretVolume struct {
	t   *testing.T
	dir string
	n   int
}

// newSecretVolume makes the volume's links; update gives them content.
func newSecretVolume(t *testing.T) *secretVolume {
	v := &secretVolume{t: t, dir: filepath.Join(t.TempDir(), "tls")}
	if err := os.Mkdir(v.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	noteSecret(v.keyFile())
	return v
}

func (v *secretVolume) certFile() string { return filepath.Join(v.dir, "tls.crt") }
func (v *secretVolume) keyFile() string  { return filepath.Join(v.dir, "tls.key") }

func (v *secretVolume) update(certPEM, keyPEM []byte) {
	t := v.t
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..2025_01_01_00_00_%02d.%d", v.n, time.Now().UnixNano())
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(v.dir, ts, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// tlsClient trusts only ca and opens a new connection for every request,
// so each one sees the certificate served at that moment.
func tlsClient(ca *testCA) *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool},
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
	}, Timeout: 10 * time.Second}
}

// startTLSServer starts the server with args and points s.url at https.
func startTLSServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	s := startServerEnv(t, "", env, args...)
	if !strings.Contains(s.logs.String(), `"tls":true`) {
		t.Fatalf("the listening line does not say tls:\n%s", s.logs.String())
	}
	s.url = "https://" + strings.TrimPrefix(s.url, "http://")
	return s
}

// servedSerial is the serial of the certificate a new connection is shown.
func servedSerial(t *testing.T, s *server, ca *testCA) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.url, "https://"), &tls.Config{RootCAs: ca.pool})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestTLSServesOCIAndNPMOverHTTPSWithHTTPSURLs(t *testing.T) {
	ca := newTestCA(t)
	vol := newSecretVolume(t)
	vol.update(ca.issue(t, 100))
	// No proxy is trusted, so forwarded headers cannot turn the URLs back to http.
	s := startTLSServer(t, nil, "--tls-cert-file", vol.certFile(), "--tls-key-file", vol.keyFile(), "--trusted-proxies", "none")
	client := tlsClient(ca)
	host := strings.TrimPrefix(s.url, "https://")

	req, _ := http.NewRequest("GET", s.url+"/v2/", nil)
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := `Bearer realm="https://` + host + `/token"`; resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), want) {
		t.Fatalf("anonymous GET /v2/ over TLS: %d %q, want 401 %s...", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 || resp.Proto != "HTTP/1.1" {
		t.Fatalf("connection: %s, TLS %+v; want HTTP/1.1 over TLS 1.2 or later", resp.Proto, resp.TLS)
	}

	token := s.adminToken()
	do := func(method, path string, body []byte) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, s.url+path, bytes.NewReader(body))
		req.SetBasicAuth("u", token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := do("GET", "/v2/", nil); code != 200 {
		t.Fatalf("GET /v2/ with the admin token over TLS: %d", code)
	}
	tarball := []byte("a tarball served over TLS")
	if code, b := do("PUT", "/npm/tlspkg", publishBody("tlspkg", "1.0.0", tarball)); code != 200 && code != 201 {
		t.Fatalf("npm publish over TLS: %d %s", code, b)
	}
	code, b := do("GET", "/npm/tlspkg", nil)
	var doc struct {
		Versions map[string]struct {
			Dist struct{ Tarball string }
		}
	}
	if err := json.Unmarshal(b, &doc); code != 200 || err != nil {
		t.Fatalf("packument over TLS: %d %v %s", code, err, b)
	}
	url := doc.Versions["1.0.0"].Dist.Tarball
	if !strings.HasPrefix(url, "https://"+host+"/npm/") {
		t.Fatalf("tarball URL %q, want https://%s/npm/...", url, host)
	}
	if code, got := do("GET", strings.TrimPrefix(url, s.url), nil); code != 200 || !bytes.Equal(got, tarball) {
		t.Fatalf("tarball over TLS: %d %q", code, got)
	}
}

func TestTLSReloadsARotatedSecretVolumeWithoutRestartAndKeepsTheCertOnABrokenOne(t *testing.T) {
	ca := newTestCA(t)
	vol := newSecretVolume(t)
	vol.update(ca.issue(t, 1))
	s := startTLSServer(t, nil, "--tls-cert-file", vol.certFile(), "--tls-key-file", vol.keyFile())
	pid := s.cmd.Process.Pid
	if got := servedSerial(t, s, ca); got != 1 {
		t.Fatalf("serial %d served at start, want 1", got)
	}

	vol.update(ca.issue(t, 2))
	eventually(t, 5*time.Second, "the rotated certificate (serial 2) on a new connection", func() bool { return servedSerial(t, s, ca) == 2 })

	// A broken rotation: serial 3's certificate with another certificate's
	// key, so the pair does not load.
	cert3, _ := ca.issue(t, 3)
	_, otherKey := ca.issue(t, 4)
	vol.update(cert3, otherKey)
	deadline := time.Now().Add(3 * certCheckInterval)
	for time.Now().Before(deadline) {
		if got := servedSerial(t, s, ca); got != 2 {
			t.Fatalf("after a broken rotation the server shows serial %d, want the previous 2", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := strings.Count(s.logs.String(), "TLS certificate not reloaded"); n != 1 {
		t.Fatalf("the broken pair was logged %d times over several checks, want once:\n%s", n, s.logs.String())
	}
	if resp, err := tlsClient(ca).Get(s.url + "/v2/"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("GET /v2/ after a broken rotation: %v %v, want the 401 challenge", resp, err)
	}

	// The next good rotation is taken: the failure stopped nothing.
	vol.update(ca.issue(t, 5))
	eventually(t, 5*time.Second, "the certificate of serial 5 after the broken one", func() bool { return servedSerial(t, s, ca) == 5 })
	if s.cmd.ProcessState != nil || s.cmd.Process.Pid != pid {
		t.Fatal("the server restarted")
	}
	// The reload is logged after the new pair is in use: wait for the line
	// rather than read the log once.
	deadline = time.Now().Add(5 * time.Second)
	for !strings.Contains(s.logs.String(), `"serial":"5"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the reload is not logged with the new serial:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTLSFilesFromEnvironmentAndConfigFile(t *testing.T) {
	ca := newTestCA(t)
	vol := newSecretVolume(t)
	vol.update(ca.issue(t, 7))
	cfg := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("tls-cert-file: %s\ntls-key-file: %s\n", vol.certFile(), vol.keyFile())), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, start := range map[string]func() *server{
		"env": func() *server {
			return startTLSServer(t, []string{"UNIREG_TLS_CERT_FILE=" + vol.certFile(), "UNIREG_TLS_KEY_FILE=" + vol.keyFile()})
		},
		"config file": func() *server { return startTLSServer(t, nil, "--config", cfg) },
	} {
		s := start()
		if got := servedSerial(t, s, ca); got != 7 {
			t.Errorf("%s: serial %d, want 7", name, got)
		}
		s.stop()
	}
}

// runToExit runs the binary with args and returns its output, which the
// log sweep also reads, and its exit error.
func runToExit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all := append([]string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json"}, args...)
	cmd := exec.CommandContext(ctx, registryBin, all...)
	out, err := cmd.CombinedOutput()
	logs := &syncBuffer{}
	logs.Write(out)
	serverLogs.Lock()
	serverLogs.byTest = append(serverLogs.byTest, testLogs{test: t.Name(), logs: logs})
	serverLogs.Unlock()
	return string(out), err
}

func TestTLSRefusesToStartWithABadPairOrOneFlag(t *testing.T) {
	ca := newTestCA(t)
	cert, key := ca.issue(t, 10)
	_, otherKey := ca.issue(t, 11)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile := write("tls.crt", cert), write("tls.key", key)
	otherKeyFile, garbage := write("other.key", otherKey), write("garbage.pem", []byte("not a certificate\n"))
	missingKey := filepath.Join(dir, "missing.key")
	for _, p := range []string{keyFile, otherKeyFile, missingKey} {
		noteSecret(p)
	}
	for _, tc := range []struct {
		name string
		args []string
		flag string
	}{
		{"only the certificate", []string{"--tls-cert-file", certFile}, "--tls-key-file"},
		{"only the key", []string{"--tls-key-file", keyFile}, "--tls-cert-file"},
		{"a key of another certificate", []string{"--tls-cert-file", certFile, "--tls-key-file", otherKeyFile}, "--tls-key-file"},
		{"a missing key file", []string{"--tls-cert-file", certFile, "--tls-key-file", missingKey}, "--tls-key-file"},
		{"a certificate file that is no certificate", []string{"--tls-cert-file", garbage, "--tls-key-file", keyFile}, "--tls-cert-file"},
		{"a key file that is no key", []string{"--tls-cert-file", certFile, "--tls-key-file", certFile}, "--tls-key-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runToExit(t, tc.args...)
			if err == nil || strings.Contains(out, `"msg":"listening"`) {
				t.Fatalf("the server started (%v):\n%s", err, out)
			}
			if !strings.Contains(out, "registry: "+tc.flag+":") && !strings.Contains(out, "registry: "+tc.flag+" ") {
				t.Fatalf("the error does not name %s:\n%s", tc.flag, out)
			}
			for _, secret := range []string{keyFile, otherKeyFile, missingKey} {
				if strings.Contains(out, secret) {
					t.Fatalf("the output names the key file's path:\n%s", out)
				}
			}
		})
	}
}

// A client speaking plain HTTP to the TLS port learns nothing of the
// registry: Go's server answers 400 before any handler runs.
func TestTLSPortAnswersPlainHTTPWith400AndNothingElse(t *testing.T) {
	ca := newTestCA(t)
	vol := newSecretVolume(t)
	vol.update(ca.issue(t, 20))
	s := startTLSServer(t, nil, "--tls-cert-file", vol.certFile(), "--tls-key-file", vol.keyFile())
	plain := "http://" + strings.TrimPrefix(s.url, "https://")
	for _, path := range []string{"/v2/", "/v2/_catalog", "/npm/tlspkg", "/token", "/metrics"} {
		req, _ := http.NewRequest("GET", plain+path, nil)
		req.SetBasicAuth("u", s.adminToken())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("plain GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("plain GET %s: %d, want 400", path, resp.StatusCode)
		}
		for _, leak := range []string{"WWW-Authenticate", "Docker-Distribution-Api-Version", "Set-Cookie"} {
			if resp.Header.Get(leak) != "" {
				t.Errorf("plain GET %s answers with %s", path, leak)
			}
		}
		if text := string(b); !strings.Contains(text, "HTTPS") || strings.Contains(text, "{") || strings.Contains(text, "unireg") {
			t.Errorf("plain GET %s: body %q, want only Go's note that this is an HTTPS server", path, text)
		}
	}
	if strings.Contains(s.logs.String(), `"msg":"request"`) {
		t.Error("a plain-HTTP request reached the registry's handler")
	}
}
