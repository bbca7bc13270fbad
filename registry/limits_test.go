package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/limit"
	"github.com/unireg/unireg/registry/storage/inmemory"
)

// allowAll lets every authenticated user do everything.
type allowAll struct{}

func (allowAll) Authorize(context.Context, *auth.Identity, auth.Access) bool { return true }

// limitsWorld is a registry on a real TCP server (deadlines need one) with
// two users, alice and bob, who may do everything.
type limitsWorld struct {
	t   *testing.T
	reg *Registry
	srv *httptest.Server
}

func newLimitsWorld(t *testing.T, limits Limits) *limitsWorld {
	t.Helper()
	reg, err := New(context.Background(), Config{
		Storage:       inmemory.New(),
		Authenticator: userDB{"alice": "a-secret", "bob": "b-secret"},
		Authorizer:    allowAll{},
		Limits:        limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(func() { srv.Close(); reg.Close() })
	return &limitsWorld{t: t, reg: reg, srv: srv}
}

var passwords = map[string]string{"alice": "a-secret", "bob": "b-secret"}

func (w *limitsWorld) do(user, method, path string, body []byte, header map[string]string) *http.Response {
	w.t.Helper()
	req, _ := http.NewRequest(method, w.srv.URL+path, bytes.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, passwords[user])
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp
}

// startUpload opens an OCI upload session and returns its path.
func (w *limitsWorld) startUpload(user, repo string) string {
	w.t.Helper()
	resp := w.do(user, "POST", "/v2/"+repo+"/blobs/uploads/", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		w.t.Fatalf("start upload: %s", resp.Status)
	}
	return resp.Header.Get("Location")
}

// stalledRequest sends a request's headers, announcing a body of size bytes,
// and the first `sent` bytes of it, then sends nothing more until closed.
type stalledRequest struct {
	conn net.Conn
	resp chan *http.Response
}

func (w *limitsWorld) stall(user, method, path string, header map[string]string, size int, sent []byte) *stalledRequest {
	w.t.Helper()
	conn, err := net.Dial("tcp", w.srv.Listener.Addr().String())
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { conn.Close() })
	req, _ := http.NewRequest(method, "http://"+w.srv.Listener.Addr().String()+path, nil)
	req.SetBasicAuth(user, passwords[user])
	for k, v := range header {
		req.Header.Set(k, v)
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, req.URL.RequestURI(), req.Host, size)
	req.Header.Write(&head)
	head.WriteString("\r\n")
	if _, err := conn.Write(append(head.Bytes(), sent...)); err != nil {
		w.t.Fatal(err)
	}
	s := &stalledRequest{conn: conn, resp: make(chan *http.Response, 1)}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			close(s.resp)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		s.resp <- resp
	}()
	return s
}

// answer waits for the server's answer to a stalled request. The bound only
// keeps a broken server from hanging the test; it is not what is tested.
func (s *stalledRequest) answer(t *testing.T) *http.Response {
	t.Helper()
	select {
	case resp, ok := <-s.resp:
		if !ok {
			t.Fatal("the server closed the connection without an answer")
		}
		return resp
	case <-time.After(30 * time.Second):
		t.Fatal("the server still holds the stalled request after 30s")
		return nil
	}
}

func ociErrorOf(t *testing.T, resp *http.Response) (code, message string) {
	t.Helper()
	var body struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("%s: not one OCI error: %v", resp.Status, err)
	}
	return body.Errors[0].Code, body.Errors[0].Message
}

func npmErrorOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body struct{ Error string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error == "" {
		t.Fatalf("%s: not an npm error: %v", resp.Status, err)
	}
	return body.Error
}

