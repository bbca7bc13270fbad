package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// tokenFixture is a token endpoint with a store of two users and an
// anonymous pull grant on public/*.
type tokenFixture struct {
	handler TokenHandler
	issuer  *JWTIssuer
	clock   *fakeClock
	puller  storeToken // pull on foo
	pusher  storeToken // push on team/*
}

func newTokenFixture(t *testing.T) *tokenFixture {
	t.Helper()
	f := &tokenFixture{
		clock:  &fakeClock{t: time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC)},
		puller: newStoreToken(t, "puller", "oci:repository:foo:pull"),
		pusher: newStoreToken(t, "pusher", "oci:repository:team/*:push", "npm:package:*:write"),
	}
	f.issuer = newTestIssuer(t, "unireg", f.clock)
	store := openStore(t, writeStore(t, f.puller, f.pusher), TokenStoreOptions{})
	f.handler = TokenHandler{Service: NewService(ServiceOptions{
		Authenticator: store,
		Anonymous:     mustScopes(t, "oci:repository:public/*:pull"),
		Issuer:        f.issuer,
	})}
	return f
}

func (f *tokenFixture) get(t *testing.T, query string, user, pass string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/token?"+query, nil)
	if user != "" || pass != "" {
		r.SetBasicAuth(user, pass)
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w
}

func (f *tokenFixture) post(t *testing.T, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	return w
}

// issuedToken checks a successful response and returns its claims.
func (f *tokenFixture) issuedToken(t *testing.T, w *httptest.ResponseRecorder) (*Identity, Claims) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", w.Body, err)
	}
	for _, k := range []string{"token", "access_token", "expires_in", "issued_at"} {
		if _, ok := body[k]; !ok {
			t.Errorf("response has no %q: %s", k, w.Body)
		}
	}
	token, _ := body["token"].(string)
	if token == "" || body["access_token"] != token {
		t.Errorf("token = %v, access_token = %v; want the same non-empty string", body["token"], body["access_token"])
	}
	if body["expires_in"] != float64(300) {
		t.Errorf("expires_in = %v, want 300", body["expires_in"])
	}
	if issued, _ := body["issued_at"].(string); issued != "2030-03-04T05:06:07Z" {
		t.Errorf("issued_at = %q, want 2030-03-04T05:06:07Z", issued)
	}
	id, err := f.issuer.Verify(token)
	if err != nil {
		t.Fatalf("Verify of the issued token: %v", err)
	}
	var c Claims
	if err := json.Unmarshal(decodeSegment(t, token, 1), &c); err != nil {
		t.Fatal(err)
	}
	return id, c
}

func TestTokenHandlerGrantsOnlyWhatTheCallerMayDo(t *testing.T) {
	f := newTokenFixture(t)
	w := f.get(t, "service=unireg&scope=repository:foo:pull,push", "puller", f.puller.token)
	id, c := f.issuedToken(t, w)
	if id.Subject != "puller" {
		t.Errorf("subject = %q, want puller", id.Subject)
	}
	want := []ResourceActions{{Type: "repository", Name: "foo", Actions: []string{"pull"}}}
	if !reflect.DeepEqual(c.Access, want) {
		t.Errorf("access = %+v, want %+v", c.Access, want)
	}
}

