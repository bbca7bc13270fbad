package oci

import (
	"bytes"
	"encoding/json"
	"mime"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Seeds of FuzzParseManifest: the three kinds of manifest, and broken ones.
const (
	fuzzDigestA = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	fuzzDigestB = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

	fuzzImage = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + fuzzDigestA + `","size":2},` +
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + fuzzDigestB + `","size":3}]}`
	fuzzIndex = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",` +
		`"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + fuzzDigestA + `","size":7,` +
		`"platform":{"architecture":"amd64","os":"linux"}}]}`
	fuzzArtifact = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom",` +
		`"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"` + fuzzDigestA + `","size":2,"data":"e30="},` +
		`"layers":[{"mediaType":"application/spdx+json","digest":"` + fuzzDigestB + `","size":3}],` +
		`"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + fuzzDigestA + `","size":9},` +
		`"annotations":{"org.opencontainers.image.created":"2030-01-01T00:00:00Z"}}`
	fuzzDocker = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
		`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + fuzzDigestA + `","size":2},"layers":[]}`
)

// FuzzParseManifest: manifest validation never panics and is deterministic;
// what it accepts has a supported media type that agrees with the
// Content-Type and with the body's own mediaType, and every descriptor it
// references has a valid digest, a non-negative size and a media type, as a
// reader that matches member names exactly (most non-Go clients) sees the
// body, not only as encoding/json's case-insensitive decoding does.
func FuzzParseManifest(f *testing.F) {
	for _, s := range []struct{ contentType, body string }{
		{MediaTypeOCIManifest, fuzzImage},
		{"", fuzzImage},
		{MediaTypeOCIIndex, fuzzIndex},
		{"", fuzzIndex},
		{MediaTypeOCIManifest + "; charset=utf-8", fuzzArtifact},
		{MediaTypeDockerV2, fuzzDocker},
		{MediaTypeDockerV2List, `{"schemaVersion":2,"manifests":[]}`},
		{MediaTypeOCIIndex, fuzzImage},                // Content-Type and mediaType disagree
		{MediaTypeOCIManifest, `{"schemaVersion":2}`}, // no config
		{MediaTypeOCIIndex, `{"schemaVersion":2,"layers":[],"manifests":[]}`},
		{MediaTypeOCIManifest, `{"schemaVersion":1,"config":{"mediaType":"x","digest":"` + fuzzDigestA + `","size":-1}}`},
		{MediaTypeOCIManifest, `{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:abc","size":1}}`},
		{"application/x-foo", `{"schemaVersion":2}`},
		{"text/plain; x", `null`},
		{"", `[]`},
	} {
		f.Add(s.contentType, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		doc, mt, err := parseManifest(contentType, body)
		doc2, mt2, err2 := parseManifest(contentType, body)
		if mt != mt2 || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(doc, doc2) {
			t.Fatalf("not deterministic: %q %q: (%q, %v) then (%q, %v)", contentType, body, mt, err, mt2, err2)
		}
		if err != nil {
			return
		}
		if !knownManifestType(mt) || doc.MediaType != mt || doc.SchemaVersion != 2 {
			t.Fatalf("%q accepted as %q (doc %q, schemaVersion %d)", body, mt, doc.MediaType, doc.SchemaVersion)
		}
		if contentType != "" {
			if ct, _, _ := mime.ParseMediaType(contentType); ct != mt {
				t.Fatalf("Content-Type %q accepted as %q", contentType, mt)
			}
		}
		own := checkStrictView(t, body, mt)
		// A body that names its media type is the same manifest with or
		// without a Content-Type.
		if own != "" {
			for _, ct := range []string{"", mt} {
				if _, again, err := parseManifest(ct, body); err != nil || again != mt {
					t.Fatalf("%q accepted under %q as %q, under %q as %q: %v", body, contentType, mt, ct, again, err)
				}
			}
		}
	})
}

// checkStrictView reads an accepted body as a case-sensitive JSON reader
// would, checks it describes the manifest the registry validated, and
// returns the body's own mediaType.
func checkStrictView(t *testing.T, body []byte, mt string) string {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("accepted %q is not a JSON object: %v", body, err)
	}
	own, _ := m["mediaType"].(string)
	if own != "" && own != mt || m["mediaType"] != nil && !isString(m["mediaType"]) {
		t.Fatalf("%q accepted as %s but its mediaType reads %v", body, mt, m["mediaType"])
	}
	var descs []any
	if isIndex(mt) {
		if m["config"] != nil || m["layers"] != nil {
			t.Fatalf("index %q accepted with config or layers", body)
		}
		descs = list(t, body, m["manifests"])
	} else {
		if m["config"] == nil {
			t.Fatalf("image manifest %q accepted without config", body)
		}
		descs = append(list(t, body, m["layers"]), m["config"])
	}
	if s, ok := m["subject"]; ok && s != nil {
		descs = append(descs, s)
	}
	for _, x := range descs {
		desc, ok := x.(map[string]any)
		if !ok {
			t.Fatalf("%q accepted with descriptor %v", body, x)
		}
		dg, _ := desc["digest"].(string)
		if _, err := ParseDigest(dg); err != nil {
			t.Fatalf("%q accepted with descriptor digest %q: %v", body, dg, err)
		}
		if mediaType, _ := desc["mediaType"].(string); mediaType == "" {
			t.Fatalf("%q accepted with a descriptor without mediaType", body)
		}
		if desc["size"] == nil {
			continue // missing reads as 0, as in encoding/json
		}
		size, _ := desc["size"].(json.Number)
		if n, err := strconv.ParseInt(string(size), 10, 64); err != nil || n < 0 {
			t.Fatalf("%q accepted with descriptor size %v", body, desc["size"])
		}
	}
	return own
}

func isString(v any) bool { _, ok := v.(string); return ok }

func list(t *testing.T, body []byte, v any) []any {
	t.Helper()
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("%q accepted with a descriptor list %v", body, v)
	}
	return l
}

// TestAmbiguousManifestIsRefused: a body that encoding/json reads one way
// and an exact, first-wins reader another is refused (found by
// FuzzParseManifest: "Config" passed for the config).
func TestAmbiguousManifestIsRefused(t *testing.T) {
	index := `"mediaType":"` + MediaTypeOCIIndex + `"`
	cases := map[string]string{
		"case variant of a member":      strings.Replace(fuzzImage, `"config"`, `"Config"`, 1),
		"folded variant of a member":    strings.Replace(fuzzImage, `"schemaVersion"`, `"ſchemaVersion"`, 1),
		"duplicate mediaType":           strings.Replace(fuzzImage, `{"schemaVersion":2,`, `{"schemaVersion":2,`+index+`,`, 1),
		"case variant in a descriptor":  strings.Replace(fuzzImage, `"size":3}`, `"size":3,"Digest":"`+fuzzDigestA+`"}`, 1),
		"duplicate digest in a subject": strings.Replace(fuzzArtifact, `"size":9}`, `"size":9,"digest":"`+fuzzDigestB+`"}`, 1),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := parseManifest("", []byte(fuzzImage)); err != nil {
				t.Fatalf("the unchanged manifest is refused: %v", err)
			}
			if _, mt, err := parseManifest("", []byte(body)); err == nil {
				t.Fatalf("%s accepted as %s", body, mt)
			}
		})
	}
}
