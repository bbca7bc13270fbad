package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// everyoneMayDoAnything grants every access of an authenticated caller.
type everyoneMayDoAnything struct{}

func (everyoneMayDoAnything) Authorize(_ context.Context, id *auth.Identity, _ auth.Access) bool {
	return id != nil && !id.Anonymous
}

// syncLog is a log destination that handlers write to concurrently.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// requestLines are the request log lines, decoded.
func (l *syncLog) requestLines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if line["msg"] == "request" {
			out = append(out, line)
		}
	}
	return out
}

// A client that reaches the registry directly can put what it likes into
// X-Forwarded-* and X-Real-IP. Those headers are believed only from a peer
// in TrustedProxies (by default loopback and the private ranges): a client on
// loopback is trusted by default, and not once loopback is left out of the
// set. Checked where they show: the remote of the request log, the npm
// tarball URLs and the OCI token realm.
func TestForwardedHeadersAreBelievedOnlyFromTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		believe bool
	}{
		{"default set, client on loopback", nil, true},
		{"set without loopback", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, false},
		{"no proxy trusted", []netip.Prefix{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncLog{}
			reg, err := New(context.Background(), Config{
				Storage:        inmemory.New(),
				Authenticator:  userDB{"u": "pw-0123456789"},
				Authorizer:     everyoneMayDoAnything{},
				TrustedProxies: tc.trusted,
				Logger:         slog.New(slog.NewJSONHandler(logs, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			srv := httptest.NewServer(reg)
			defer srv.Close()
			direct, _ := url.Parse(srv.URL)

			forged := func(req *http.Request) {
				req.Header.Set("X-Forwarded-For", "203.0.113.7")
				req.Header.Set("X-Real-IP", "203.0.113.8")
				req.Header.Set("X-Forwarded-Host", "forged.example")
				req.Header.Set("X-Forwarded-Proto", "https")
			}
			do := func(method, path string, body []byte) *http.Response {
				t.Helper()
				req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
				req.SetBasicAuth("u", "pw-0123456789")
				req.Header.Set("Content-Type", "application/json")
				forged(req)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			wantHost, wantScheme, wantRemote := direct.Host, "http", "127.0.0.1"
			if tc.believe {
				wantHost, wantScheme, wantRemote = "forged.example", "https", "203.0.113.7"
			}

			// npm: the tarball URL of a packument.
			resp := do("PUT", "/npm/@p%2fpkg", npmPublishBody(srv.URL, "@p/pkg", "1.0.0"))
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("publish: %d", resp.StatusCode)
			}
			resp = do("GET", "/npm/@p%2fpkg", nil)
			var doc struct {
				Versions map[string]struct {
					Dist struct{ Tarball string } `json:"dist"`
				} `json:"versions"`
			}
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			tarball, err := url.Parse(doc.Versions["1.0.0"].Dist.Tarball)
			if err != nil || tarball.Host != wantHost || tarball.Scheme != wantScheme {
				t.Errorf("tarball URL %q, want %s://%s", doc.Versions["1.0.0"].Dist.Tarball, wantScheme, wantHost)
			}

			// OCI: the realm of the Bearer challenge.
			req, _ := http.NewRequest("GET", srv.URL+"/v2/", nil)
			forged(req)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			challenge := resp.Header.Get("WWW-Authenticate")
			if want := `realm="` + wantScheme + "://" + wantHost + `/token"`; !strings.Contains(challenge, want) {
				t.Errorf("challenge %q, want %s", challenge, want)
			}

			// The request log.
			lines := logs.requestLines(t)
			if len(lines) != 3 {
				t.Fatalf("%d request lines, want 3", len(lines))
			}
			for _, l := range lines {
				if l["remote"] != wantRemote {
					t.Errorf("%s %s logged remote %v, want %s", l["method"], l["path"], l["remote"], wantRemote)
				}
			}
		})
	}
}

// From a trusted proxy, the client is the right-most address of
// X-Forwarded-For that is not itself a trusted proxy: what is left of it was
// written by the client, who can claim any address there. X-Real-IP counts
// only without X-Forwarded-For, and only from a trusted proxy too.
func TestRemoteIsTheRightMostUntrustedForwardedAddress(t *testing.T) {
	for _, tc := range []struct {
		name, peer, xff, realIP, want string
	}{
		{"chain of trusted proxies", "10.0.0.1:4000", "198.51.100.9, 203.0.113.7, 10.0.0.5", "", "203.0.113.7"},
		{"several header lines", "10.0.0.1:4000", "198.51.100.9\n203.0.113.7", "", "203.0.113.7"},
		{"untrusted peer", "198.51.100.1:4000", "203.0.113.7", "", "198.51.100.1"},
		{"garbage from the client", "10.0.0.1:4000", "not-an-address, 203.0.113.7", "", "203.0.113.7"},
		{"X-Real-IP from a proxy", "192.168.1.1:4000", "", "203.0.113.8", "203.0.113.8"},
		{"X-Real-IP from a client", "198.51.100.1:4000", "", "203.0.113.8", "198.51.100.1"},
		{"IPv6 proxy", "[fd00::1]:4000", "2001:db8::7", "", "2001:db8::7"},
		{"IPv6 client", "[2001:db8::1]:4000", "2001:db8::7", "", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncLog{}
			reg, err := New(context.Background(), Config{Storage: inmemory.New(), Logger: slog.New(slog.NewJSONHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			req := httptest.NewRequest("GET", "/v2/", nil)
			req.RemoteAddr = tc.peer
			for _, v := range strings.Split(tc.xff, "\n") {
				if v != "" {
					req.Header.Add("X-Forwarded-For", v)
				}
			}
			if tc.realIP != "" {
				req.Header.Set("X-Real-IP", tc.realIP)
			}
			reg.ServeHTTP(httptest.NewRecorder(), req)
			lines := logs.requestLines(t)
			if len(lines) != 1 || lines[0]["remote"] != tc.want {
				t.Fatalf("logged %v, want remote %s", lines, tc.want)
			}
		})
	}
}