func TestTokenHandlerScopeRequests(t *testing.T) {
	f := newTokenFixture(t)
	tests := []struct {
		name   string
		query  string
		anon   bool // no credentials
		access []ResourceActions
	}{
		{
			name:   "push implies pull for the pusher",
			query:  "scope=repository:team/app:pull,push",
			access: []ResourceActions{{"repository", "team/app", []string{"pull", "push"}}},
		},
		{
			name:   "star expands to the actions the caller has",
			query:  "scope=repository:team/app:*",
			access: []ResourceActions{{"repository", "team/app", []string{"pull", "push"}}},
		},
		{
			name:   "refused repository is listed with no actions",
			query:  "scope=repository:teamx/app:pull",
			access: []ResourceActions{{"repository", "teamx/app", []string{}}},
		},
		{
			name:  "several scope parameters",
			query: "scope=repository:team/a:push&scope=repository:public/b:pull",
			access: []ResourceActions{
				{"repository", "team/a", []string{"push"}},
				{"repository", "public/b", []string{"pull"}},
			},
		},
		{
			name:  "space separated scopes",
			query: "scope=" + url.QueryEscape("repository:team/a:pull repository:foo:pull"),
			access: []ResourceActions{
				{"repository", "team/a", []string{"pull"}},
				{"repository", "foo", []string{}},
			},
		},
		{
			name:   "duplicate actions are granted once",
			query:  "scope=repository:team/a:pull,pull,*",
			access: []ResourceActions{{"repository", "team/a", []string{"pull", "push"}}},
		},
		{
			name:   "wildcard repository names are never granted",
			query:  "scope=repository:team/*:push",
			access: nil,
		},
		{
			name:   "malformed and unknown scopes are ignored",
			query:  "scope=repository&scope=repository:foo&scope=widget:x:pull",
			access: nil,
		},
		{
			name:  "catalog carries the pull grants",
			query: "scope=registry:catalog:*",
			access: []ResourceActions{
				{"repository", "public/*", []string{"pull"}},
				{"repository", "team/*", []string{"pull"}},
			},
		},
		{
			name:   "anonymous gets only anonymous grants",
			query:  "scope=repository:public/x:pull,push&scope=repository:foo:pull",
			anon:   true,
			access: []ResourceActions{{"repository", "public/x", []string{"pull"}}, {"repository", "foo", []string{}}},
		},
		{
			name:   "anonymous catalog carries only anonymous grants",
			query:  "scope=registry:catalog:*",
			anon:   true,
			access: []ResourceActions{{"repository", "public/*", []string{"pull"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, pass := "pusher", f.pusher.token
			if tt.anon {
				user, pass = "", ""
			}
			id, c := f.issuedToken(t, f.get(t, "service=unireg&"+tt.query, user, pass))
			if id.Subject != user {
				t.Errorf("subject = %q, want %q", id.Subject, user)
			}
			if len(tt.access) == 0 && len(c.Access) == 0 {
				return
			}
			if !reflect.DeepEqual(c.Access, tt.access) {
				t.Errorf("access = %+v, want %+v", c.Access, tt.access)
			}
		})
	}
}

func TestTokenHandlerRecordsMountableRepositories(t *testing.T) {
	f := newTokenFixture(t)
	_, c := f.issuedToken(t, f.get(t, "service=unireg&scope=repository:team/new:push", "pusher", f.pusher.token))
	if want := []string{"public/*", "team/*"}; !slices.Equal(c.Mountable, want) {
		t.Errorf("mountable = %v, want %v", c.Mountable, want)
	}
}

func TestTokenHandlerAnonymousTokenIsAnonymous(t *testing.T) {
	f := newTokenFixture(t)
	id, c := f.issuedToken(t, f.get(t, "service=unireg&scope=repository:team/a:pull", "", ""))
	if c.Subject != "" || id.Subject != "" {
		t.Errorf("anonymous token has subject %q", c.Subject)
	}
	if id.Scopes.Allows(oci("team/a", "pull")) {
		t.Error("anonymous token grants pull on team/a")
	}
}

func TestTokenHandlerWithoutServiceParameterUsesOwnService(t *testing.T) {
	f := newTokenFixture(t)
	_, c := f.issuedToken(t, f.get(t, "scope=repository:foo:pull", "puller", f.puller.token))
	if len(c.Audience) != 1 || c.Audience[0] != "unireg" {
		t.Errorf("audience = %v, want [unireg]", c.Audience)
	}
}

// A JWT is no credential at the realm: renewing one would let it outlive the
// token it was bought with (revoked, expired or removed meanwhile).
func TestTokenHandlerRefusesJWTCredentials(t *testing.T) {
	f := newTokenFixture(t)
	w := f.get(t, "service=unireg&scope=repository:foo:pull", "puller", f.puller.token)
	first, _ := f.issuedToken(t, w)
	if first.Subject != "puller" {
		t.Fatalf("first JWT for %q", first.Subject)
	}
	var jwt struct{ Token string }
	json.Unmarshal(w.Body.Bytes(), &jwt)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		var r *http.Request
		if method == http.MethodGet {
			r = httptest.NewRequest(method, "/token?service=unireg&scope=repository:foo:pull", nil)
		} else {
			r = httptest.NewRequest(method, "/token", strings.NewReader("grant_type=password&service=unireg&scope=repository:foo:pull"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		r.Header.Set("Authorization", "Bearer "+jwt.Token)
		w := httptest.NewRecorder()
		f.handler.ServeHTTP(w, r)
		if msg := tokenError(t, w, http.StatusUnauthorized, "UNAUTHORIZED"); !strings.Contains(msg, "a JWT cannot buy another JWT") {
			t.Errorf("%s: message %q", method, msg)
		}
	}
}

func TestTokenHandlerPasswordGrant(t *testing.T) {
	f := newTokenFixture(t)
	w := f.post(t, url.Values{
		"grant_type": {"password"},
		"service":    {"unireg"},
		"client_id":  {"docker"},
		"username":   {"pusher"},
		"password":   {f.pusher.token},
		"scope":      {"repository:team/app:pull,push"},
	})
	id, c := f.issuedToken(t, w)
	if id.Subject != "pusher" {
		t.Errorf("subject = %q, want pusher", id.Subject)
	}
	want := []ResourceActions{{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}}
	if !reflect.DeepEqual(c.Access, want) {
		t.Errorf("access = %+v, want %+v", c.Access, want)
	}
}

// tokenError decodes an error response of the token endpoint.
func tokenError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) string {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q: %v", w.Body, err)
	}
	if len(body.Errors) != 1 || body.Errors[0].Code != code || body.Errors[0].Message == "" {
		t.Fatalf("errors = %+v, want one %s with a message", body.Errors, code)
	}
	if strings.Contains(w.Body.String(), `"token"`) {
		t.Errorf("error response carries a token: %s", w.Body)
	}
	return body.Errors[0].Message
}

func TestTokenHandlerRefusesBadRequests(t *testing.T) {
	f := newTokenFixture(t)
	tests := []struct {
		name   string
		do     func() *httptest.ResponseRecorder
		status int
		code   string
		msg    string
	}{
		{
			name: "unknown service",
			do: func() *httptest.ResponseRecorder {
				return f.get(t, "service=other&scope=repository:foo:pull", "puller", f.puller.token)
			},
			status: http.StatusBadRequest, code: "UNSUPPORTED", msg: `unknown service "other"`,
		},
		{
			name:   "unknown service, anonymous",
			do:     func() *httptest.ResponseRecorder { return f.get(t, "service=other", "", "") },
			status: http.StatusBadRequest, code: "UNSUPPORTED", msg: "unknown service",
		},
		{
			name: "wrong password",
			do: func() *httptest.ResponseRecorder {
				return f.get(t, "service=unireg&scope=repository:foo:pull", "puller", "unireg_wrong")
			},
			status: http.StatusUnauthorized, code: "UNAUTHORIZED", msg: "invalid credentials",
		},
		{
			name:   "user name without password",
			do:     func() *httptest.ResponseRecorder { return f.get(t, "service=unireg", "puller", "") },
			status: http.StatusUnauthorized, code: "UNAUTHORIZED", msg: "invalid credentials",
		},
		{
			name: "forged bearer JWT",
			do: func() *httptest.ResponseRecorder {
				r := httptest.NewRequest(http.MethodGet, "/token?service=unireg", nil)
				r.Header.Set("Authorization", "Bearer aaa.bbb.ccc")
				w := httptest.NewRecorder()
				f.handler.ServeHTTP(w, r)
				return w
			},
			status: http.StatusUnauthorized, code: "UNAUTHORIZED", msg: "a JWT cannot buy another JWT",
		},
		{
			name: "password grant with wrong password",
			do: func() *httptest.ResponseRecorder {
				return f.post(t, url.Values{"grant_type": {"password"}, "username": {"puller"}, "password": {"nope"}})
			},
			status: http.StatusUnauthorized, code: "UNAUTHORIZED", msg: "invalid credentials",
		},
		{
			name: "refresh_token grant",
			do: func() *httptest.ResponseRecorder {
				return f.post(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "service": {"unireg"}})
			},
			status: http.StatusBadRequest, code: "UNSUPPORTED", msg: `unsupported grant_type "refresh_token"`,
		},
		{
			name: "missing grant_type",
			do: func() *httptest.ResponseRecorder {
				return f.post(t, url.Values{"username": {"puller"}, "password": {f.puller.token}})
			},
			status: http.StatusBadRequest, code: "UNSUPPORTED", msg: `unsupported grant_type ""`,
		},
		{
			name: "very long grant_type is cut in the message",
			do: func() *httptest.ResponseRecorder {
				return f.post(t, url.Values{"grant_type": {strings.Repeat("x", 1000)}})
			},
			status: http.StatusBadRequest, code: "UNSUPPORTED", msg: strings.Repeat("x", 64) + `..."`,
		},
		{
			name: "method not allowed",
			do: func() *httptest.ResponseRecorder {
				w := httptest.NewRecorder()
				f.handler.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/token", nil))
				return w
			},
			status: http.StatusMethodNotAllowed, code: "UNSUPPORTED", msg: "method not allowed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.do()
			msg := tokenError(t, w, tt.status, tt.code)
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
			if tt.status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tt.status == http.StatusMethodNotAllowed && w.Header().Get("Allow") != "GET, POST" {
				t.Errorf("Allow = %q, want GET, POST", w.Header().Get("Allow"))
			}
		})
	}
}

