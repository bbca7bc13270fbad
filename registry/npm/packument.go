package npm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// packument is a package document as stored: the JSON object npm clients
// know, with each version's dist.tarball relative to the npm prefix
// ("<name>/-/<file>"), made absolute when served. Unknown fields are kept.
type packument map[string]any

func decodePackument(b []byte) (packument, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // keep numbers as written
	var p packument
	if err := d.Decode(&p); err != nil {
		return nil, err
	}
	return p, nil
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// child returns p[key] as an object, creating it when missing.
func child(p map[string]any, key string) map[string]any {
	m := obj(p[key])
	if m == nil {
		m = map[string]any{}
		p[key] = m
	}
	return m
}

func (p packument) name() string                    { return str(p["name"]) }
func (p packument) versions() map[string]any        { return child(p, "versions") }
func (p packument) distTags() map[string]any        { return child(p, "dist-tags") }
func (p packument) times() map[string]any           { return child(p, "time") }
func (p packument) version(v string) map[string]any { return obj(p.versions()[v]) }

// distOf returns a version's dist object.
func distOf(version map[string]any) map[string]any { return obj(version["dist"]) }

// tarballFile returns the file name of a version's tarball.
func tarballFile(version map[string]any) string {
	t := str(distOf(version)["tarball"])
	return t[strings.LastIndexByte(t, '/')+1:]
}

// semverRE is SemVer 2.0's grammar.
var semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

func validVersion(v string) bool { return len(v) <= 256 && semverRE.MatchString(v) }

// maxTagLength bounds a dist-tag; semver reads nothing longer as a version.
const maxTagLength = 256

// A dist-tag is what the public registry takes: anything npm can address as
// pkg@tag (the characters encodeURIComponent leaves alone, so no slash, no
// space) that npm would not read as a version. npm reads versions loosely
// (semver.valid(tag, true): v1.0.0, 01.0.0, 1.0.0beta); ranges such as
// 1.x or 2 are tags (brace-expansion@1 publishes with tag 1.x), since an
// exact tag match comes first when npm resolves pkg@1.x.
var (
	tagRE          = regexp.MustCompile(`^[A-Za-z0-9._~!'()*-]+$`)
	looseVersionRE = regexp.MustCompile(`^v*(\d+)\.(\d+)\.(\d+)(?:-?((?:\d+|\d*[a-zA-Z-][a-zA-Z0-9-]*)(?:\.(?:\d+|\d*[a-zA-Z-][a-zA-Z0-9-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
)

func validTag(t string) bool { return checkTag(t) == nil }

// checkTag says why t cannot be a dist-tag, as the 400 npm prints.
func checkTag(t string) error {
	switch {
	case t == "":
		return newError(http.StatusBadRequest, "invalid dist-tag \"\": a tag must not be empty")
	case len(t) > maxTagLength:
		return newError(http.StatusBadRequest, "invalid dist-tag %q: a tag has at most %d characters", truncate(t), maxTagLength)
	case !tagRE.MatchString(t):
		return newError(http.StatusBadRequest, "invalid dist-tag %q: a tag may contain only letters, digits and - . _ ~ ! ' ( ) * (npm cannot address any other as package@tag)", truncate(t))
	case looseVersionRE.MatchString(t):
		return newError(http.StatusBadRequest, "invalid dist-tag %q: npm would read it as a version; name the tag otherwise (1.x or v1 are tags)", truncate(t))
	}
	return nil
}

// nextRev returns the revision after rev, CouchDB style "N-hex".
func nextRev(rev string, body []byte) string {
	n := 0
	fmt.Sscanf(rev, "%d-", &n)
	return fmt.Sprintf("%d-%x", n+1, fnv32(body))
}

func fnv32(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000Z") }
