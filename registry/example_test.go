package registry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/unireg/unireg/registry"
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
