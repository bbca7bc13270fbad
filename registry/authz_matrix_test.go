package registry

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// The authorisation matrix of the OCI API: every route against every kind of
// caller, with the outcome of each cell written down. A = the request
// succeeds (its route's success status); D = it is refused (401 or 403).
// Columns, in order (see matrixCallers):
//
//	anon nomatch readonly othername npmro expired revoked jwtkey jwtsvc jwtrepo jwttamper jwtnone
//	jwtowner jwtgone jwtanon orphan narrow owner
//
// The target is repository team-b/app, where the owner (scopes on team-b/*)
// pushed an image tagged v1 and started an upload.
var ociMatrix = []struct {
	name, method, path string // path placeholders: {M} manifest digest, {L} layer digest, {U} upload path
	want               string
}{
	// Any valid credential may ask the base endpoint, a JWT for another
	// repository included.
	{"base", "GET", "/v2/", "DAAAADDDDADDADADAA"},
	{"manifest by tag", "GET", "/v2/team-b/app/manifests/v1", "DDADADDDDDDDADDDDA"},
	{"manifest head", "HEAD", "/v2/team-b/app/manifests/v1", "DDADADDDDDDDADDDDA"},
	{"manifest by digest", "GET", "/v2/team-b/app/manifests/{M}", "DDADADDDDDDDADDDDA"},
	{"manifest put", "PUT", "/v2/team-b/app/manifests/v2", "DDDDDDDDDDDDADDDDA"},
	{"manifest delete", "DELETE", "/v2/team-b/app/manifests/{M}", "DDDDDDDDDDDDADDDDA"},
	{"blob get", "GET", "/v2/team-b/app/blobs/{L}", "DDADADDDDDDDADDDDA"},
	{"blob head", "HEAD", "/v2/team-b/app/blobs/{L}", "DDADADDDDDDDADDDDA"},
	{"blob delete", "DELETE", "/v2/team-b/app/blobs/{L}", "DDDDDDDDDDDDADDDDA"},
	{"upload start", "POST", "/v2/team-b/app/blobs/uploads/", "DDDDDDDDDDDDADDDDA"},
	{"upload status", "GET", "{U}", "DDDDDDDDDDDDADDDDA"},
	{"upload chunk", "PATCH", "{U}", "DDDDDDDDDDDDADDDDA"},
	{"upload finish", "PUT", "{U}", "DDDDDDDDDDDDADDDDA"},
	{"upload cancel", "DELETE", "{U}", "DDDDDDDDDDDDADDDDA"},
	{"tag list", "GET", "/v2/team-b/app/tags/list", "DDADADDDDDDDADDDDA"},
	{"referrers", "GET", "/v2/team-b/app/referrers/{M}", "DDADADDDDDDDADDDDA"},
	// The catalog answers every valid credential; A here means team-b/app is
	// listed (pull on it), D that it is not or the caller is refused.
	{"catalog", "GET", "/v2/_catalog", "DDADADDDDDDDADDDDA"},
	// The token endpoint: A means the JWT it issues grants the scope asked.
	// For the JWT callers these are renewals, which the realm refuses: a
	// renewed JWT would outlive the token it was bought with.
	{"token pull", "GET", "/token?service=unireg-test&scope=repository:team-b/app:pull", "DDADADDDDDDDDDDDDA"},
	{"token push", "GET", "/token?service=unireg-test&scope=repository:team-b/app:pull,push", "DDDDDDDDDDDDDDDDDA"},
	// The token endpoint's POST form (OAuth2 password grant): the caller's
	// credential travels in the body (a Bearer credential as the password).
	{"token pull form", "POST", "/token", "DDADADDDDDDDDDDDDA"},
	{"token push form", "POST", "/token", "DDDDDDDDDDDDDDDDDA"},
	// JWT renewal as clients would try it: the caller's credential, JWT or
	// registry token, as a Bearer token at the realm.
	{"token renew", "GET", "/token?service=unireg-test&scope=repository:team-b/app:pull,push", "DDDDDDDDDDDDDDDDDA"},
}

