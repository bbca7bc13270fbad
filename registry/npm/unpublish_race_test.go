package npm

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// pausingStore holds the first write of one key, once done, until the test
// lets it go: a request can then run between an unpublish's document
// change (the tombstone) and its cleanup.
type pausingStore struct {
	*inmemory.Driver
	key              string
	armed            atomic.Bool
	reached, proceed chan struct{}
}

func (s *pausingStore) Put(ctx context.Context, key string, r io.Reader, cond storage.Condition) (storage.Info, error) {
	info, err := s.Driver.Put(ctx, key, r, cond)
	if key == s.key && s.armed.CompareAndSwap(true, false) {
		close(s.reached)
		<-s.proceed
	}
	return info, err
}

func TestPublishRightAfterUnpublishIsKept(t *testing.T) {
	tests := []struct {
		name      string
		unpublish func(hs *harness) call
	}{
		{"DELETE /:pkg/-rev/:rev", func(hs *harness) call {
			rev := hs.writeDoc("x")["_rev"].(string)
			return call{method: http.MethodDelete, path: "/x/-rev/" + rev, user: "admin"}
		}},
		{"PUT removing the last version", func(hs *harness) call {
			doc := hs.writeDoc("x")
			doc["versions"] = map[string]any{}
			rev := doc["_rev"].(string)
			return call{method: http.MethodPut, path: "/x/-rev/" + rev, body: jsonString(hs.t, doc), user: "admin"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := &pausingStore{key: packumentKey("x"), reached: make(chan struct{}), proceed: make(chan struct{})}
			hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) {
				ps.Driver = o.Storage.(*inmemory.Driver)
				o.Storage = ps
			}})
			other := hs.newHandler() // another process on the same storage
			hs.mustPublish("x", "1.0.0")
			c := tt.unpublish(hs)
			ps.armed.Store(true)
			done := make(chan int, 1)
			go func() { done <- hs.do(c).Code }()
			select {
			case <-ps.reached: // the document is gone; the cleanup has not run
			case <-time.After(10 * time.Second):
				t.Fatal("the unpublish never deleted the document")
			}
			p := newPublish("x", "2.0.0", tarballOf("x", "2.0.0"))
			w := hs.doOn(other, call{method: http.MethodPut, path: "/x", body: p.body(), user: "writer"})
			close(ps.proceed)
			select {
			case code := <-done:
				if code != http.StatusOK {
					t.Fatalf("unpublish: %d", code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the unpublish did not finish")
			}
			expectStatus(t, w, http.StatusCreated)
			doc := hs.packument("reader", "x")
			if got := versionsOf(doc); len(got) != 1 || got[0] != "2.0.0" {
				t.Fatalf("versions = %v, want the 2.0.0 published after the unpublish", got)
			}
			tw := hs.get("reader", "/x/-/x-2.0.0.tgz")
			expectStatus(t, tw, http.StatusOK)
			if objs := hs.objects("npm/packages/x/tarballs"); len(objs) != 1 {
				t.Fatalf("tarballs = %v, want only 2.0.0's", objs)
			}
		})
	}
}