func TestAStalledBlobUploadIsCutAndKeepsNothing(t *testing.T) {
	w := newLimitsWorld(t, Limits{BodyRate: limit.BodyRate{Idle: 200 * time.Millisecond, MinBytesPerSecond: -1}})
	loc := w.startUpload("alice", "team/app")
	s := w.stall("alice", "PATCH", loc, map[string]string{"Content-Type": "application/octet-stream"}, 1000, []byte("first bytes"))
	resp := s.answer(t)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled PATCH: %s, want 408", resp.Status)
	}
	if code, msg := ociErrorOf(t, resp); code != "BLOB_UPLOAD_INVALID" || !strings.Contains(msg, "too slowly") || strings.Contains(msg, "uploads/") {
		t.Errorf("error %s %q: want BLOB_UPLOAD_INVALID saying the body was too slow, naming no storage key", code, msg)
	}
	// The session is as before the stalled chunk: nothing of it was kept,
	// and the client can start the chunk again.
	status := w.do("alice", "GET", loc, nil, nil)
	status.Body.Close()
	if status.StatusCode != http.StatusNoContent || status.Header.Get("Range") != "0-0" {
		t.Errorf("upload status after the cut chunk: %s Range %q, want 204 and 0-0", status.Status, status.Header.Get("Range"))
	}
	blob := []byte("the whole blob")
	put := w.do("alice", "PUT", loc+"?digest="+digest.FromBytes(blob).String(), blob, map[string]string{"Content-Type": "application/octet-stream"})
	put.Body.Close()
	if put.StatusCode != http.StatusCreated {
		t.Fatalf("upload after the cut chunk: %s", put.Status)
	}
}

func TestATrickledBodyIsCutBelowTheMinimumRate(t *testing.T) {
	// Bytes keep coming, each well within Idle, but far below the rate.
	w := newLimitsWorld(t, Limits{BodyRate: limit.BodyRate{Idle: 10 * time.Second, MinBytesPerSecond: 1000, Grace: 300 * time.Millisecond}})
	loc := w.startUpload("alice", "team/app")
	s := w.stall("alice", "PATCH", loc, nil, 1000, []byte("x"))
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := s.conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	resp := s.answer(t)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("trickled PATCH: %s, want 408", resp.Status)
	}
	if _, msg := ociErrorOf(t, resp); !strings.Contains(msg, "1000 bytes/s") {
		t.Errorf("error %q does not state the rate", msg)
	}
}

func TestAStalledPublishIsCutAndPublishesNothing(t *testing.T) {
	w := newLimitsWorld(t, Limits{BodyRate: limit.BodyRate{Idle: 200 * time.Millisecond, MinBytesPerSecond: -1}})
	body := npmPublishBody(w.srv.URL, "@t/slow", "1.0.0")
	inData := bytes.Index(body, []byte(`"data":"`)) + 12
	for _, cut := range []int{len(body) / 4, inData} { // in the document, in the tarball
		s := w.stall("alice", "PUT", "/npm/@t%2fslow", map[string]string{"Content-Type": "application/json"}, len(body), body[:cut])
		resp := s.answer(t)
		if resp.StatusCode != http.StatusRequestTimeout {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("publish stalled after %d bytes: %s %s, want 408", cut, resp.Status, b)
		}
		if msg := npmErrorOf(t, resp); !strings.Contains(msg, "too slowly") {
			t.Errorf("error %q does not say the body was too slow", msg)
		}
	}
	get := w.do("alice", "GET", "/npm/@t%2fslow", nil, nil)
	get.Body.Close()
	if get.StatusCode != http.StatusNotFound {
		t.Errorf("packument after the cut publish: %s, want 404", get.Status)
	}
	if keys := allKeys(t, w.reg); len(keys) != 0 {
		t.Errorf("the cut publish left %v in the storage", keys)
	}
}

