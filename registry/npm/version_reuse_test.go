package npm

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/filesystem"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// A name@version is never reused, not even once the whole package was
// unpublished: lockfiles pin its integrity, and another tarball under the
// same name@version would fail them (EINTEGRITY) or, for new installs,
// silently be other code (issue 14, item 8). The rule holds across
// processes and restarts: it lives in storage.
func TestVersionIsNeverReusedAfterThePackageWasUnpublished(t *testing.T) {
	stores := []struct {
		name string
		new  func(t *testing.T) storage.Driver
	}{
		{"inmemory", func(*testing.T) storage.Driver { return inmemory.New() }},
		{"filesystem", func(t *testing.T) storage.Driver {
			d, err := filesystem.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
	}
	unpublishes := []struct {
		name string
		call func(hs *harness, h http.Handler) call
	}{
		{"npm unpublish --force (DELETE /:pkg/-rev/:rev)", func(hs *harness, h http.Handler) call {
			return call{method: http.MethodDelete, path: "/x/-rev/" + writeDocOn(hs, h)["_rev"].(string), user: "admin"}
		}},
		{"PUT without its last version", func(hs *harness, h http.Handler) call {
			doc := writeDocOn(hs, h)
			doc["versions"] = map[string]any{}
			return call{method: http.MethodPut, path: "/x/-rev/" + doc["_rev"].(string), body: jsonString(hs.t, doc), user: "admin"}
		}},
	}
	for _, st := range stores {
		for _, un := range unpublishes {
			t.Run(st.name+"/"+un.name, func(t *testing.T) {
				store := st.new(t)
				hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Storage = store }})
				publish := func(h http.Handler, version string, tarball []byte) *httptest.ResponseRecorder {
					p := newPublish("x", version, tarball)
					return hs.doOn(h, call{method: http.MethodPut, path: "/x", body: p.body(), user: "writer"})
				}
				unpublish := func(h http.Handler) {
					t.Helper()
					expectStatus(t, hs.doOn(h, un.call(hs, h)), http.StatusOK)
					expectStatus(t, hs.doOn(h, call{method: http.MethodGet, path: "/x", user: "reader"}), http.StatusNotFound)
				}
				original := tarballOf("x", "1.0.0")
				if r := publish(hs.h, "1.0.0", original); r.Code != http.StatusCreated {
					t.Fatalf("publish 1.0.0: %d %s", r.Code, r.Body)
				}
				if r := publish(hs.h, "1.1.0", tarballOf("x", "1.1.0")); r.Code != http.StatusCreated {
					t.Fatalf("publish 1.1.0: %d %s", r.Code, r.Body)
				}
				unpublish(hs.h)

				// Another process, or this one restarted, on the same storage.
				for _, h := range []*Handler{hs.h, restartedOn(hs, store)} {
					for _, content := range [][]byte{[]byte("other bytes"), original} {
						expectError(t, publish(h, "1.0.0", content), http.StatusForbidden, "You cannot publish over the previously published versions: 1.0.0")
					}
					expectStatus(t, hs.doOn(h, call{method: http.MethodGet, path: "/x", user: "reader"}), http.StatusNotFound)
				}
				// A new version is fine; the old ones stay refused after the
				// package is unpublished again.
				if r := publish(hs.h, "2.0.0", tarballOf("x", "2.0.0")); r.Code != http.StatusCreated {
					t.Fatalf("publish 2.0.0 after the unpublish: %d %s", r.Code, r.Body)
				}
				if got := versionsOf(hs.packumentOn(hs.h, "x")); !reflect.DeepEqual(got, []string{"2.0.0"}) {
					t.Fatalf("versions = %v", got)
				}
				unpublish(hs.h)
				h := restartedOn(hs, store)
				for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
					expectError(t, publish(h, v, []byte("again "+v)), http.StatusForbidden, "previously published versions: "+v)
				}
			})
		}
	}
}

// restartedOn is a fresh handler over store, sharing the harness's gate.
func restartedOn(hs *harness, store storage.Driver) *Handler {
	return mustNew(Options{Storage: store, Gate: hs.gate})
}

func writeDocOn(hs *harness, h http.Handler) map[string]any {
	hs.t.Helper()
	w := hs.doOn(h, call{method: http.MethodGet, path: "/x?write=true", user: "admin"})
	expectStatus(hs.t, w, http.StatusOK)
	return decodeBody(hs.t, w)
}

func (hs *harness) packumentOn(h http.Handler, name string) map[string]any {
	hs.t.Helper()
	w := hs.doOn(h, call{method: http.MethodGet, path: "/" + escapeName(name), user: "reader"})
	expectStatus(hs.t, w, http.StatusOK)
	return decodeBody(hs.t, w)
}
