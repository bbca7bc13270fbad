package oci

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/storage"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

func startSession(t *testing.T, hs *harness, repo string) string {
	t.Helper()
	w := hs.do(call{method: "POST", path: "/v2/" + repo + "/blobs/uploads/", user: "admin"})
	expectStatus(t, w, http.StatusAccepted)
	loc := w.Header().Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+repo+"/blobs/uploads/") || w.Header().Get("Docker-Upload-UUID") == "" {
		t.Fatalf("bad upload headers: %v", w.Header())
	}
	return loc
}

func TestMonolithicUploadIsServedWithRanges(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	content := []byte("0123456789abcdef")
	d := hs.pushBlob("admin", "a/b", content)

	w := hs.do(call{method: "GET", path: "/v2/a/b/blobs/" + d.String(), user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), content) || w.Header().Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("GET blob = %q, digest header %q", w.Body.Bytes(), w.Header().Get("Docker-Content-Digest"))
	}
	w = hs.do(call{method: "GET", path: "/v2/a/b/blobs/" + d.String(), user: "admin", header: map[string]string{"Range": "bytes=4-7"}})
	expectStatus(t, w, http.StatusPartialContent)
	if w.Body.String() != "4567" {
		t.Fatalf("range body %q", w.Body.String())
	}
	w = hs.do(call{method: "HEAD", path: "/v2/a/b/blobs/" + d.String(), user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if w.Header().Get("Content-Length") != fmt.Sprint(len(content)) || w.Body.Len() != 0 {
		t.Fatalf("HEAD: length %q, body %d bytes", w.Header().Get("Content-Length"), w.Body.Len())
	}
}

func TestBlobIsVisibleOnlyInRepositoriesThatHaveIt(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	d := hs.pushBlob("admin", "a", []byte("secret layer"))
	w := hs.do(call{method: "GET", path: "/v2/b/blobs/" + d.String(), user: "admin"})
	expectError(t, w, http.StatusNotFound, CodeBlobUnknown)
}

func TestChunkedUploadContinuesOnAnotherReplica(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	content := bytes.Repeat([]byte("chunk-data-"), 1000)
	loc := startSession(t, hs, "a")

	first, rest := content[:4000], content[4000:]
	w := hs.do(call{method: "PATCH", path: loc, body: first, user: "admin",
		header: map[string]string{"Content-Range": "0-3999", "Content-Type": "application/octet-stream"}})
	expectStatus(t, w, http.StatusAccepted)
	if got := w.Header().Get("Range"); got != "0-3999" {
		t.Fatalf("Range after first chunk = %q", got)
	}

	replica := hs.newHandler()
	w = hs.doOn(replica, call{method: "GET", path: loc, user: "admin"})
	expectStatus(t, w, http.StatusNoContent)
	if got := w.Header().Get("Range"); got != "0-3999" {
		t.Fatalf("status Range on replica = %q", got)
	}
	d := digest.FromBytes(content)
	w = hs.doOn(replica, call{method: "PUT", path: loc + "?digest=" + d.String(), body: rest, user: "admin",
		header: map[string]string{"Content-Range": fmt.Sprintf("4000-%d", len(content)-1)}})
	expectStatus(t, w, http.StatusCreated)
	if w.Header().Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("digest header %q", w.Header().Get("Docker-Content-Digest"))
	}
	w = hs.do(call{method: "GET", path: "/v2/a/blobs/" + d.String(), user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), content) {
		t.Fatal("blob content differs from what was uploaded")
	}
	// The session is gone once finished.
	w = hs.do(call{method: "GET", path: loc, user: "admin"})
	expectError(t, w, http.StatusNotFound, CodeBlobUploadUnknown)
}

