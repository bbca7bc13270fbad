package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/authstore"
)

// The log sweep in TestMain finds credentials by their shape; it would prove
// nothing if real credentials did not have that shape.
func TestSecretShapesMatchRealCredentials(t *testing.T) {
	s := startServer(t, "")
	token := s.adminToken()
	if !secretShapes.MatchString(token) {
		t.Errorf("an admin token does not have the shape the log sweep looks for")
	}
	if jwt := fetchJWT(t, s, token); !secretShapes.MatchString(jwt) {
		t.Errorf("a JWT does not have the shape the log sweep looks for")
	}
	if secretShapes.MatchString("unireg_wrong_token_that_must_not_be_logged sha256:0123abcd") {
		t.Errorf("the sweep would flag what is no credential")
	}
}

func fetchJWT(t *testing.T, s *server, token string) string {
	t.Helper()
	resp := s.request("GET", "/token?service=unireg&scope=repository:team/app:pull,push", token, nil)
	defer resp.Body.Close()
	var tr struct {
		Token string `json:"token"`
	}
	json.NewDecoder(resp.Body).Decode(&tr)
	if tr.Token == "" {
		t.Fatalf("no JWT from the token endpoint: %s", resp.Status)
	}
	return tr.Token
}

// No answer repeats a credential it was sent (only the answer that creates a
// credential carries it), /metrics holds none, and neither does the log.
func TestSecretsStayOutOfAnswersMetricsAndLogs(t *testing.T) {
	s := startServer(t, "")
	admin := s.adminToken()
	jwt := fetchJWT(t, s, admin)
	tampered := jwt[:len(jwt)-4] + "AAAA"
	unknown, _ := authstore.NewToken() // well-formed, never registered
	wrongPassword, _ := authstore.NewToken()

	answers := map[string]string{} // request -> answer, but for those that create a credential
	send := func(method, path string, header map[string]string, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var h bytes.Buffer
		resp.Header.Write(&h)
		return resp.StatusCode, h.String() + "\r\n" + string(b)
	}
	keep := func(method, path string, header map[string]string, body string) int {
		t.Helper()
		code, answer := send(method, path, header, body)
		answers[fmt.Sprintf("%d: %s %s", len(answers), method, path)] = answer
		return code
	}
	bearer := func(v string) map[string]string { return map[string]string{"Authorization": "Bearer " + v} }
	basic := func(user, pw string) map[string]string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth(user, pw)
		return map[string]string{"Authorization": req.Header.Get("Authorization")}
	}
	jsonBody := map[string]string{"Content-Type": "application/json"}

	// Credentials that work, on both protocols.
	keep("GET", "/v2/team/app/tags/list", bearer(jwt), "")
	keep("GET", "/v2/", basic("admin", admin), "")
	keep("GET", "/npm/-/whoami", bearer(admin), "")
	// The token endpoint's POST form carries the password in the body.
	code, created := send("POST", "/token", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		url.Values{"grant_type": {"password"}, "service": {"unireg"}, "client_id": {"test"},
			"username": {"admin"}, "password": {admin}, "scope": {"repository:team/app:pull"}}.Encode())
	if code != http.StatusOK {
		t.Fatalf("token POST form: %d", code)
	}
	if strings.Contains(created, admin) {
		t.Errorf("the token endpoint's answer repeats the password it was sent")
	}
	// npm login (the password, a registry token, travels in the body; the
	// answer hands it back for the client to store) and token creation
	// answer with the credential: those answers are the one place it may be.
	code, created = send("PUT", "/npm/-/user/org.couchdb.user:admin", jsonBody, `{"name":"admin","password":"`+admin+`"}`)
	if code != http.StatusCreated || tokenOf(created) != admin {
		t.Fatalf("npm login: %d; the answer must carry the token for npm to store", code)
	}
	code, created = send("POST", "/npm/-/npm/v1/tokens", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + admin},
		`{"password":"`+admin+`","readonly":false}`)
	npmToken := tokenOf(created)
	if code != http.StatusOK || npmToken == "" || strings.Contains(created, admin) {
		t.Fatalf("npm token create: %d; the answer must carry a new token, not the password", code)
	}
	code, created = send("POST", "/npm/-/npm/v1/tokens", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + npmToken},
		`{"password":"`+admin+`","readonly":true}`)
	readonly := tokenOf(created)
	if code != http.StatusOK || readonly == "" || strings.Contains(created, admin) || strings.Contains(created, npmToken) {
		t.Fatalf("npm token create with an npm token: %d; the answer must carry only the new token", code)
	}
	keep("GET", "/npm/-/npm/v1/tokens", bearer(npmToken), "")
	keep("GET", "/npm/-/whoami", bearer(readonly), "")

	// Credentials that fail: the refusal must not echo them.
	for _, bad := range []map[string]string{
		bearer(unknown), bearer(tampered), basic("admin", wrongPassword), basic("admin", tampered),
	} {
		if c := keep("GET", "/v2/team/app/tags/list", bad, ""); c != http.StatusUnauthorized {
			t.Errorf("OCI with a bad credential: %d, want 401", c)
		}
		if c := keep("GET", "/npm/-/whoami", bad, ""); c != http.StatusUnauthorized {
			t.Errorf("npm with a bad credential: %d, want 401", c)
		}
		if c := keep("GET", "/token?service=unireg&scope=repository:team/app:pull", bad, ""); c != http.StatusUnauthorized {
			t.Errorf("token endpoint with a bad credential: %d, want 401", c)
		}
	}
	keep("POST", "/token", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		url.Values{"grant_type": {"password"}, "service": {"unireg"}, "username": {"admin"}, "password": {wrongPassword}}.Encode())
	keep("PUT", "/npm/-/user/org.couchdb.user:admin", jsonBody, `{"name":"admin","password":"`+wrongPassword+`"}`)
	keep("POST", "/npm/-/npm/v1/tokens", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + npmToken},
		`{"password":"`+wrongPassword+`","readonly":true}`)
	keep("DELETE", "/npm/-/user/token/"+unknown, bearer(npmToken), "")
	keep("GET", "/metrics", nil, "")

	secrets := map[string]string{"admin token": admin, "JWT": jwt, "tampered JWT": tampered, "unknown token": unknown,
		"wrong password": wrongPassword, "npm token": npmToken, "read-only npm token": readonly}
	for request, answer := range answers {
		for what, secret := range secrets {
			if strings.Contains(answer, secret) {
				t.Errorf("the answer to request %s carries the %s", request, what)
			}
		}
	}
	logs := s.logs.String()
	for what, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the log carries the %s", what)
		}
	}
}

// tokenOf reads the "token" of a JSON answer (after its headers).
func tokenOf(answer string) string {
	_, body, _ := strings.Cut(answer, "\r\n\r\n")
	var v struct {
		Token string `json:"token"`
	}
	json.Unmarshal([]byte(body), &v)
	return v.Token
}

// The sweep itself finds a credential in a server's log.
func TestLogSweepFindsACredential(t *testing.T) {
	token, _ := authstore.NewToken()
	leaky := &syncBuffer{}
	fmt.Fprintf(leaky, `{"msg":"request","authorization":"Bearer %s"}`+"\n", token)
	serverLogs.Lock()
	saved := serverLogs.byTest
	serverLogs.byTest = []testLogs{{test: "leaky", logs: leaky}}
	serverLogs.Unlock()
	leaks := secretsInServerLogs()
	serverLogs.Lock()
	serverLogs.byTest = saved
	serverLogs.Unlock()
	if len(leaks) != 1 || !strings.HasPrefix(leaks[0], "leaky:") || strings.Contains(leaks[0], token) {
		t.Fatalf("sweep of a log holding a token: %q; want one leak named after its test, without the token", leaks)
	}
}
