package npm

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/auth"
)

func TestPingAnswersEmptyObject(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	for _, user := range []string{"", "reader"} {
		w := hs.get(user, "/-/ping")
		expectStatus(t, w, http.StatusOK)
		if got := decodeBody(t, w); len(got) != 0 {
			t.Fatalf("ping = %v, want {}", got)
		}
	}
	w := hs.get("", "/-/ping?write=true")
	expectStatus(t, w, http.StatusOK)
}

func TestWhoamiNamesTheTokensUser(t *testing.T) {
	hs := newHarness(t, map[string][]string{"bob": {"npm:package:*:read"}})
	w := hs.get("bob", "/-/whoami")
	expectStatus(t, w, http.StatusOK)
	if got := decodeBody(t, w); !reflect.DeepEqual(got, map[string]any{"username": "bob"}) {
		t.Fatalf("whoami = %v", got)
	}
}

func TestLegacyLoginHandsBackTheToken(t *testing.T) {
	hs := newHarness(t, map[string][]string{"bob": {"npm:package:*:write"}, "alice": {"npm:package:*:read"}})
	tests := []struct {
		name     string
		body     string
		status   int
		wantUser string
	}{
		{"valid token", `{"_id":"org.couchdb.user:bob","name":"bob","password":"` + hs.tokens["bob"] + `","type":"user","roles":[],"date":"2026-01-01T00:00:00.000Z"}`, 201, "bob"},
		{"name other than the token's user", `{"name":"whoever","password":"` + hs.tokens["alice"] + `"}`, 201, "alice"},
		{"wrong password", `{"name":"bob","password":"hunter2"}`, 401, ""},
		{"well-formed unknown token", `{"name":"bob","password":"unireg_0000000000000000000000000000000000000000000"}`, 401, ""},
		{"empty password", `{"name":"bob","password":""}`, 400, ""},
		{"not JSON", `name=bob`, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := hs.do(call{method: http.MethodPut, path: "/-/user/org.couchdb.user:bob", body: []byte(tt.body)})
			if tt.status != 201 {
				expectStatus(t, w, tt.status)
				expectNoOTPChallenge(t, w.Header())
				if strings.Contains(w.Body.String(), "unireg_") {
					t.Fatalf("refusal echoes a token: %s", w.Body.String())
				}
				return
			}
			expectStatus(t, w, http.StatusCreated)
			got := decodeBody(t, w)
			if got["ok"] != true || got["id"] != "org.couchdb.user:bob" || got["username"] != tt.wantUser {
				t.Fatalf("login answered %v", got)
			}
			tok, _ := got["token"].(string)
			if tok != hs.tokens[tt.wantUser] {
				t.Fatalf("login token %q, want the password token", tok)
			}
			w = hs.do(call{method: http.MethodGet, path: "/-/whoami", token: tok})
			expectStatus(t, w, http.StatusOK)
		})
	}
}

func TestWebLoginIsA4xxSoNpmFallsBack(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		w := hs.do(call{method: method, path: "/-/v1/login", body: []byte(`{}`)})
		if w.Code < 400 || w.Code >= 500 {
			t.Fatalf("%s /-/v1/login = %d, want a 4xx", method, w.Code)
		}
		expectNoOTPChallenge(t, w.Header())
	}
}

func TestGetUserNeedsIdentity(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	w := hs.get("reader", "/-/user/org.couchdb.user:bob")
	expectStatus(t, w, http.StatusOK)
	if got := decodeBody(t, w); got["name"] != "bob" || got["_id"] != "org.couchdb.user:bob" {
		t.Fatalf("user = %v", got)
	}
	expectStatus(t, hs.get("", "/-/user/org.couchdb.user:bob"), http.StatusUnauthorized)
}

// createToken posts to the token API as user and returns the answer.
func (hs *harness) createToken(user string, body map[string]any) map[string]any {
	hs.t.Helper()
	w := hs.do(call{method: http.MethodPost, path: "/-/npm/v1/tokens", body: jsonString(hs.t, body), user: user})
	expectStatus(hs.t, w, http.StatusOK)
	return decodeBody(hs.t, w)
}