func TestPatchOutOfOrderChunkIs416(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	loc := startSession(t, hs, "a")
	w := hs.do(call{method: "PATCH", path: loc, body: []byte("abcd"), user: "admin", header: map[string]string{"Content-Range": "0-3"}})
	expectStatus(t, w, http.StatusAccepted)
	w = hs.do(call{method: "PATCH", path: loc, body: []byte("efgh"), user: "admin", header: map[string]string{"Content-Range": "6-9"}})
	expectStatus(t, w, http.StatusRequestedRangeNotSatisfiable)
	if got := w.Header().Get("Range"); got != "0-3" {
		t.Fatalf("Range on 416 = %q, want 0-3", got)
	}
	if w.Header().Get("Location") != loc {
		t.Fatalf("Location on 416 = %q", w.Header().Get("Location"))
	}
	// The upload is still usable from where it was.
	w = hs.do(call{method: "PATCH", path: loc, body: []byte("efgh"), user: "admin", header: map[string]string{"Content-Range": "4-7"}})
	expectStatus(t, w, http.StatusAccepted)
}

func TestChunkShorterThanDeclaredIsRejectedAndNotCounted(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	loc := startSession(t, hs, "a")
	w := hs.do(call{method: "PATCH", path: loc, body: []byte("abc"), user: "admin", header: map[string]string{"Content-Range": "0-9"}})
	if w.Code < 400 {
		t.Fatalf("short chunk accepted with %d", w.Code)
	}
	w = hs.do(call{method: "GET", path: loc, user: "admin"})
	expectStatus(t, w, http.StatusNoContent)
	if got := w.Header().Get("Range"); got != "0-0" {
		t.Fatalf("Range after rejected chunk = %q, want 0-0 (nothing counted)", got)
	}
}

func TestStreamedPatchWithoutLength(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	loc := startSession(t, hs, "a")
	content := []byte("streamed without a Content-Range")
	w := hs.do(call{method: "PATCH", path: loc, body: content, user: "admin"})
	expectStatus(t, w, http.StatusAccepted)
	d := digest.FromBytes(content)
	w = hs.do(call{method: "PUT", path: loc + "?digest=" + d.String(), user: "admin"})
	expectStatus(t, w, http.StatusCreated)
}

func TestFinishWithWrongDigestLeavesNoBlob(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	loc := startSession(t, hs, "a")
	wrong := digest.FromString("something else")
	w := hs.do(call{method: "PUT", path: loc + "?digest=" + wrong.String(), body: []byte("actual"), user: "admin"})
	expectError(t, w, http.StatusBadRequest, CodeDigestInvalid)
	for _, d := range []digest.Digest{wrong, digest.FromString("actual")} {
		w = hs.do(call{method: "HEAD", path: "/v2/a/blobs/" + d.String(), user: "admin"})
		expectStatus(t, w, http.StatusNotFound)
	}
	w = hs.do(call{method: "PUT", path: loc, body: nil, user: "admin"})
	expectError(t, w, http.StatusBadRequest, CodeDigestInvalid)
}