func TestTokenHandlerPasswordGrantRefusesUnknownService(t *testing.T) {
	f := newTokenFixture(t)
	w := f.post(t, url.Values{
		"grant_type": {"password"},
		"service":    {"other"},
		"username":   {"puller"},
		"password":   {f.puller.token},
		"scope":      {"repository:foo:pull"},
	})
	tokenError(t, w, http.StatusBadRequest, "UNSUPPORTED")
}

func TestTokenHandlerIsNotFoundWithoutIssuer(t *testing.T) {
	h := TokenHandler{Service: NewService(ServiceOptions{})}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/token?service=unireg", nil))
	tokenError(t, w, http.StatusNotFound, "UNSUPPORTED")
}

func TestTokenHandlerPasswordGrantTakesBasicCredentialsWhenTheFormHasNone(t *testing.T) {
	f := newTokenFixture(t)
	form := url.Values{"grant_type": {"password"}, "service": {"unireg"}, "scope": {"repository:foo:pull"}}
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth("puller", f.puller.token)
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, r)
	id, _ := f.issuedToken(t, w)
	if id.Subject != "puller" || !id.Scopes.Allows(Access{ProtocolOCI, TypeRepository, "foo", ActionPull}) {
		t.Fatalf("identity %+v", id)
	}
}

func TestMalformedAuthorizationIsRefusedNotAnonymous(t *testing.T) {
	s := NewService(ServiceOptions{Anonymous: mustScopes(t, "*")})
	for _, h := range []string{"Basic !!!", "Digest x=y", "Bearer"} {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.Header.Set("Authorization", h)
		if id, err := s.Identify(r); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authorization %q: identity %+v, error %v; want ErrInvalidCredentials", h, id, err)
		}
	}
}
