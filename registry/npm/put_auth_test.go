package npm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/unireg/unireg/registry/limit"
)

// recordingBody is a request body that records how many of its bytes the
// server read.
type recordingBody struct {
	r    io.Reader
	read atomic.Int64
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

// repeatedBody is prefix, then item n times (joined by commas), then suffix,
// produced as it is read: a hostile body costs the test nothing.
func repeatedBody(prefix, item string, n int, suffix string) io.Reader {
	return io.MultiReader(strings.NewReader(prefix), &repeatReader{item: item, left: n}, strings.NewReader(suffix))
}

type repeatReader struct {
	item    string
	left    int
	started bool
	buf     []byte
}

func (r *repeatReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) && r.left > 0 {
		if r.started {
			r.buf = append(r.buf, ',')
		}
		r.started = true
		r.buf = append(r.buf, r.item...)
		r.left--
	}
	if len(r.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// putBody sends body as user (or anonymously) to PUT path.
func (hs *harness) putBody(user, path string, body io.Reader) *httptest.ResponseRecorder {
	hs.t.Helper()
	req := httptest.NewRequest(http.MethodPut, testRoot+path, body)
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+hs.tokens[user])
	}
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, req)
	return w
}

func TestRepeatedBodyIsValidJSON(t *testing.T) {
	b, _ := io.ReadAll(repeatedBody(`{"a":[`, `{}`, 5, `]}`))
	if string(b) != `{"a":[{},{},{},{},{}]}` {
		t.Fatalf("repeatedBody = %s", b)
	}
	b, _ = io.ReadAll(repeatedBody(`[`, `1`, 100000, `]`))
	var v []int
	if err := json.Unmarshal(b, &v); err != nil || len(v) != 100000 {
		t.Fatalf("repeatedBody of 100000: %d values, %v", len(v), err)
	}
}

// A PUT is identified and authorised for reading the package before a byte
// of its body is read: a caller who may not even read it gets its 401/403
// and the body stays unread (issue 14, item 1).
func TestPutIsRefusedBeforeItsBodyIsRead(t *testing.T) {
	users := map[string][]string{"admin": {"*"}, "areader": {"npm:package:@a/*:read"}, "bwriter": {"npm:package:@b/*:write"}}
	closed := newHarness(t, users)
	open := newHarnessWith(t, harnessConfig{users: users, anonymous: []string{"npm:package:*:read"}})
	for _, hs := range []*harness{closed, open} {
		hs.mustPublish("@b/x", "1.0.0")
	}
	publish := newPublish("@b/x", "2.0.0", tarballOf("@b/x", "2.0.0")).body()
	tests := []struct {
		name   string
		hs     *harness
		user   string
		path   string
		status int
		want   string
	}{
		{"anonymous, existing package", closed, "", "/@b%2fx", 401, "authentication required"},
		{"anonymous, missing package", closed, "", "/@b%2fnothing", 401, "authentication required"},
		{"anonymous, change route", closed, "", "/@b%2fx/-rev/1-a", 401, "authentication required"},
		{"other scope, existing package", closed, "areader", "/@b%2fx", 403, "areader may not read @b/x"},
		{"other scope, missing package", closed, "areader", "/@b%2fnothing", 403, "areader may not read @b/nothing"},
		// Anonymous may read, but may neither write nor star: nothing a
		// body could say would be accepted.
		{"anonymous reader", open, "", "/@b%2fx", 401, "authentication required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &recordingBody{r: bytes.NewReader(publish)}
			w := tt.hs.putBody(tt.user, tt.path, body)
			expectError(t, w, tt.status, tt.want)
			if n := body.read.Load(); n != 0 {
				t.Fatalf("the server read %d bytes of the body before refusing", n)
			}
		})
	}
	if got := versionsOf(closed.packument("admin", "@b/x")); len(got) != 1 {
		t.Fatalf("versions = %v", got)
	}
}

// The identity's upload slot is taken only once the caller is authorised:
// an unauthorised caller is told so, not that it streams too many uploads,
// and never holds a slot.
func TestUploadSlotIsTakenOnlyAfterAuthorisation(t *testing.T) {
	uploads := limit.NewUploads(1)
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Uploads = uploads }})
	hs.mustPublish("x", "1.0.0")
	release, ok := uploads.Acquire("anonymous")
	if !ok {
		t.Fatal("no slot")
	}
	defer release()
	body := &recordingBody{r: bytes.NewReader(newPublish("x", "2.0.0", tarballOf("x", "2.0.0")).body())}
	expectError(t, hs.putBody("", "/x", body), http.StatusUnauthorized, "authentication required")
	if n := body.read.Load(); n != 0 {
		t.Fatalf("read %d bytes", n)
	}
}