// allKeys lists every object in the registry's storage.
func allKeys(t *testing.T, reg *Registry) []string {
	t.Helper()
	var keys []string
	var walk func(prefix string)
	walk = func(prefix string) {
		children, err := reg.Storage().List(context.Background(), prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range children {
			key := c
			if prefix != "" {
				key = prefix + "/" + c
			}
			if _, err := reg.Storage().Stat(context.Background(), key); err == nil {
				keys = append(keys, key)
			} else {
				walk(key)
			}
		}
	}
	walk("")
	return keys
}

func TestUploadsPerIdentityAreBoundedAcrossBothProtocols(t *testing.T) {
	w := newLimitsWorld(t, Limits{UploadsPerIdentity: 2, BodyRate: limit.BodyRate{Idle: time.Minute, MinBytesPerSecond: -1}})
	// alice streams two uploads that do not finish.
	var held []*stalledRequest
	for range 2 {
		loc := w.startUpload("alice", "team/app")
		held = append(held, w.stall("alice", "PATCH", loc, nil, 1000, []byte("part")))
	}
	waitFor(t, "two uploads streaming", func() bool { return w.reg.uploadsInProgress() == 2 })

	third := w.do("alice", "PATCH", w.startUpload("alice", "team/app"), []byte("more"), nil)
	if third.StatusCode != http.StatusTooManyRequests || third.Header.Get("Retry-After") == "" {
		t.Fatalf("alice's third upload: %s, want 429 with Retry-After", third.Status)
	}
	if code, msg := ociErrorOf(t, third); code != "TOOMANYREQUESTS" || !strings.Contains(msg, "alice") {
		t.Errorf("error %s %q: want TOOMANYREQUESTS naming alice", code, msg)
	}
	publish := w.do("alice", "PUT", "/npm/@t%2fheld", npmPublishBody(w.srv.URL, "@t/held", "1.0.0"), map[string]string{"Content-Type": "application/json"})
	if publish.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("alice's publish while two uploads stream: %s, want 429", publish.Status)
	}
	if msg := npmErrorOf(t, publish); !strings.Contains(msg, "alice") {
		t.Errorf("npm error %q does not name alice", msg)
	}

	// bob is not affected by alice's uploads.
	blob := []byte("bob's blob")
	bob := w.do("bob", "POST", "/v2/team/bob/blobs/uploads/?digest="+digest.FromBytes(blob).String(), blob, nil)
	bob.Body.Close()
	if bob.StatusCode != http.StatusCreated {
		t.Fatalf("bob's upload: %s, want 201", bob.Status)
	}

	// Once one of alice's uploads ends, she may start another.
	held[0].conn.Close()
	waitFor(t, "the closed upload to end", func() bool { return w.reg.uploadsInProgress() == 1 })
	again := w.do("alice", "PUT", "/npm/@t%2fheld", npmPublishBody(w.srv.URL, "@t/held", "1.0.0"), map[string]string{"Content-Type": "application/json"})
	again.Body.Close()
	if again.StatusCode != http.StatusOK && again.StatusCode != http.StatusCreated {
		t.Fatalf("alice's publish after an upload ended: %s", again.Status)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 3000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

func TestDeeplyNestedDocumentsAreRefused(t *testing.T) {
	w := newLimitsWorld(t, Limits{})
	config := []byte("{}")
	up := w.do("alice", "POST", "/v2/team/app/blobs/uploads/?digest="+digest.FromBytes(config).String(), config, nil)
	up.Body.Close()
	manifest := func(extra string) []byte {
		return []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
			`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + digest.FromBytes(config).String() + `","size":2},` +
			`"layers":[],"x-extra":` + extra + `}`)
	}
	ct := map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
	// The manifest object is the first level; its field the second.
	ok := w.do("alice", "PUT", "/v2/team/app/manifests/shallow", manifest(nested(limit.DefaultJSONDepth-1)), ct)
	ok.Body.Close()
	if ok.StatusCode != http.StatusCreated {
		t.Fatalf("manifest nested %d deep: %s, want 201", limit.DefaultJSONDepth, ok.Status)
	}
	deep := w.do("alice", "PUT", "/v2/team/app/manifests/deep", manifest(nested(limit.DefaultJSONDepth)), ct)
	if deep.StatusCode != http.StatusBadRequest {
		t.Fatalf("manifest nested %d deep: %s, want 400", limit.DefaultJSONDepth+1, deep.Status)
	}
	if code, msg := ociErrorOf(t, deep); code != "MANIFEST_INVALID" || !strings.Contains(msg, "nested too deeply") {
		t.Errorf("error %s %q: want MANIFEST_INVALID saying it is nested too deeply", code, msg)
	}

	var doc map[string]any
	json.Unmarshal(npmPublishBody(w.srv.URL, "@t/deep", "1.0.0"), &doc)
	var v any
	json.Unmarshal([]byte(nested(limit.DefaultJSONDepth)), &v)
	doc["versions"].(map[string]any)["1.0.0"].(map[string]any)["config"] = v
	body, _ := json.Marshal(doc)
	pub := w.do("alice", "PUT", "/npm/@t%2fdeep", body, map[string]string{"Content-Type": "application/json"})
	if pub.StatusCode != http.StatusBadRequest {
		t.Fatalf("publish nested too deeply: %s, want 400", pub.Status)
	}
	if msg := npmErrorOf(t, pub); !strings.Contains(msg, "nested too deeply") {
		t.Errorf("npm error %q does not say the document is nested too deeply", msg)
	}
}