func (hs *harness) listTokens(user string) []map[string]any {
	hs.t.Helper()
	w := hs.get(user, "/-/npm/v1/tokens")
	expectStatus(hs.t, w, http.StatusOK)
	got := decodeBody(hs.t, w)
	objs, ok := got["objects"].([]any)
	if !ok {
		hs.t.Fatalf("token list has no objects array: %v", got)
	}
	if got["total"] != float64(len(objs)) {
		hs.t.Fatalf("total %v for %d objects", got["total"], len(objs))
	}
	out := make([]map[string]any, len(objs))
	for i, o := range objs {
		out[i] = o.(map[string]any)
	}
	return out
}

func tokenUsers() map[string][]string {
	return map[string][]string{
		"bob":    {"npm:package:*:write"},
		"alice":  {"npm:package:*:write"},
		"nobody": {},
	}
}

func TestCreatedTokenWorks(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	got := hs.createToken("bob", map[string]any{"password": hs.tokens["bob"], "readonly": false, "cidr_whitelist": []any{}})
	tok, _ := got["token"].(string)
	if !strings.HasPrefix(tok, auth.TokenPrefix) || tok == hs.tokens["bob"] {
		t.Fatalf("created token %q", tok)
	}
	if key, _ := got["key"].(string); key != auth.TokenID(auth.HashToken(tok)) {
		t.Fatalf("key = %v, want the token's id %s", got["key"], auth.TokenID(auth.HashToken(tok)))
	}
	if got["readonly"] != false || got["created"] == nil {
		t.Fatalf("answer = %v", got)
	}
	w := hs.do(call{method: http.MethodGet, path: "/-/whoami", token: tok})
	expectStatus(t, w, http.StatusOK)
	if decodeBody(t, w)["username"] != "bob" {
		t.Fatalf("whoami with the new token = %s", w.Body.String())
	}
	p := newPublish("x", "1.0.0", tarballOf("x", "1.0.0"))
	w = hs.do(call{method: http.MethodPut, path: "/x", body: p.body(), token: tok})
	expectStatus(t, w, http.StatusCreated)
	events := hs.recorded()
	if events[0].Action != "token.created" || events[0].Identity.Subject != "bob" {
		t.Fatalf("events = %+v", events)
	}
	if stored := hs.objects("npm/tokens"); len(stored) != 1 || strings.Contains(stored[0], tok) {
		t.Fatalf("stored tokens %v: want one, keyed by hash", stored)
	}
}

func TestReadonlyTokenCannotPublish(t *testing.T) {
	for _, body := range []map[string]any{
		{"readonly": true},
		{"packages_and_scopes_permission": "read-only", "scopes": []any{"@acme"}},
	} {
		hs := newHarness(t, tokenUsers())
		hs.mustPublishAs("bob", "@acme/x", "1.0.0")
		body["password"] = hs.tokens["bob"]
		tok := hs.createToken("bob", body)["token"].(string)
		expectStatus(t, hs.do(call{method: http.MethodGet, path: "/@acme%2fx", token: tok}), http.StatusOK)
		p := newPublish("@acme/x", "1.1.0", tarballOf("@acme/x", "1.1.0"))
		w := hs.do(call{method: http.MethodPut, path: "/@acme%2fx", body: p.body(), token: tok})
		expectError(t, w, http.StatusForbidden, "write")
		if list := hs.listTokens("bob"); len(list) != 1 || list[0]["readonly"] != true {
			t.Fatalf("token list = %v, want one read-only token", list)
		}
	}
}

