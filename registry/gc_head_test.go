package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/unireg/unireg/registry/gc"
	"github.com/unireg/unireg/registry/storage/filesystem"
)

// A HEAD of a blob renews its ref only for a caller who may push there
// (a pusher that skips an upload relies on the blob): a caller who may
// only pull, anonymous or not, cannot keep garbage alive by asking for it.
func TestGCHeadRenewsOnlyForPushers(t *testing.T) {
	store, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(context.Background(), Config{
		Storage:         store,
		Authenticator:   userDB{"alice": "secret"},
		Authorizer:      ownerAuthorizer{},
		AnonymousScopes: []string{"oci:repository:*:pull"},
		GC:              GCConfig{Grace: testGrace},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	alice := remote.WithAuth(&authn.Basic{Username: "alice", Password: "secret"})

	token := func(scope string) string {
		req, _ := http.NewRequest("GET", srv.URL+"/token?service=unireg&scope="+scope, nil)
		req.SetBasicAuth("alice", "secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr struct{ Token string }
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || tr.Token == "" {
			t.Fatalf("token for %s: %d %v", scope, resp.StatusCode, err)
		}
		return tr.Token
	}
	// orphan pushes a one-layer image and deletes it: its layer is garbage.
	orphan := func(repo string) v1.Hash {
		img, _ := random.Image(512, 1)
		ref, _ := name.ParseReference(host + "/" + repo + ":v1")
		if err := remote.Write(ref, img, alice); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		dref, _ := name.ParseReference(host + "/" + repo + "@" + d.String())
		if err := remote.Delete(dref, alice); err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		return ld
	}
	head := func(repo string, d v1.Hash, jwt string) {
		req, _ := http.NewRequest(http.MethodHead, srv.URL+"/v2/"+repo+"/blobs/"+d.String(), nil)
		if jwt != "" {
			req.Header.Set("Authorization", "Bearer "+jwt)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HEAD %s in %s: %d", d, repo, resp.StatusCode)
		}
	}
	stored := func(d v1.Hash) bool {
		_, err := store.Stat(context.Background(), "blobs/"+d.Algorithm+"/"+d.Hex[:2]+"/"+d.Hex+"/data")
		return err == nil
	}

	anonymous, reader, pusher := orphan("alice/a"), orphan("alice/b"), orphan("alice/c")
	readJWT, pushJWT := token("repository:alice/b:pull"), token("repository:alice/c:pull,push")
	// Keep asking, as a caller who wants the blob kept would, until all
	// three are older than the grace.
	deadline := time.Now().Add(testGrace + gc.TimeSpare + 100*time.Millisecond)
	for time.Now().Before(deadline) {
		head("alice/a", anonymous, "")
		head("alice/b", reader, readJWT)
		time.Sleep(testGrace / 5)
	}
	head("alice/c", pusher, pushJWT) // once, just before the run: within the grace
	if _, err := reg.Collect(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if stored(anonymous) || stored(reader) {
		t.Errorf("garbage kept alive by HEADs of callers who may only pull: anonymous kept %v, reader kept %v", stored(anonymous), stored(reader))
	}
	if !stored(pusher) {
		t.Errorf("a blob a pusher just found with HEAD (and may rely on in a manifest) was swept within the grace")
	}
}
