package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func putManifest(hs *harness, repo, ref, mediaType string, body []byte) *httptest.ResponseRecorder {
	return hs.do(call{method: "PUT", path: "/v2/" + repo + "/manifests/" + ref, body: body, user: "admin",
		header: map[string]string{"Content-Type": mediaType}})
}

func TestManifestPushAndGetByTagAndDigest(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	d, body := hs.pushImage("admin", "a/b", "v1", nil)
	for _, ref := range []string{"v1", d.String()} {
		w := hs.do(call{method: "GET", path: "/v2/a/b/manifests/" + ref, user: "admin"})
		expectStatus(t, w, http.StatusOK)
		if !bytes.Equal(w.Body.Bytes(), body) {
			t.Fatalf("GET %s returned other bytes than pushed", ref)
		}
		if w.Header().Get("Content-Type") != MediaTypeOCIManifest || w.Header().Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("GET %s headers: %v", ref, w.Header())
		}
	}
	w := hs.do(call{method: "HEAD", path: "/v2/a/b/manifests/v1", user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if w.Body.Len() != 0 || w.Header().Get("Content-Length") == "0" {
		t.Fatalf("HEAD: body %d bytes, Content-Length %q", w.Body.Len(), w.Header().Get("Content-Length"))
	}
	expectError(t, hs.do(call{method: "GET", path: "/v2/a/b/manifests/v2", user: "admin"}), http.StatusNotFound, CodeManifestUnknown)
}

func TestManifestValidation(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	cfg := hs.pushBlob("admin", "a", []byte("{}"))
	missing := digest.FromString("not pushed")
	manifest := func(layer digest.Digest) []byte {
		b, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2},
			"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 3}},
		})
		return b
	}
	good := manifest(cfg)
	cases := []struct {
		name, ref, mediaType string
		body                 []byte
		status               int
		code                 string
	}{
		{"not JSON", "t", MediaTypeOCIManifest, []byte("{nope"), 400, CodeManifestInvalid},
		{"unknown media type", "t", "application/x-foo", good, 400, CodeManifestInvalid},
		{"content type disagrees with mediaType", "t", MediaTypeDockerV2, good, 400, CodeManifestInvalid},
		{"missing layer blob", "t", MediaTypeOCIManifest, manifest(missing), 400, CodeManifestBlobUnknown},
		{"digest reference mismatch", missing.String(), MediaTypeOCIManifest, good, 400, CodeDigestInvalid},
		{"invalid tag", "-bad", MediaTypeOCIManifest, good, 400, CodeManifestInvalid},
		{"bad descriptor digest", "t", MediaTypeOCIManifest, []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}`), 400, CodeManifestInvalid},
		{"index with layers", "t", MediaTypeOCIIndex, []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[],"layers":[]}`), 400, CodeManifestInvalid},
		{"schema version 1", "t", MediaTypeOCIIndex, []byte(`{"schemaVersion":1,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`), 400, CodeManifestInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectError(t, putManifest(hs, "a", c.ref, c.mediaType, c.body), c.status, c.code)
		})
	}
	// Nothing of the refused pushes became visible.
	w := hs.do(call{method: "GET", path: "/v2/a/tags/list", user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if strings.Contains(w.Body.String(), `"t"`) {
		t.Fatalf("a refused manifest left a tag: %s", w.Body.String())
	}
	expectStatus(t, putManifest(hs, "a", "t", MediaTypeOCIManifest, good), http.StatusCreated)
}

func TestSparseImageManifestNeedsAllowSparse(t *testing.T) {
	for _, allow := range []bool{false, true} {
		hs := newHarness(t, map[string][]string{"admin": {"*"}}, func(o *Options) { o.AllowSparse = allow })
		cfg := hs.pushBlob("admin", "a", []byte("{}"))
		body, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": MediaTypeOCIManifest,
			"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 2},
			"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromString("absent"), "size": 6}},
		})
		w := putManifest(hs, "a", "t", MediaTypeOCIManifest, body)
		if want := map[bool]int{false: 400, true: 201}[allow]; w.Code != want {
			t.Fatalf("AllowSparse=%v: status %d, want %d", allow, w.Code, want)
		}
	}
}