// A caller is a way of presenting credentials, built against one registry.
type matrixCaller struct {
	name string
	auth func(w *matrixWorld, r *http.Request)
}

var matrixCallers = []matrixCaller{
	{"anon", func(*matrixWorld, *http.Request) {}},
	{"nomatch", basic("nomatch")},
	{"readonly", basic("readonly")},
	{"othername", basic("othername")},
	{"npmro", func(w *matrixWorld, r *http.Request) { r.SetBasicAuth("owner", w.npmReadonly) }},
	{"expired", basic("expired")},
	{"revoked", func(w *matrixWorld, r *http.Request) { r.SetBasicAuth("owner", w.revoked) }},
	{"jwtkey", bearerJWT(func(w *matrixWorld) string {
		return w.mint([]byte(strings.Repeat("x", 32)), "unireg-test", "team-b/app", jwt.SigningMethodHS256)
	})},
	{"jwtsvc", bearerJWT(func(w *matrixWorld) string {
		return w.mint(w.key, "another-registry", "team-b/app", jwt.SigningMethodHS256)
	})},
	{"jwtrepo", bearerJWT(func(w *matrixWorld) string {
		return w.mint(w.key, "unireg-test", "team-a/app", jwt.SigningMethodHS256)
	})},
	{"jwttamper", bearerJWT(func(w *matrixWorld) string {
		// A valid JWT for team-a/app whose payload is edited to team-b/app.
		tok := w.mint(w.key, "unireg-test", "team-a/app", jwt.SigningMethodHS256)
		parts := strings.Split(tok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		parts[1] = base64.RawURLEncoding.EncodeToString(bytes.ReplaceAll(payload, []byte("team-a/app"), []byte("team-b/app")))
		return strings.Join(parts, ".")
	})},
	{"jwtnone", bearerJWT(func(w *matrixWorld) string {
		return w.mint(jwt.UnsafeAllowNoneSignatureType, "unireg-test", "team-b/app", jwt.SigningMethodNone)
	})},
	{"jwtowner", bearerJWT(func(w *matrixWorld) string { return w.jwtOwner })},
	{"jwtgone", bearerJWT(func(w *matrixWorld) string { return w.jwtGone })},
	{"jwtanon", bearerJWT(func(w *matrixWorld) string { return w.jwtAnon })},
	{"orphan", func(w *matrixWorld, r *http.Request) { r.SetBasicAuth("owner", w.orphan) }},
	{"narrow", func(w *matrixWorld, r *http.Request) { r.SetBasicAuth("owner", w.narrow) }},
	{"owner", basic("owner")},
}

func basic(user string) func(*matrixWorld, *http.Request) {
	return func(w *matrixWorld, r *http.Request) { r.SetBasicAuth(user, w.tokens[user]) }
}

func bearerJWT(make func(*matrixWorld) string) func(*matrixWorld, *http.Request) {
	return func(w *matrixWorld, r *http.Request) { r.Header.Set("Authorization", "Bearer "+make(w)) }
}

// matrixWorld is one registry with the target content and every caller's
// credentials.
type matrixWorld struct {
	t                     *testing.T
	srv                   *httptest.Server
	key                   []byte
	tokens                map[string]string // user -> opaque token
	npmReadonly, revoked  string            // tokens made through the npm token API
	orphan, narrow        string            // ditto, see the world's setup
	jwtOwner, jwtGone     string            // JWTs bought at the token endpoint
	jwtAnon               string
	manifest, layer, upld string
}

var matrixScopes = map[string][]string{
	"nomatch":   {"oci:repository:other/*:push", "npm:package:@other/*:write"},
	"readonly":  {"oci:repository:team-b/*:pull", "npm:package:@b/*:read"},
	"othername": {"oci:repository:team-a/*:*", "npm:package:@a/*:*"},
	"expired":   {"*"},
	"owner":     {"oci:repository:team-b/*:*", "npm:package:@b/*:*"},
}

func newMatrixWorld(t *testing.T) *matrixWorld {
	t.Helper()
	w := &matrixWorld{t: t, key: bytes.Repeat([]byte("k"), 32), tokens: map[string]string{}}
	f := &authstore.File{Version: authstore.Version}
	past := time.Now().Add(-time.Hour)
	for user, scopes := range matrixScopes {
		tok, err := auth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		w.tokens[user] = tok
		entry := authstore.Token{Hash: auth.HashToken(tok), User: user, Scopes: scopes}
		if user == "expired" {
			entry.ExpiresAt = &past
		}
		f.Tokens = append(f.Tokens, entry)
	}
	store, err := auth.NewStaticTokenStore(f)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(context.Background(), Config{Storage: inmemory.New(), Authenticator: store, JWTKey: w.key, TokenService: "unireg-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	w.srv = httptest.NewServer(reg)
	t.Cleanup(w.srv.Close)

	// The owner's content: an image tagged v1, an upload in progress, and
	// two npm tokens (one read-only, one revoked at once).
	layer, config := []byte("layer"), []byte("{}")
	w.layer = digest.FromBytes(layer).String()
	w.ownerDo("POST", "/v2/team-b/app/blobs/uploads/?digest="+w.layer, layer, nil, http.StatusCreated)
	w.ownerDo("POST", "/v2/team-b/app/blobs/uploads/?digest="+digest.FromBytes(config).String(), config, nil, http.StatusCreated)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":5}]}`, digest.FromBytes(config), w.layer))
	w.manifest = digest.FromBytes(manifest).String()
	w.ownerDo("PUT", "/v2/team-b/app/manifests/v1", manifest, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, http.StatusCreated)
	resp := w.ownerDo("POST", "/v2/team-b/app/blobs/uploads/", nil, nil, http.StatusAccepted)
	w.upld = resp.Header.Get("Location")
	w.npmReadonly = w.npmToken(true)
	w.revoked = w.npmToken(false)
	// JWTs: the owner's, for the target; one bought with an npm token of
	// the owner that is then revoked; an anonymous one.
	w.jwtOwner = w.buyJWT(w.tokens["owner"])
	gone := w.npmTokenWith(w.tokens["owner"], `{}`)
	w.jwtGone = w.buyJWT(gone)
	w.jwtAnon = w.buyJWT("")
	// orphan: an npm token made with an npm token of the owner that is then
	// revoked. narrow: an npm token of the owner limited to @b/pkg.
	parent := w.npmTokenWith(w.tokens["owner"], `{}`)
	w.orphan = w.npmTokenWith(parent, `{}`)
	w.narrow = w.npmTokenWith(w.tokens["owner"], `{"packages":["@b/pkg"]}`)
	for _, tok := range []string{w.revoked, gone, parent} {
		w.ownerDo("DELETE", "/npm/-/npm/v1/tokens/token/"+auth.TokenID(auth.HashToken(tok)), nil, nil, http.StatusNoContent)
	}
	return w
}

// buyJWT asks the token endpoint for everything on the target with token as
// the Basic password (none: anonymously).
func (w *matrixWorld) buyJWT(token string) string {
	w.t.Helper()
	req, _ := http.NewRequest("GET", w.srv.URL+"/token?service=unireg-test&scope=repository:team-b/app:pull,push,delete", nil)
	if token != "" {
		req.SetBasicAuth("owner", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK || out.Token == "" {
		w.t.Fatalf("setup: token endpoint answered %d", resp.StatusCode)
	}
	return out.Token
}

// npmTokenWith makes an npm token with token as the credential.
func (w *matrixWorld) npmTokenWith(token, body string) string {
	w.t.Helper()
	req, _ := http.NewRequest("POST", w.srv.URL+"/npm/-/npm/v1/tokens", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK || out.Token == "" {
		w.t.Fatalf("setup: npm token create answered %d", resp.StatusCode)
	}
	return out.Token
}

// ownerDo sends a request as the owner and requires the status.
func (w *matrixWorld) ownerDo(method, path string, body []byte, header map[string]string, want int) *http.Response {
	w.t.Helper()
	req, _ := http.NewRequest(method, w.srv.URL+path, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if strings.HasPrefix(path, "/npm/") {
		req.Header.Set("Authorization", "Bearer "+w.tokens["owner"])
	} else {
		req.SetBasicAuth("owner", w.tokens["owner"])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		w.t.Fatalf("setup %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp
}

func (w *matrixWorld) npmToken(readonly bool) string {
	w.t.Helper()
	body, _ := json.Marshal(map[string]any{"readonly": readonly})
	resp := w.ownerDo("POST", "/npm/-/npm/v1/tokens", body, map[string]string{"Content-Type": "application/json"}, http.StatusOK)
	var out struct {
		Token string `json:"token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.Token == "" {
		w.t.Fatal("the npm token API returned no token")
	}
	return out.Token
}

// mint signs a JWT granting pull and push on repo.
func (w *matrixWorld) mint(key any, service, repo string, method jwt.SigningMethod) string {
	now := time.Now()
	claims := auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "unireg", Subject: "owner", Audience: jwt.ClaimStrings{service},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)), ID: "matrix",
		},
		Access: []auth.ResourceActions{{Type: "repository", Name: repo, Actions: []string{"pull", "push", "delete"}}},
	}
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func TestAuthorizationMatrixOCI(t *testing.T) {
	for _, row := range ociMatrix {
		if len(row.want) != len(matrixCallers) {
			t.Fatalf("row %q has %d cells, want %d", row.name, len(row.want), len(matrixCallers))
		}
		for i, caller := range matrixCallers {
			t.Run(row.name+"/"+caller.name, func(t *testing.T) {
				w := newMatrixWorld(t) // each cell on fresh content: cells do not see each other's writes
				path := strings.NewReplacer("{M}", w.manifest, "{L}", w.layer, "{U}", w.upld).Replace(row.path)
				var body []byte
				header := map[string]string{}
				switch row.name {
				case "manifest put":
					body = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[]}`, digest.FromBytes([]byte("{}"))))
					header["Content-Type"] = "application/vnd.oci.image.manifest.v1+json"
				case "upload chunk":
					body, header["Content-Type"], header["Content-Range"] = []byte("abc"), "application/octet-stream", "0-2"
				case "token pull form", "token push form":
					scope := "repository:team-b/app:pull"
					if row.name == "token push form" {
						scope += ",push"
					}
					form := url.Values{"grant_type": {"password"}, "service": {"unireg-test"}, "client_id": {"matrix"}, "scope": {scope}}
					probe, _ := http.NewRequest("GET", "/", nil)
					caller.auth(w, probe)
					if user, pass, ok := probe.BasicAuth(); ok {
						form.Set("username", user)
						form.Set("password", pass)
					} else if b, ok := strings.CutPrefix(probe.Header.Get("Authorization"), "Bearer "); ok {
						form.Set("username", "owner")
						form.Set("password", b)
					}
					body, header["Content-Type"] = []byte(form.Encode()), "application/x-www-form-urlencoded"
				case "upload finish":
					path += "&digest=" + digest.FromBytes(nil).String()
					if !strings.Contains(path, "?") {
						path = strings.Replace(path, "&", "?", 1)
					}
				}
				req, _ := http.NewRequest(row.method, w.srv.URL+path, bytes.NewReader(body))
				for k, v := range header {
					req.Header.Set(k, v)
				}
				switch {
				case row.name == "token renew":
					asNPM(caller, w, req) // the credential as a Bearer token
				case !strings.HasSuffix(row.name, " form"):
					caller.auth(w, req)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got := ociOutcome(t, row.name, resp)
				if want := row.want[i]; got != want {
					t.Errorf("%s %s as %s: %c (status %d), the matrix says %c", row.method, row.path, caller.name, got, resp.StatusCode, want)
				}
			})
		}
	}
}

// ociOutcome reads a response as A (succeeded) or D (refused); anything
// else fails the test.
func ociOutcome(t *testing.T, row string, resp *http.Response) byte {
	t.Helper()
	code := resp.StatusCode
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		return 'D'
	}
	switch row {
	case "catalog":
		var c struct{ Repositories []string }
		json.NewDecoder(resp.Body).Decode(&c)
		if code == http.StatusOK && strings.Contains(strings.Join(c.Repositories, ","), "team-b/app") {
			return 'A'
		}
		if code == http.StatusOK {
			return 'D'
		}
	case "token pull", "token push", "token pull form", "token push form", "token renew":
		var tr struct{ Token string }
		json.NewDecoder(resp.Body).Decode(&tr)
		if code != http.StatusOK {
			break
		}
		var claims auth.Claims
		if _, _, err := jwt.NewParser().ParseUnverified(tr.Token, &claims); err != nil {
			t.Fatalf("token endpoint returned %q: %v", tr.Token, err)
		}
		want := "pull"
		if strings.HasPrefix(row, "token push") || row == "token renew" {
			want = "push"
		}
		for _, ra := range claims.Access {
			for _, a := range ra.Actions {
				if ra.Name == "team-b/app" && a == want {
					return 'A'
				}
			}
		}
		return 'D'
	default:
		if code >= 200 && code < 300 {
			return 'A'
		}
	}
	b, _ := io.ReadAll(resp.Body)
	t.Fatalf("%s: status %d is neither success nor refusal: %s", row, code, b)
	return 0
}

// The npm API's matrix, same columns and meaning, on package @b/pkg which
// the owner published (1.0.0, dist-tags latest and beta). npm callers
// present their credential as a bearer token, as npm does with _authToken.
var npmMatrix = []struct {
	name, method, path string // {R}: the package's current revision
	body               string
	want               string
}{
	{"packument", "GET", "/npm/@b%2fpkg", "", "DDADADDDDDDDDDDDAA"},
	{"version", "GET", "/npm/@b%2fpkg/1.0.0", "", "DDADADDDDDDDDDDDAA"},
	{"tarball", "GET", "/npm/@b%2fpkg/-/pkg-1.0.0.tgz", "", "DDADADDDDDDDDDDDAA"},
	{"publish", "PUT", "/npm/@b%2fpkg", "publish", "DDDDDDDDDDDDDDDDAA"},
	{"change", "PUT", "/npm/@b%2fpkg/-rev/{R}", "change", "DDDDDDDDDDDDDDDDAA"},
	{"unpublish", "DELETE", "/npm/@b%2fpkg/-rev/{R}", "", "DDDDDDDDDDDDDDDDAA"},
	{"tarball delete", "DELETE", "/npm/@b%2fpkg/-/pkg-1.0.0.tgz/-rev/{R}", "", "DDDDDDDDDDDDDDDDAA"},
	{"dist-tags", "GET", "/npm/-/package/@b%2fpkg/dist-tags", "", "DDADADDDDDDDDDDDAA"},
	{"dist-tag set", "PUT", "/npm/-/package/@b%2fpkg/dist-tags/next", `"1.0.0"`, "DDDDDDDDDDDDDDDDAA"},
	{"dist-tag delete", "DELETE", "/npm/-/package/@b%2fpkg/dist-tags/beta", "", "DDDDDDDDDDDDDDDDAA"},
	// A for search: the package is among the results.
	{"search", "GET", "/npm/-/v1/search?text=pkg", "", "DDADADDDDDDDDDDDAA"},
	{"whoami", "GET", "/npm/-/whoami", "", "DAAAADDDDADDADDDAA"},
	{"token list", "GET", "/npm/-/npm/v1/tokens", "", "DAAAADDDDADDADDDAA"},
	// A here means the list shows the owner's read-only npm token: only a
	// credential of the owner at least as broad as that token sees it.
	{"token list shows", "GET", "/npm/-/npm/v1/tokens", "", "DDDDADDDDDDDDDDDDA"},
	// Neither a token-flow JWT nor a read-only token may mint tokens.
	{"token create", "POST", "/npm/-/npm/v1/tokens", `{"readonly":true}`, "DADADDDDDDDDDDDDAA"},
	// Revoking the owner's read-only npm token: only the owner may; for
	// anyone else it is not theirs (404, counted as D).
	{"token revoke", "DELETE", "/npm/-/npm/v1/tokens/token/{K}", "", "DDDDDDDDDDDDDDDDDA"},
	// npm's legacy login: the credential travels in the body as the
	// password ({T}); A means it was accepted and handed back for npm to
	// store. Any registry token that authenticates may log in (what it may
	// do is still decided per request); a token-flow JWT may not.
	{"login", "PUT", "/npm/-/user/org.couchdb.user:owner", `{"name":"owner","password":"{T}"}`, "DAAAADDDDDDDDDDDAA"},
	// Logging out revokes the token the request is made with ({T}); A means
	// it did (`"ok": true`). A JWT cannot be revoked: its logout answers 200
	// with "ok": false and says so in npm-notice (D).
	{"logout", "DELETE", "/npm/-/user/token/{T}", "", "DAAAADDDDDDDDDDDAA"},
	// The audit endpoints answer "no advisories" to everyone: they read
	// nothing of the registry's content.
	{"audit", "POST", "/npm/-/npm/v1/security/advisories/bulk", `{}`, "AAAAAAAAAAAAAAAAAA"},
}

func TestAuthorizationMatrixNPM(t *testing.T) {
	for _, row := range npmMatrix {
		if len(row.want) != len(matrixCallers) {
			t.Fatalf("row %q has %d cells, want %d", row.name, len(row.want), len(matrixCallers))
		}
		for i, caller := range matrixCallers {
			t.Run(row.name+"/"+caller.name, func(t *testing.T) {
				w := newMatrixWorld(t)
				rev := w.publishNPM()
				probe, _ := http.NewRequest("GET", "/", nil)
				asNPM(caller, w, probe)
				presented := strings.TrimPrefix(probe.Header.Get("Authorization"), "Bearer ")
				if presented == "" {
					presented = "none" // an anonymous caller names some token
				}
				path := strings.NewReplacer("{R}", rev, "{K}", auth.TokenID(auth.HashToken(w.npmReadonly)), "{T}", presented).Replace(row.path)
				body := []byte(strings.ReplaceAll(row.body, "{T}", presented))
				switch row.body {
				case "publish":
					body = npmPublishBody(w.srv.URL, "@b/pkg", "1.0.1")
				case "change":
					body = w.packumentWithDeprecation(rev)
				}
				req, _ := http.NewRequest(row.method, w.srv.URL+path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if row.name != "login" { // login's credential is in the body only
					asNPM(caller, w, req)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got := npmOutcome(t, row.name, auth.TokenID(auth.HashToken(w.npmReadonly)), resp)
				if want := row.want[i]; got != want {
					t.Errorf("%s %s as %s: %c (status %d), the matrix says %c", row.method, row.path, caller.name, got, resp.StatusCode, want)
				}
			})
		}
	}
}

// asNPM presents the caller's credential as npm does: a bearer token.
func asNPM(c matrixCaller, w *matrixWorld, r *http.Request) {
	c.auth(w, r)
	if user, pass, ok := r.BasicAuth(); ok {
		_ = user
		r.Header.Set("Authorization", "Bearer "+pass)
	}
}

// npmOutcome reads a response as A or D; readonlyID is the id of the
// owner's read-only npm token.
func npmOutcome(t *testing.T, row, readonlyID string, resp *http.Response) byte {
	t.Helper()
	code := resp.StatusCode
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		return 'D'
	}
	if row == "search" && code == http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(b), `"@b/pkg"`) {
			return 'A'
		}
		return 'D'
	}
	if row == "token list shows" && code == http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		if strings.Contains(string(b), `"key":"`+readonlyID) {
			return 'A'
		}
		return 'D'
	}
	if row == "logout" && code == http.StatusOK {
		var answer struct{ OK bool }
		json.NewDecoder(resp.Body).Decode(&answer)
		if answer.OK {
			return 'A'
		}
		return 'D'
	}
	if code >= 200 && code < 300 {
		return 'A'
	}
	if row == "token revoke" && code == http.StatusNotFound {
		return 'D' // not the caller's token
	}
	if row == "tarball delete" && code == http.StatusConflict {
		// Past authorisation, refused because the published version still
		// uses the tarball (npm unpublishes the version first).
		return 'A'
	}
	b, _ := io.ReadAll(resp.Body)
	t.Fatalf("%s: status %d is neither success nor refusal: %s", row, code, b)
	return 0
}

// publishNPM publishes @b/pkg@1.0.0 with dist-tags latest and beta as the
// owner and returns the package's revision.
func (w *matrixWorld) publishNPM() string {
	w.t.Helper()
	w.ownerDo("PUT", "/npm/@b%2fpkg", npmPublishBody(w.srv.URL, "@b/pkg", "1.0.0"), map[string]string{"Content-Type": "application/json"}, http.StatusCreated)
	w.ownerDo("PUT", "/npm/-/package/@b%2fpkg/dist-tags/beta", []byte(`"1.0.0"`), map[string]string{"Content-Type": "application/json"}, http.StatusCreated)
	return w.revision()
}

func (w *matrixWorld) revision() string {
	w.t.Helper()
	resp := w.ownerDo("GET", "/npm/@b%2fpkg?write=true", nil, nil, http.StatusOK)
	var doc struct {
		Rev string `json:"_rev"`
	}
	json.NewDecoder(resp.Body).Decode(&doc)
	return doc.Rev
}

// packumentWithDeprecation is the document npm deprecate sends back.
func (w *matrixWorld) packumentWithDeprecation(rev string) []byte {
	w.t.Helper()
	resp := w.ownerDo("GET", "/npm/@b%2fpkg?write=true", nil, nil, http.StatusOK)
	var doc map[string]any
	json.NewDecoder(resp.Body).Decode(&doc)
	doc["versions"].(map[string]any)["1.0.0"].(map[string]any)["deprecated"] = "use 2"
	b, _ := json.Marshal(doc)
	return b
}

// npmPublishBody is what npm publish sends for a scoped package at version.
func npmPublishBody(base, name, version string) []byte {
	tgz := []byte("not really a tarball, but bytes with an integrity")
	sum := sha512Base64(tgz)
	_, short, _ := strings.Cut(name, "/")
	file := short + "-" + version + ".tgz"
	b, _ := json.Marshal(map[string]any{
		"_id": name, "name": name, "dist-tags": map[string]string{"latest": version},
		"versions": map[string]any{version: map[string]any{
			"name": name, "version": version,
			"dist": map[string]any{"integrity": "sha512-" + sum, "tarball": base + "/npm/" + name + "/-/" + file},
		}},
		"_attachments": map[string]any{file: map[string]any{
			"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz),
		}},
	})
	return b
}

func sha512Base64(b []byte) string {
	sum := sha512.Sum512(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Scope wildcards at their edges: team/* covers team/y and team/y/z, never
// teamx/y; @acme/* covers @acme/y, never @acmex/y.
func TestScopeWildcardsAtTheirEdges(t *testing.T) {
	tok, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewStaticTokenStore(&authstore.File{Version: authstore.Version, Tokens: []authstore.Token{{
		Hash: auth.HashToken(tok), User: "ci", Scopes: []string{"oci:repository:team/*:push", "npm:package:@acme/*:write"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(context.Background(), Config{Storage: inmemory.New(), Authenticator: store})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	send := func(method, path string, body []byte, bearer bool) int {
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if bearer {
			req.Header.Set("Authorization", "Bearer "+tok)
		} else {
			req.SetBasicAuth("ci", tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		repo string
		want int
	}{{"team/y", 202}, {"team/y/z", 202}, {"teamx/y", 403}, {"tea/y", 403}, {"team", 403}} {
		if got := send("POST", "/v2/"+c.repo+"/blobs/uploads/", nil, false); got != c.want {
			t.Errorf("upload to %s with team/*: %d, want %d", c.repo, got, c.want)
		}
	}
	for _, c := range []struct {
		pkg  string
		want int
	}{{"@acme/y", 201}, {"@acmex/y", 403}, {"@acm/y", 403}} {
		body := npmPublishBody(srv.URL, c.pkg, "1.0.0")
		if got := send("PUT", "/npm/"+strings.Replace(c.pkg, "/", "%2f", 1), body, true); got != c.want {
			t.Errorf("publish %s with @acme/*: %d, want %d", c.pkg, got, c.want)
		}
	}
}