// A caller who may read but not write is refused at the first member that
// needs write, while the body streams: the rest of it is never read.
func TestReadOnlyCallerIsRefusedAtTheFirstMemberThatNeedsWrite(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	before := hs.storedPackument("x")
	for _, member := range []string{"versions", "_attachments", "dist-tags", "maintainers"} {
		t.Run(member, func(t *testing.T) {
			// 16 MiB of {"_id":"x","<member>":{"k":[{},{},...]}}
			body := &recordingBody{r: repeatedBody(`{"_id":"x","`+member+`":{"k":[`, `{}`, 16<<20/3, `]}}`)}
			w := hs.putBody("reader", "/x", body)
			expectError(t, w, http.StatusForbidden, "npm:package:x:write")
			if n := body.read.Load(); n > 256<<10 {
				t.Fatalf("the server read %d bytes before refusing, want it to stop at %q", n, member)
			}
			if got := hs.storedPackument("x"); !bytes.Equal(got, before) {
				t.Fatalf("document changed:\n%s", got)
			}
		})
	}
}

// Item 4: PUT {} to a package the caller may not read answers the same
// whether the package exists or not.
func TestPutToAnUnreadablePackageAnswersTheSameWhetherItExists(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}, "areader": {"npm:package:@a/*:read"}})
	hs.mustPublish("@b/exists", "1.0.0")
	for _, user := range []string{"", "areader"} {
		for _, route := range []string{"", "/-rev/1-a"} {
			t.Run(fmt.Sprintf("%q%s", user, route), func(t *testing.T) {
				exists := hs.putBody(user, "/@b%2fexists"+route, strings.NewReader(`{}`))
				missing := hs.putBody(user, "/@b%2fmissing"+route, strings.NewReader(`{}`))
				if exists.Code != missing.Code || exists.Code < 400 {
					t.Fatalf("existing package: %d %s; missing: %d %s", exists.Code, exists.Body, missing.Code, missing.Body)
				}
				if a, b := strings.ReplaceAll(exists.Body.String(), "exists", "NAME"), strings.ReplaceAll(missing.Body.String(), "missing", "NAME"); a != b {
					t.Fatalf("answers differ: %s vs %s", a, b)
				}
			})
		}
	}
}

// A read-only caller's star keeps its own entry of `users`; what else the
// body holds (any size) is read past, and changes nothing.
func TestReadOnlyStarReadsPastEverythingElse(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	before := hs.packument("reader", "x")
	others := make(map[string]any, 10000)
	for i := range 10000 {
		others[fmt.Sprintf("user%d", i)] = true
	}
	others["reader"] = true
	body := jsonString(t, map[string]any{
		"_id": "x", "_rev": before["_rev"],
		"readme":      strings.Repeat("x", 1<<20),
		"time":        map[string]any{"1.0.0": "2000-01-01T00:00:00.000Z"},
		"description": []any{map[string]any{}, map[string]any{}},
		"users":       others,
	})
	expectStatus(t, hs.putBody("reader", "/x", bytes.NewReader(body)), http.StatusOK)
	after := hs.packument("reader", "x")
	if got := after["users"]; !reflect.DeepEqual(got, map[string]any{"reader": true}) {
		t.Fatalf("users = %v, want only the reader's star", got)
	}
	for _, f := range []string{"readme", "time", "description", "versions", "dist-tags", "maintainers"} {
		if !reflect.DeepEqual(after[f], before[f]) {
			t.Fatalf("a read-only star changed %s: %v", f, after[f])
		}
	}
}

// The members a read-only caller's body may keep are small: an _id, _rev
// or name built to be large is refused, not buffered.
func TestReadOnlyCallersKeptMembersAreSmall(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	for _, member := range []string{"_id", "_rev", "name"} {
		t.Run(member, func(t *testing.T) {
			body := &recordingBody{r: repeatedBody(`{"`+member+`":[`, `{}`, 4<<20/3, `]}`)}
			w := hs.putBody("reader", "/x", body)
			expectStatus(t, w, http.StatusRequestEntityTooLarge)
			if n := body.read.Load(); n > 256<<10 {
				t.Fatalf("read %d bytes of a %s that cannot be a star's", n, member)
			}
		})
	}
}

// The decoding of an accepted body is bounded by the number of JSON
// values, not only its bytes: {"a":[{},{},...]} costs far more in memory
// than it weighs.
func TestBodyWithTooManyJSONValuesIs413(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("x", "1.0.0")
	max := hs.h.opts.MaxDocumentSize / 16
	for _, user := range []string{"writer", "admin"} {
		body := &recordingBody{r: repeatedBody(`{"_id":"x","a":[`, `{}`, max+1, `]}`)}
		expectError(t, hs.putBody(user, "/x", body), http.StatusRequestEntityTooLarge, "JSON values")
	}
	// Just under the bound is fine (a star, since nothing else is said).
	body := repeatedBody(`{"_id":"x","a":[`, `0`, max-8, `]}`)
	expectStatus(t, hs.putBody("writer", "/x", body), http.StatusOK)
}