func TestSparseIndexIsAccepted(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	body, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeOCIIndex,
		"manifests": []any{map[string]any{"mediaType": MediaTypeOCIManifest, "digest": digest.FromString("elsewhere"), "size": 9}},
	})
	expectStatus(t, putManifest(hs, "a", "multi", MediaTypeOCIIndex, body), http.StatusCreated)
}

func TestManifestTooLargeIs413(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}}, func(o *Options) { o.MaxManifestSize = 1024 })
	body := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[],"annotations":{"x":"` + strings.Repeat("a", 2000) + `"}}`)
	expectError(t, putManifest(hs, "a", "big", MediaTypeOCIIndex, body), http.StatusRequestEntityTooLarge, CodeSizeInvalid)
}

func TestPutByDigestWithTagParameters(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	body := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeOCIIndex + `","manifests":[]}`)
	d := digest.FromBytes(body)
	w := hs.do(call{method: "PUT", path: "/v2/a/manifests/" + d.String() + "?tag=one&tag=two", body: body, user: "admin",
		header: map[string]string{"Content-Type": MediaTypeOCIIndex}})
	expectStatus(t, w, http.StatusCreated)
	if got := w.Header().Get("OCI-Tag"); got != "one,two" {
		t.Fatalf("OCI-Tag = %q", got)
	}
	for _, tag := range []string{"one", "two"} {
		w := hs.do(call{method: "HEAD", path: "/v2/a/manifests/" + tag, user: "admin"})
		expectStatus(t, w, http.StatusOK)
		if w.Header().Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("tag %s points at %s", tag, w.Header().Get("Docker-Content-Digest"))
		}
	}
}

func TestDeleteManifestByDigestRemovesItsTagsAndReferrerEntry(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	subject, _ := hs.pushImage("admin", "a", "base", nil)
	sig, _ := hs.pushImage("admin", "a", "sig", map[string]any{
		"artifactType": "application/vnd.example.sig",
		"subject":      map[string]any{"mediaType": MediaTypeOCIManifest, "digest": subject, "size": 1},
	})
	w := hs.do(call{method: "GET", path: "/v2/a/referrers/" + subject.String(), user: "admin"})
	if !strings.Contains(w.Body.String(), sig.String()) {
		t.Fatalf("referrers lacks the signature: %s", w.Body.String())
	}
	expectStatus(t, hs.do(call{method: "DELETE", path: "/v2/a/manifests/" + sig.String(), user: "admin"}), http.StatusAccepted)
	expectError(t, hs.do(call{method: "GET", path: "/v2/a/manifests/sig", user: "admin"}), http.StatusNotFound, CodeManifestUnknown)
	w = hs.do(call{method: "GET", path: "/v2/a/referrers/" + subject.String(), user: "admin"})
	if strings.Contains(w.Body.String(), sig.String()) {
		t.Fatalf("referrers still lists the deleted manifest: %s", w.Body.String())
	}
	expectError(t, hs.do(call{method: "DELETE", path: "/v2/a/manifests/" + sig.String(), user: "admin"}), http.StatusNotFound, CodeManifestUnknown)
}

func TestDeleteTagKeepsManifest(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	d, _ := hs.pushImage("admin", "a", "v1", nil)
	expectStatus(t, hs.do(call{method: "DELETE", path: "/v2/a/manifests/v1", user: "admin"}), http.StatusAccepted)
	expectStatus(t, hs.do(call{method: "GET", path: "/v2/a/manifests/" + d.String(), user: "admin"}), http.StatusOK)
	expectError(t, hs.do(call{method: "GET", path: "/v2/a/manifests/v1", user: "admin"}), http.StatusNotFound, CodeManifestUnknown)
}

