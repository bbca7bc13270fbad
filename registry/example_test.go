package registry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry"
	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/npm"
	"github.com/unireg/unireg/registry/oci"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// A registry mounted in a plain http.ServeMux next to the program's own
// routes. OCI clients need the API at /v2/ on the host root, and the token
// endpoint at /token.
func ExampleNew() {
	reg, err := registry.New(context.Background(), registry.Config{
		Storage:         inmemory.New(),
		AnonymousScopes: []string{"oci:repository:*:pull"},
	})
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	mux.Handle("/token", reg)
	mux.HandleFunc("/hello", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "my own route") })

	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, _ := http.Get(srv.URL + "/v2/library/alpine/tags/list")
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	// Output: 404 application/json
}

// staff is a host program's own user database: each user's password. It
// accepts HTTP Basic credentials (docker login, the token endpoint) and
// Bearer tokens (npm's _authToken) alike.
type staff map[string]string

func (s staff) Authenticate(_ context.Context, c auth.Credentials) (*auth.Identity, error) {
	for user, password := range s {
		if (c.Username == user && c.Password == password) || (c.Bearer != "" && c.Bearer == password) {
			return &auth.Identity{Subject: user}, nil
		}
	}
	return nil, auth.ErrInvalidCredentials
}

// ownNamespace lets every user read everything, and write only under their
// own name: OCI repositories "alice/..." and npm packages "@alice/...".
type ownNamespace struct{}

func (ownNamespace) Authorize(_ context.Context, id *auth.Identity, a auth.Access) bool {
	if a.Action == auth.ActionPull || a.Action == auth.ActionRead {
		return true
	}
	return strings.HasPrefix(a.Name, id.Subject+"/") || strings.HasPrefix(a.Name, "@"+id.Subject+"/")
}

// A registry that authenticates against the program's own users and
// authorises with its own rule, instead of the built-in token store.
func Example_customAuth() {
	reg, err := registry.New(context.Background(), registry.Config{
		Storage:       inmemory.New(),
		Authenticator: staff{"alice": "wonderland"},
		Authorizer:    ownNamespace{},
	})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()

	call := func(method, path string, set func(*http.Request)) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(strings.TrimSpace(fmt.Sprint(method, " ", path, " ", resp.StatusCode, " ", string(body))))
	}
	asAlice := func(r *http.Request) { r.SetBasicAuth("alice", "wonderland") }
	call("GET", "/npm/-/whoami", func(r *http.Request) { r.Header.Set("Authorization", "Bearer wonderland") })
	call("GET", "/npm/-/whoami", func(r *http.Request) { r.Header.Set("Authorization", "Bearer guess") })
	call("POST", "/v2/alice/app/blobs/uploads/", asAlice)
	call("POST", "/v2/bob/app/blobs/uploads/", asAlice)
	// Output:
	// GET /npm/-/whoami 200 {"username":"alice"}
	// GET /npm/-/whoami 401 {"error":"invalid or revoked token"}
	// POST /v2/alice/app/blobs/uploads/ 202
	// POST /v2/bob/app/blobs/uploads/ 403 {"errors":[{"code":"DENIED","message":"alice may not push bob/app"}]}
}

// OnEvent sees every successful write with the identity that made it: here
// an image config and manifest pushed with HTTP Basic credentials.
func ExampleConfig_onEvent() {
	reg, err := registry.New(context.Background(), registry.Config{
		Storage:       inmemory.New(),
		Authenticator: staff{"alice": "wonderland"},
		Authorizer:    ownNamespace{},
		OnEvent: func(_ context.Context, e registry.Event) {
			fmt.Printf("%s by %s: %s %s tag=%q %.19s\n", e.Action, e.Identity.Subject, e.Protocol, e.Repository, e.Tag, e.Digest)
		},
	})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()

	put := func(method, path, contentType, body string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.SetBasicAuth("alice", "wonderland")
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
	}
	config := "{}"
	put("POST", "/v2/alice/app/blobs/uploads/?digest="+digest.FromString(config).String(), "application/octet-stream", config)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[]}`, digest.FromString(config))
	put("PUT", "/v2/alice/app/manifests/v1", "application/vnd.oci.image.manifest.v1+json", manifest)
	// Output:
	// blob.pushed by alice: oci alice/app tag="" sha256:44136fa355b3
	// manifest.pushed by alice: oci alice/app tag="" sha256:f20c43161d73
	// tag.moved by alice: oci alice/app tag="v1" sha256:f20c43161d73
}

// A registry serving npm only: with the OCI side disabled, /v2/ answers
// 404 UNSUPPORTED in the OCI error JSON, and OCI returns nil.
func Example_npmOnly() {
	reg, err := registry.New(context.Background(), registry.Config{
		Storage:         inmemory.New(),
		AnonymousScopes: []string{"npm:package:*:read"},
		OCI:             registry.OCIConfig{Disabled: true},
		NPM:             registry.NPMConfig{Settings: npm.Settings{Prefix: "/js"}},
	})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()

	for _, path := range []string{"/js/-/ping", "/v2/"} {
		resp, _ := http.Get(srv.URL + path)
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	fmt.Println("OCI handler:", reg.OCI() != nil, "npm handler at", reg.NPM().Prefix())
	// Output:
	// /js/-/ping 200
	// /v2/ 404
	// OCI handler: false npm handler at /js
}

// A disabled feature answers with its protocol's own error: UNSUPPORTED in
// the OCI error JSON, {"error": ...} for npm.
func Example_featureSwitches() {
	reg, err := registry.New(context.Background(), registry.Config{
		Storage:     inmemory.New(),
		DisableAuth: true,
		OCI:         registry.OCIConfig{Settings: oci.Settings{DisableReferrers: true, DisableDelete: true}},
		NPM:         registry.NPMConfig{Settings: npm.Settings{DisableSearch: true}},
	})
	if err != nil {
		panic(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()

	some := digest.FromString("some manifest").String()
	for _, c := range []struct{ method, path string }{
		{"GET", "/v2/demo/app/referrers/" + some},
		{"DELETE", "/v2/demo/app/manifests/" + some},
		{"GET", "/npm/-/v1/search?text=demo"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(c.method, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	// Output:
	// GET 404 {"errors":[{"code":"UNSUPPORTED","message":"the referrers API is disabled"}]}
	// DELETE 405 {"errors":[{"code":"UNSUPPORTED","message":"deletion is disabled"}]}
	// GET 404 {"error":"search is disabled on this registry"}
}
