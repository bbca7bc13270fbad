package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// client speaks to a registry the way OCI clients do: it answers Bearer
// challenges through the realm with Basic credentials, caches the JWT per
// scope and sends it up front on later requests, like docker and crane.
type client struct {
	base     *url.URL
	user     string
	password string
	http     *http.Client

	mu     sync.Mutex
	tokens map[string]cachedToken // by scope
}

type cachedToken struct {
	jwt     string
	expires time.Time
}

func newClient(base, user, password string, conns int) (*client, error) {
	u, err := url.Parse(strings.TrimSuffix(base, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want an absolute URL", base)
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // scenarios choose Accept-Encoding themselves
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}
	return &client{base: u, user: user, password: password, http: &http.Client{Transport: tr}, tokens: map[string]cachedToken{}}, nil
}

func (c *client) url(path string) string { return c.base.String() + path }

// ociScope is the scope a request on repo needs (pull, or push and pull).
func ociScope(repo string, push bool) string {
	if push {
		return "repository:" + repo + ":pull,push"
	}
	return "repository:" + repo + ":pull"
}

// do sends an OCI request with the cached JWT for scope; on a Bearer
// challenge it gets a token and sends the request once more. body is
// reopened for the retry.
func (c *client) do(req *http.Request, scope string, body func() io.Reader) (*http.Response, error) {
	if tok := c.token(scope); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	setBody := func() {
		if body == nil {
			return
		}
		b := body()
		req.Body = io.NopCloser(b)
		// An in-memory body goes with its length, not chunked: Zot
		// refuses a monolithic POST without a Content-Length.
		if l, ok := b.(interface{ Len() int }); ok {
			req.ContentLength = int64(l.Len())
		}
	}
	setBody()
	resp, err := c.http.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	drain(resp)
	switch {
	case strings.HasPrefix(challenge, "Bearer "):
		tok, err := c.fetchToken(challenge, scope)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case strings.HasPrefix(challenge, "Basic ") && c.user != "":
		req.SetBasicAuth(c.user, c.password)
	default:
		return nil, fmt.Errorf("%s %s: 401 with challenge %q", req.Method, req.URL.Path, challenge)
	}
	setBody()
	return c.http.Do(req)
}

// token is the cached JWT for scope, or "" when there is none that stays
// valid for the next 30 seconds (a retried request cannot resend a body
// already streamed, so tokens are renewed before they expire, not after).
func (c *client) token(scope string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tokens[scope]
	if time.Until(t.expires) < 30*time.Second {
		return ""
	}
	return t.jwt
}

// fetchToken runs the Docker token flow for scope and caches the result.
func (c *client) fetchToken(challenge, scope string) (string, error) {
	params := map[string]string{}
	for _, part := range splitChallenge(strings.TrimPrefix(challenge, "Bearer ")) {
		k, v, _ := strings.Cut(part, "=")
		params[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	if params["realm"] == "" {
		return "", fmt.Errorf("challenge %q has no realm", challenge)
	}
	q := url.Values{}
	if params["service"] != "" {
		q.Set("service", params["service"])
	}
	for _, sc := range strings.Fields(scope) { // "a b": two scopes, as a cross-repository mount asks
		q.Add("scope", sc)
	}
	req, err := http.NewRequest(http.MethodGet, params["realm"]+"?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %s", resp.Status)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if body.ExpiresIn <= 0 {
		body.ExpiresIn = 60 // the Docker token spec's default
	}
	c.mu.Lock()
	c.tokens[scope] = cachedToken{jwt: tok, expires: time.Now().Add(time.Duration(body.ExpiresIn) * time.Second)}
	c.mu.Unlock()
	return tok, nil
}

// splitChallenge splits auth-params on commas outside quotes (scopes hold
// commas: "repository:x:pull,push").
func splitChallenge(s string) []string {
	var out []string
	quoted, start := false, 0
	for i, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// npmDo sends an npm request with the password as the bearer token, the
// way npm sends _authToken.
func (c *client) npmDo(req *http.Request) (*http.Response, error) {
	if c.password != "" {
		req.Header.Set("Authorization", "Bearer "+c.password)
	}
	return c.http.Do(req)
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// expect turns an unexpected status into an error carrying the body's start.
func expect(resp *http.Response, codes ...int) error {
	for _, code := range codes {
		if resp.StatusCode == code {
			return nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	return fmt.Errorf("%s %s: %s: %s", resp.Request.Method, resp.Request.URL.Path, resp.Status, strings.TrimSpace(string(b)))
}