func TestReferrersFilterByArtifactType(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	subject, _ := hs.pushImage("admin", "a", "base", nil)
	subj := map[string]any{"mediaType": MediaTypeOCIManifest, "digest": subject, "size": 1}
	sig, _ := hs.pushImage("admin", "a", "sig", map[string]any{"artifactType": "application/vnd.example.sig", "subject": subj})
	sbom, _ := hs.pushImage("admin", "a", "sbom", map[string]any{"artifactType": "application/vnd.example.sbom", "subject": subj,
		"annotations": map[string]string{"org.example": "yes"}})

	w := hs.do(call{method: "GET", path: "/v2/a/referrers/" + subject.String(), user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if w.Header().Get("Content-Type") != MediaTypeOCIIndex || w.Header().Get("OCI-Filters-Applied") != "" {
		t.Fatalf("unfiltered headers: %v", w.Header())
	}
	var idx struct {
		Manifests []struct {
			Digest       string            `json:"digest"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	json.Unmarshal(w.Body.Bytes(), &idx)
	if len(idx.Manifests) != 2 || !strings.Contains(w.Body.String(), sig.String()) || !strings.Contains(w.Body.String(), sbom.String()) {
		t.Fatalf("want the 2 referrers, got %s", w.Body.String())
	}
	w = hs.do(call{method: "GET", path: "/v2/a/referrers/" + subject.String() + "?artifactType=application/vnd.example.sbom", user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if w.Header().Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatal("filtered response lacks OCI-Filters-Applied")
	}
	idx.Manifests = nil
	json.Unmarshal(w.Body.Bytes(), &idx)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sbom.String() || idx.Manifests[0].Annotations["org.example"] != "yes" {
		t.Fatalf("filtered referrers = %s", w.Body.String())
	}
	// An unknown subject has an empty list, not an error.
	w = hs.do(call{method: "GET", path: "/v2/a/referrers/" + digest.FromString("none").String(), user: "admin"})
	expectStatus(t, w, http.StatusOK)
	if !strings.Contains(w.Body.String(), `"manifests":[]`) {
		t.Fatalf("empty referrers = %s", w.Body.String())
	}
}

func TestPushResponseCarriesOCISubject(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}})
	subject := digest.FromString("subject not pushed yet")
	body, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeOCIIndex, "manifests": []any{},
		"subject": map[string]any{"mediaType": MediaTypeOCIManifest, "digest": subject, "size": 3},
	})
	w := putManifest(hs, "a", digest.FromBytes(body).String(), MediaTypeOCIIndex, body)
	expectStatus(t, w, http.StatusCreated)
	if w.Header().Get("OCI-Subject") != subject.String() {
		t.Fatalf("OCI-Subject = %q", w.Header().Get("OCI-Subject"))
	}
}

// Without OCI-Subject a client keeps the referrers fallback tag up to date;
// with it, the client trusts a referrers API that answers UNSUPPORTED.
func TestPushWithReferrersDisabledOmitsOCISubject(t *testing.T) {
	hs := newHarness(t, map[string][]string{"admin": {"*"}}, func(o *Options) { o.DisableReferrers = true })
	subject := digest.FromString("subject")
	body, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeOCIIndex, "manifests": []any{},
		"subject": map[string]any{"mediaType": MediaTypeOCIManifest, "digest": subject, "size": 3},
	})
	w := putManifest(hs, "a", digest.FromBytes(body).String(), MediaTypeOCIIndex, body)
	expectStatus(t, w, http.StatusCreated)
	if got, ok := w.Header()["Oci-Subject"]; ok {
		t.Fatalf("OCI-Subject = %q with referrers disabled", got)
	}
}

func TestDeleteByDigestReportsEachRemovedTag(t *testing.T) {
	var events []Event
	hs := newHarness(t, map[string][]string{"admin": {"*"}}, func(o *Options) {
		o.OnEvent = func(_ context.Context, e Event) { events = append(events, e) }
	})
	d, body := hs.pushImage("admin", "a", "v1", nil)
	expectStatus(t, putManifest(hs, "a", "v2", MediaTypeOCIManifest, body), http.StatusCreated)
	hs.pushImage("admin", "a", "other", nil) // another digest: its tag stays
	events = nil

	expectStatus(t, hs.do(call{method: "DELETE", path: "/v2/a/manifests/" + d.String(), user: "admin"}), http.StatusAccepted)
	var got []string
	for _, e := range events {
		if e.Repository != "a" {
			t.Errorf("event %+v names another repository", e)
		}
		got = append(got, e.Action+" "+e.Tag+" "+e.Digest)
	}
	want := []string{"tag.deleted v1 " + d.String(), "tag.deleted v2 " + d.String(), "manifest.deleted  " + d.String()}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