func TestGranularTokenIsNarrowedToItsPackages(t *testing.T) {
	hs := newHarness(t, map[string][]string{"bob": {"npm:package:@acme/*:write"}, "admin": {"*"}})
	for _, name := range []string{"@acme/x", "@acme/y", "@other/x"} {
		hs.mustPublish(name, "1.0.0")
	}
	tests := []struct {
		name   string
		body   map[string]any
		status int
		read   map[string]int
	}{
		{"one package", map[string]any{"packages": []any{"@acme/x"}}, 200,
			map[string]int{"@acme/x": 200, "@acme/y": 403, "@other/x": 403}},
		{"one scope", map[string]any{"scopes": []any{"@acme"}}, 200,
			map[string]int{"@acme/x": 200, "@acme/y": 200, "@other/x": 403}},
		{"scope without at sign", map[string]any{"scopes": []any{"acme"}}, 200,
			map[string]int{"@acme/x": 200, "@other/x": 403}},
		{"a scope the creator lacks", map[string]any{"scopes": []any{"@other"}}, 403, nil},
		{"a longer scope the creator lacks", map[string]any{"scopes": []any{"@acmex"}}, 403, nil},
		{"a package the creator lacks", map[string]any{"packages": []any{"@other/x"}}, 403, nil},
		{"an invalid package name", map[string]any{"packages": []any{"_bad"}}, 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.body["password"] = hs.tokens["bob"]
			w := hs.do(call{method: http.MethodPost, path: "/-/npm/v1/tokens", body: jsonString(t, tt.body), user: "bob"})
			expectStatus(t, w, tt.status)
			if tt.status != 200 {
				return
			}
			tok := decodeBody(t, w)["token"].(string)
			for name, want := range tt.read {
				expectStatus(t, hs.do(call{method: http.MethodGet, path: "/" + escapeName(name), token: tok}), want)
			}
		})
	}
}

func TestGranularTokenNeverExceedsItsCreator(t *testing.T) {
	hs := newHarness(t, map[string][]string{"bob": {"npm:package:@acme/x:write"}, "admin": {"*"}})
	hs.mustPublish("@acme/x", "1.0.0")
	hs.mustPublish("@acme/y", "1.0.0")
	// bob may write @acme/x only: asking for the whole scope is refused
	// rather than widened.
	w := hs.do(call{method: http.MethodPost, path: "/-/npm/v1/tokens", body: jsonString(t, map[string]any{"scopes": []any{"@acme"}}), user: "bob"})
	expectStatus(t, w, http.StatusForbidden)
	tok := hs.createToken("bob", map[string]any{"packages": []any{"@acme/x"}})["token"].(string)
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/@acme%2fy", token: tok}), http.StatusForbidden)
	doc := hs.writeDoc("@acme/x")
	delete(versionsMap(doc), "1.0.0")
	w = hs.do(call{method: http.MethodPut, path: "/@acme%2fx/-rev/" + doc["_rev"].(string), body: jsonString(t, doc), token: tok})
	expectStatus(t, w, http.StatusForbidden) // bob has no delete, neither has his token
}

