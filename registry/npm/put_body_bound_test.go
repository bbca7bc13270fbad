package npm

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A PUT body is bounded in bytes as a whole, not only in what is kept of
// it: whitespace between members and members a star reads past cost no
// memory, but without a bound one request could stream for ever, holding
// an upload slot and a core. A caller who may only read (a star) may send
// at most the document limit; a caller who may write, the document limit
// plus one tarball in base64. Before, a read-only token's 200 MiB star of
// whitespace was read to the end and answered 200.
func TestPutBodyIsBoundedInBytesAsAWhole(t *testing.T) {
	const doc, tarball = 1 << 20, 1 << 20
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) {
		o.MaxDocumentSize, o.MaxTarballSize = doc, tarball
	}})
	hs.mustPublish("x", "1.0.0")
	before := hs.storedPackument("x")
	writerBound := int64(doc) + int64(tarball)*4/3 + 128<<10
	flood := func(n int64) io.Reader { return io.LimitReader(spaces{}, n) }
	tests := []struct {
		name, user string
		body       io.Reader
		bound      int64
	}{
		{"reader, whitespace", "reader", io.MultiReader(strings.NewReader(`{"_id":"x","users":{"reader":true}`), flood(8<<20), strings.NewReader(`}`)), doc},
		{"reader, a member read past", "reader", io.MultiReader(strings.NewReader(`{"_id":"x","readme":"`), strings.NewReader(strings.Repeat("a", 8<<20)), strings.NewReader(`","users":{"reader":true}}`)), doc},
		{"reader, others' entries of users", "reader", repeatedBody(`{"_id":"x","users":{"reader":true,`, `"someone":true`, 8<<20/15, `}}`), doc},
		{"writer, whitespace", "writer", io.MultiReader(strings.NewReader(`{"_id":"x","users":{"writer":true}`), flood(8<<20), strings.NewReader(`}`)), writerBound},
		// The bound reached inside the tarball is a 413 too, not a storage error.
		{"writer, whitespace then a tarball", "writer", io.MultiReader(strings.NewReader(`{"_id":"x","name":"x"`), flood(2<<20),
			strings.NewReader(`,"_attachments":{"x-2.0.0.tgz":{"data":"`), strings.NewReader(strings.Repeat("AAAA", 300<<10)), strings.NewReader(`"}}}`)), writerBound},
		{"writer, others' entries of users", "writer", repeatedBody(`{"_id":"x","users":{"writer":true,`, `"someone":true`, 8<<20/15, `}}`), writerBound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &recordingBody{r: tt.body}
			w := hs.putBody(tt.user, "/x", body)
			expectStatus(t, w, http.StatusRequestEntityTooLarge)
			if n := body.read.Load(); n > tt.bound+128<<10 {
				t.Fatalf("read %d bytes of the body, bound %d", n, tt.bound)
			}
			if got := hs.storedPackument("x"); string(got) != string(before) {
				t.Fatalf("document changed: %s", got)
			}
		})
	}
	// Within the bounds, a star and a publish still go through.
	expectStatus(t, hs.putBody("reader", "/x", strings.NewReader(`{"_id":"x","users":{"reader":true}}`)), http.StatusOK)
	expectStatus(t, hs.publishAs("writer", "/x", newPublish("x", "2.0.0", tarballOf("x", "2.0.0"))), http.StatusCreated)
}

// spaces is an endless run of JSON whitespace.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