func TestSHA512UploadMonolithicAndChunked(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	content := []byte("sha512 content")
	sum := sha512.Sum512(content)
	d := digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
	w := hs.do(call{method: "POST", path: "/v2/a/blobs/uploads/?digest=" + d.String(), body: content, user: "admin"})
	expectStatus(t, w, http.StatusCreated)

	// Chunked, with the algorithm only known at the end: one re-read.
	loc := startSession(t, hs, "b")
	expectStatus(t, hs.do(call{method: "PATCH", path: loc, body: content, user: "admin"}), http.StatusAccepted)
	w = hs.do(call{method: "PUT", path: loc + "?digest=" + d.String(), user: "admin"})
	expectStatus(t, w, http.StatusCreated)
	w = hs.do(call{method: "GET", path: "/v2/b/blobs/" + d.String(), user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if !bytes.Equal(w.Body.Bytes(), content) {
		t.Fatal("sha512 blob content differs")
	}
}

func TestCancelUploadForgetsSession(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	loc := startSession(t, hs, "a")
	expectStatus(t, hs.do(call{method: "DELETE", path: loc, user: "admin"}), http.StatusNoContent)
	expectError(t, hs.do(call{method: "GET", path: loc, user: "admin"}), http.StatusNotFound, CodeBlobUploadUnknown)
	if _, err := hs.store.List(context.Background(), uploadDirKey(loc[strings.LastIndex(loc, "/")+1:])); err == nil {
		t.Fatal("session files remain after cancel")
	}
}

func TestUploadSessionBelongsToItsRepository(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	loc := startSession(t, hs, "a")
	id := loc[strings.LastIndex(loc, "/")+1:]
	w := hs.do(call{method: "GET", path: "/v2/b/blobs/uploads/" + id, user: "admin"})
	expectError(t, w, http.StatusNotFound, CodeBlobUploadUnknown)
	w = hs.do(call{method: "GET", path: "/v2/a/blobs/uploads/not-an-id", user: "admin"})
	expectError(t, w, http.StatusNotFound, CodeBlobUploadUnknown)
}

func TestPurgeUploadsRemovesOnlyAbandonedSessions(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	ctx := context.Background()
	old := startSession(t, hs, "a")
	oldID := old[strings.LastIndex(old, "/")+1:]

	// Nothing is old enough for a handler with the default 24h age.
	if n, err := hs.h.PurgeUploads(ctx); err != nil || n != 0 {
		t.Fatalf("PurgeUploads with fresh sessions = %d, %v", n, err)
	}
	// A handler with a tiny age sees the session as abandoned once it aged.
	purger := hs.newHandler(func(o *Options) { o.UploadMaxAge = time.Millisecond })
	time.Sleep(5 * time.Millisecond)
	n, err := purger.PurgeUploads(ctx)
	if err != nil || n < 1 {
		t.Fatalf("PurgeUploads = %d, %v; want the old session removed", n, err)
	}
	if _, err := hs.store.Stat(ctx, uploadStateKey(oldID)); err == nil {
		t.Fatal("old session survived the purge")
	}
}

func TestMountFromAnotherRepository(t *testing.T) {
	hs := newHarness(t, map[string][]string{
		"admin": {"*"},
		"b-dev": {"oci:repository:team-b/*:push"},
		"both":  {"oci:repository:team-b/*:push", "oci:repository:team-a/*:pull"},
	})
	d := hs.pushBlob("admin", "team-a/base", []byte("shared base layer"))

	// Without pull on the source, a mount never links it: a normal upload starts.
	for _, from := range []string{"&from=team-a/base", ""} {
		w := hs.do(call{method: "POST", path: "/v2/team-b/app/blobs/uploads/?mount=" + d.String() + from, user: "b-dev"})
		expectStatus(t, w, http.StatusAccepted)
		expectStatus(t, hs.do(call{method: "HEAD", path: "/v2/team-b/app/blobs/" + d.String(), user: "b-dev"}), http.StatusNotFound)
	}
	// With pull on the source, both forms link it.
	w := hs.do(call{method: "POST", path: "/v2/team-b/app/blobs/uploads/?mount=" + d.String() + "&from=team-a/base", user: "both"})
	expectStatus(t, w, http.StatusCreated)
	w = hs.do(call{method: "POST", path: "/v2/team-b/other/blobs/uploads/?mount=" + d.String(), user: "both"})
	expectStatus(t, w, http.StatusCreated)
	expectStatus(t, hs.do(call{method: "HEAD", path: "/v2/team-b/other/blobs/" + d.String(), user: "both"}), http.StatusOK)
}

func TestDeleteBlobUnlinksOnlyThatRepository(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	content := []byte("in two repositories")
	d := hs.pushBlob("admin", "a", content)
	hs.pushBlob("admin", "b", content)
	expectStatus(t, hs.do(call{method: "DELETE", path: "/v2/a/blobs/" + d.String(), user: "admin"}), http.StatusAccepted)
	expectStatus(t, hs.do(call{method: "HEAD", path: "/v2/a/blobs/" + d.String(), user: "admin"}), http.StatusNotFound)
	expectStatus(t, hs.do(call{method: "HEAD", path: "/v2/b/blobs/" + d.String(), user: "admin"}), http.StatusOK)
	expectError(t, hs.do(call{method: "DELETE", path: "/v2/a/blobs/" + d.String(), user: "admin"}), http.StatusNotFound, CodeBlobUnknown)
}

func TestParseContentRange(t *testing.T) {
	cases := []struct {
		in         string
		start, end int64
		ok         bool
	}{
		{"0-0", 0, 0, true},
		{"10-19", 10, 19, true},
		{"bytes 5-9", 5, 9, true},
		{"5-4", 0, 0, false},
		{"-1-3", 0, 0, false},
		{"a-b", 0, 0, false},
		{"7", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, c := range cases {
		s, e, err := parseContentRange(c.in)
		if (err == nil) != c.ok || (c.ok && (s != c.start || e != c.end)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", c.in, s, e, err)
		}
	}
}

// moveCountingStore counts Moves: a monolithic push needs none (on S3 a
// Move is a copy of the whole blob).
type moveCountingStore struct {
	storage.Driver
	moves atomic.Int32
}

func (m *moveCountingStore) Move(ctx context.Context, src, dst string) error {
	err := m.Driver.Move(ctx, src, dst)
	if err == nil { // not the look into the collector's quarantine
		m.moves.Add(1)
	}
	return err
}

// keysUnder lists the store's keys below prefix, but for blob refs: the
// ref is touched before the content is looked at, for the collector (it
// protects the digest for the grace, and goes with the collector after it
// when no content came; see gcwriters.go).
func keysUnder(t *testing.T, store storage.Driver, prefix string) []string {
	t.Helper()
	var keys []string
	err := storage.Walk(t.Context(), store, prefix, func(i storage.Info) error {
		if !strings.HasSuffix(i.Key, "/ref") {
			keys = append(keys, i.Key)
		}
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return keys
}

// A monolithic push (POST with ?digest=, or POST then one PUT with the
// body) stores the blob straight under its key: no upload data moved into
// it, and no session left.
func TestMonolithicPushWritesTheBlobInPlace(t *testing.T) {
	store := &moveCountingStore{Driver: inmemory.New()}
	hs := newHarnessOn(t, store, map[string][]string{"admin": {"*"}})
	one, two := []byte("pushed with POST"), []byte("pushed with PUT")
	w := hs.do(call{method: "POST", path: "/v2/a/blobs/uploads/?digest=" + digest.FromBytes(one).String(), body: one, user: "admin"})
	expectStatus(t, w, http.StatusCreated)
	loc := startSession(t, hs, "a")
	w = hs.do(call{method: "PUT", path: loc + "?digest=" + digest.FromBytes(two).String(), body: two, user: "admin"})
	expectStatus(t, w, http.StatusCreated)
	if n := store.moves.Load(); n != 0 {
		t.Errorf("the monolithic pushes moved %d objects; want the blobs written in place", n)
	}
	for _, content := range [][]byte{one, two} {
		w = hs.do(call{method: "GET", path: "/v2/a/blobs/" + digest.FromBytes(content).String(), user: "admin"})
		expectStatus(t, w, http.StatusOK)
		if !bytes.Equal(w.Body.Bytes(), content) {
			t.Fatalf("GET = %q, want %q", w.Body.Bytes(), content)
		}
	}
	if keys := keysUnder(t, store, "uploads"); len(keys) != 0 {
		t.Errorf("upload objects left: %q", keys)
	}
	// The blob exists already: the body is checked, and the blob linked.
	w = hs.do(call{method: "POST", path: "/v2/b/blobs/uploads/?digest=" + digest.FromBytes(one).String(), body: one, user: "admin"})
	expectStatus(t, w, http.StatusCreated)
	expectStatus(t, hs.do(call{method: "HEAD", path: "/v2/b/blobs/" + digest.FromBytes(one).String(), user: "admin"}), http.StatusOK)
	w = hs.do(call{method: "POST", path: "/v2/b/blobs/uploads/?digest=" + digest.FromBytes(one).String(), body: two, user: "admin"})
	expectError(t, w, http.StatusBadRequest, CodeDigestInvalid)
}

// A monolithic push whose body is not its digest stores nothing: no blob
// under either digest, no link, no upload objects (POST), and a session
// left as it was before the PUT, which a right PUT then finishes.
func TestMonolithicPushWithWrongDigestStoresNothing(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	wrong, actual := digest.FromString("something else"), []byte("actual")
	w := hs.do(call{method: "POST", path: "/v2/a/blobs/uploads/?digest=" + wrong.String(), body: actual, user: "admin"})
	expectError(t, w, http.StatusBadRequest, CodeDigestInvalid)
	if !strings.Contains(w.Body.String(), digest.FromBytes(actual).String()) {
		t.Errorf("the error does not say what the content's digest is: %s", w.Body)
	}
	for _, prefix := range []string{"blobs", "uploads", "repositories"} {
		if keys := keysUnder(t, hs.store, prefix); len(keys) != 0 {
			t.Errorf("a refused push left %q", keys)
		}
	}
	loc := startSession(t, hs, "a")
	w = hs.do(call{method: "PUT", path: loc + "?digest=" + wrong.String(), body: actual, user: "admin"})
	expectError(t, w, http.StatusBadRequest, CodeDigestInvalid)
	if keys := keysUnder(t, hs.store, "blobs"); len(keys) != 0 {
		t.Errorf("a refused PUT left %q", keys)
	}
	w = hs.do(call{method: "GET", path: loc, user: "admin"})
	expectStatus(t, w, http.StatusNoContent)
	if r := w.Header().Get("Range"); r != "0-0" {
		t.Errorf("the session after a refused PUT has Range %q, want 0-0 (nothing)", r)
	}
	w = hs.do(call{method: "PUT", path: loc + "?digest=" + digest.FromBytes(actual).String(), body: actual, user: "admin"})
	expectStatus(t, w, http.StatusCreated)
}

// A mount without from costs a bounded number of storage requests however
// many repositories the registry holds: an attacker with push on one
// repository cannot make each POST walk the store. A digest nobody pushed
// costs one look; a blob only in a repository the caller may not see costs
// at most the bounded looks; a blob in one it may pull, within the bound,
// is still mounted.
func TestMountWithoutFromIsBoundedAtAnySize(t *testing.T) {
	store := &countingStore{Driver: inmemory.New()}
	hs := newHarnessOn(t, store, map[string][]string{
		"admin": {"*"},
		// May pull every repository, push one: the widest search.
		"dev": {"oci:repository:*:pull", "oci:repository:dev/app:push"},
	})
	secret := hs.pushBlob("admin", "zz-private/base", []byte("in a repository dev may pull too"))
	shared := hs.pushBlob("admin", "aa-shared/base", []byte("a shared base layer"))
	const repos = 1500
	for i := range repos {
		name := fmt.Sprintf("team%02d/app%04d", i/100, i)
		if _, err := store.Put(t.Context(), revisionKey(name, digest.FromBytes(emptyIndex)), strings.NewReader(MediaTypeOCIIndex), storage.Condition{}); err != nil {
			t.Fatal(err)
		}
		if err := hs.h.noteRepository(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	mount := func(d digest.Digest) (int, int) {
		store.take()
		w := hs.do(call{method: "POST", path: "/v2/dev/app/blobs/uploads/?mount=" + d.String(), user: "dev"})
		return w.Code, store.take()
	}
	mount(digest.FromString("warm up: the catalog flag is known from now on"))

	if code, calls := mount(digest.FromString("nobody pushed this")); code != http.StatusAccepted || calls > 5 {
		t.Fatalf("mount of an unknown digest = %d after %d storage requests; want 202 after a few", code, calls)
	}
	// Beyond the bound (zz-private sorts after 1,500 repositories dev may
	// pull): an upload session, after at most the bounded looks.
	if code, calls := mount(secret); code != http.StatusAccepted || calls > mountSourceChecks+20 {
		t.Fatalf("mount beyond the bound = %d after %d storage requests; want 202 after at most %d", code, calls, mountSourceChecks+20)
	}
	if code, _ := mount(shared); code != http.StatusCreated {
		t.Fatalf("mount of a blob in a repository dev may pull = %d; want 201", code)
	}
	expectStatus(t, hs.do(call{method: "HEAD", path: "/v2/dev/app/blobs/" + shared.String(), user: "dev"}), http.StatusOK)
}