func TestTokenExpiry(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	got := hs.createToken("bob", map[string]any{"expires": 7, "name": "ci"})
	if got["name"] != "ci" || got["expires"] == nil {
		t.Fatalf("answer = %v, want name and expires", got)
	}
	exp, err := time.Parse(time.RFC3339, got["expires"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < 6*24*time.Hour || d > 8*24*time.Hour {
		t.Fatalf("expires in %v, want about 7 days", d)
	}
	tok := got["token"].(string)
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/-/whoami", token: tok}), http.StatusOK)

	// Eight days later.
	hs.setNow(func() time.Time { return time.Now().Add(8 * 24 * time.Hour) })
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/-/whoami", token: tok}), http.StatusUnauthorized)
}

func TestTokenCreationRefusals(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	tests := []struct {
		name   string
		user   string
		body   string
		status int
		want   string
	}{
		{"another user's token as password", "bob", `{"password":"` + hs.tokens["alice"] + `"}`, 401, "password"},
		{"a wrong password", "bob", `{"password":"nope"}`, 401, "password"},
		{"anonymous", "", `{"password":"` + hs.tokens["bob"] + `"}`, 401, "authentication"},
		{"CIDR restriction", "bob", `{"password":"` + hs.tokens["bob"] + `","cidr_whitelist":["10.0.0.0/8"]}`, 400, "CIDR"},
		{"a user without scopes", "nobody", `{"password":"` + hs.tokens["nobody"] + `"}`, 403, "no scopes"},
		{"not JSON", "bob", `{`, 400, "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := hs.do(call{method: http.MethodPost, path: "/-/npm/v1/tokens", body: []byte(tt.body), user: tt.user})
			expectError(t, w, tt.status, tt.want)
			if objs := hs.objects("npm/tokens"); len(objs) != 0 {
				t.Fatalf("token stored: %v", objs)
			}
		})
	}
}

func TestListAndRevokeTokens(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	tokA := hs.createToken("bob", map[string]any{"password": hs.tokens["bob"]})["token"].(string)
	tokB := hs.createToken("bob", map[string]any{"password": hs.tokens["bob"], "readonly": true})["token"].(string)
	aliceTok := hs.createToken("alice", map[string]any{"password": hs.tokens["alice"]})["token"].(string)

	list := hs.listTokens("bob")
	var keys []string
	for _, o := range list {
		keys = append(keys, o["key"].(string))
		shown, _ := o["token"].(string)
		if shown == tokA || shown == tokB || len(shown) >= len(tokA) {
			t.Fatalf("list shows a whole token: %v", o)
		}
		if !strings.HasPrefix(tokA, strings.TrimSuffix(shown, "…")) && !strings.HasPrefix(tokB, strings.TrimSuffix(shown, "…")) {
			t.Fatalf("list preview %q is not the start of a token", shown)
		}
	}
	slices.Sort(keys)
	want := []string{tokenIDOf(tokA), tokenIDOf(tokB)}
	slices.Sort(want)
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("bob's keys = %v, want %v", keys, want)
	}
	if list := hs.listTokens("alice"); len(list) != 1 || list[0]["key"] != tokenIDOf(aliceTok) {
		t.Fatalf("alice sees %v", list)
	}

	// alice cannot revoke bob's token, even by its full key.
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + hashHex(tokA), user: "alice"}), http.StatusNotFound)
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/-/whoami", token: tokA}), http.StatusOK)

	// bob revokes by the key the list shows, or a prefix of it, as npm
	// token revoke does.
	w := hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + tokenIDOf(tokA)[:8], user: "bob"})
	expectStatus(t, w, http.StatusNoContent)
	expectError(t, hs.do(call{method: http.MethodGet, path: "/-/whoami", token: tokA}), http.StatusUnauthorized, "invalid")
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/-/whoami", token: tokB}), http.StatusOK)
	expectStatus(t, hs.do(call{method: http.MethodGet, path: "/-/whoami", token: aliceTok}), http.StatusOK)
	if list := hs.listTokens("bob"); len(list) != 1 || list[0]["key"] != tokenIDOf(tokB) {
		t.Fatalf("after revoking: %v", list)
	}
	last := hs.recorded()[len(hs.recorded())-1]
	if last.Action != "token.revoked" || last.Identity.Subject != "bob" {
		t.Fatalf("event = %+v", last)
	}

	// A revoked token cannot be revoked again, and keys must be real.
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + hashHex(tokA)[:8], user: "bob"}), http.StatusNotFound)
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/abc", user: "bob"}), http.StatusBadRequest)
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/" + hashHex(tokB)[:8], user: ""}), http.StatusUnauthorized)
}

// tokenIDOf is the id the token API shows for a token.
func tokenIDOf(token string) string { return auth.TokenID(auth.HashToken(token)) }

func TestTokenAPIDisabled(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: tokenUsers(), options: func(o *Options) { o.DisableTokenAPI = true }})
	expectStatus(t, hs.get("bob", "/-/npm/v1/tokens"), http.StatusNotFound)
	expectStatus(t, hs.do(call{method: http.MethodPost, path: "/-/npm/v1/tokens", body: []byte(`{}`), user: "bob"}), http.StatusNotFound)
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/npm/v1/tokens/token/abcdef12", user: "bob"}), http.StatusNotFound)
}

// With the token API off nothing checks revocations, so `npm logout` must
// not pretend to revoke; it answers 200 all the same, because npm keeps the
// token in .npmrc on an error, and prints the npm-notice header.
func TestLogoutWithTokenAPIDisabledRevokesNothing(t *testing.T) {
	hs := newHarnessWith(t, harnessConfig{users: tokenUsers(), options: func(o *Options) { o.DisableTokenAPI = true }})
	tok := hs.tokens["bob"]
	w := hs.do(call{method: http.MethodDelete, path: "/-/user/token/" + tok, token: tok})
	expectStatus(t, w, http.StatusOK)
	if n := w.Header().Get("npm-notice"); !strings.Contains(n, "token management is disabled") {
		t.Fatalf("npm-notice = %q", n)
	}
	var body struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.OK || !strings.Contains(body.Error, "not revoked") {
		t.Fatalf("body = %s", w.Body.String())
	}
	if objs := hs.objects("npm/revoked"); len(objs) != 0 {
		t.Fatalf("revocations recorded: %v", objs)
	}
	for _, e := range hs.recorded() {
		if e.Action == "token.revoked" {
			t.Fatalf("event %+v for a token that was not revoked", e)
		}
	}
}

func TestLogoutRevokesThePresentedToken(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	created := hs.createToken("bob", map[string]any{"password": hs.tokens["bob"]})["token"].(string)
	tests := []struct {
		name  string
		token string
	}{
		// The created token first: it is made with bob's static token,
		// and stops working once that one is revoked.
		{"created token", created},
		{"static store token", hs.tokens["bob"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := hs.do(call{method: http.MethodDelete, path: "/-/user/token/" + tt.token, token: tt.token})
			expectStatus(t, w, http.StatusOK)
			expectError(t, hs.do(call{method: http.MethodGet, path: "/-/whoami", token: tt.token}), http.StatusUnauthorized, "invalid")
			w = hs.do(call{method: http.MethodPut, path: "/-/user/org.couchdb.user:bob", body: jsonString(t, map[string]any{"name": "bob", "password": tt.token})})
			expectStatus(t, w, http.StatusUnauthorized)
		})
	}
	expectStatus(t, hs.get("alice", "/-/whoami"), http.StatusOK)
}

func TestLogoutRefusesAnotherToken(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	for _, victim := range []string{hs.tokens["alice"], "unireg_somethingelse"} {
		w := hs.do(call{method: http.MethodDelete, path: "/-/user/token/" + victim, user: "bob"})
		expectError(t, w, http.StatusForbidden, "only the token used")
	}
	expectStatus(t, hs.get("alice", "/-/whoami"), http.StatusOK)
	expectStatus(t, hs.get("bob", "/-/whoami"), http.StatusOK)
	expectStatus(t, hs.do(call{method: http.MethodDelete, path: "/-/user/token/" + hs.tokens["bob"]}), http.StatusUnauthorized)
	if objs := hs.objects("npm/revoked"); len(objs) != 0 {
		t.Fatalf("revocations recorded: %v", objs)
	}
}

func TestLogoutWithBasicAuth(t *testing.T) {
	hs := newHarness(t, tokenUsers())
	tok := hs.tokens["bob"]
	w := hs.do(call{method: http.MethodDelete, path: "/-/user/token/" + tok, header: map[string]string{"Authorization": "Basic " + basic("bob", tok)}})
	expectStatus(t, w, http.StatusOK)
	expectStatus(t, hs.get("bob", "/-/whoami"), http.StatusUnauthorized)
}

func TestCreatedTokenDoesNotOutliveItsCreator(t *testing.T) {
	soon := time.Now().Add(time.Hour)
	hs := newHarnessWith(t, harnessConfig{users: tokenUsers(), expires: map[string]time.Time{"bob": soon}})
	for _, body := range []map[string]any{
		{"password": hs.tokens["bob"]},
		{"password": hs.tokens["bob"], "expires": 90},
	} {
		got := hs.createToken("bob", body)
		exp, _ := got["expires"].(string)
		at, err := time.Parse(time.RFC3339, exp)
		if err != nil || at.After(soon.Add(time.Second)) {
			t.Fatalf("token made by a token expiring at %s expires at %q", soon.Format(time.RFC3339), exp)
		}
	}
}
