package npm

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// realisticVersion is one version's manifest as the public registry holds
// it for a well-used package (modelled on express 4.x): authors and
// contributors, some thirty dependencies, twenty devDependencies, keywords,
// scripts, the dist block with a signature, and npm's own fields.
func realisticVersion(name, version string, i int) map[string]any {
	person := func(n string) map[string]any {
		return map[string]any{"name": n, "email": n + "@example.com"}
	}
	deps := map[string]any{}
	for _, d := range []string{"accepts", "array-flatten", "body-parser", "content-disposition", "content-type",
		"cookie", "cookie-signature", "debug", "depd", "encodeurl", "escape-html", "etag", "finalhandler",
		"fresh", "http-errors", "merge-descriptors", "methods", "on-finished", "parseurl", "path-to-regexp",
		"proxy-addr", "qs", "range-parser", "safe-buffer", "send", "serve-static", "setprototypeof",
		"statuses", "type-is", "utils-merge", "vary"} {
		deps[d] = fmt.Sprintf("~%d.%d.%d", i%7, i%13, i%5)
	}
	dev := map[string]any{}
	for _, d := range []string{"after", "connect-redis", "cookie-parser", "cookie-session", "ejs", "eslint",
		"express-session", "hbs", "marked", "method-override", "mocha", "morgan", "multiparty", "nyc",
		"pbkdf2-password", "supertest", "vhost", "should", "istanbul", "jade"} {
		dev[d] = fmt.Sprintf("^%d.%d.0", i%9, i%11)
	}
	tgz := []byte(name + "@" + version)
	s512, s1 := sha512.Sum512(tgz), sha1.Sum(tgz)
	sig := base64.StdEncoding.EncodeToString(bytes.Repeat(s512[:], 2)[:70])
	return map[string]any{
		"name":        name,
		"version":     version,
		"description": "Fast, unopinionated, minimalist web framework",
		"author":      person("tj"),
		"contributors": []any{person("aaron"), person("ciaran"), person("douglas"), person("guillermo"),
			person("jonathan"), person("roman")},
		"license":         "MIT",
		"repository":      map[string]any{"type": "git", "url": "git+https://github.com/example/" + name + ".git"},
		"homepage":        "https://example.com/" + name,
		"bugs":            map[string]any{"url": "https://github.com/example/" + name + "/issues"},
		"keywords":        []any{"express", "framework", "sinatra", "web", "http", "rest", "restful", "router", "app", "api"},
		"dependencies":    deps,
		"devDependencies": dev,
		"engines":         map[string]any{"node": ">= 0.10.0"},
		"files":           []any{"LICENSE", "History.md", "Readme.md", "index.js", "lib/"},
		"scripts": map[string]any{"lint": "eslint .", "test": "mocha --require test/support/env --reporter spec --bail --check-leaks test/ test/acceptance/",
			"test-ci": "nyc --reporter=lcovonly --reporter=text npm test", "test-cov": "nyc --reporter=html --reporter=text npm test"},
		"gitHead":      hex.EncodeToString(s1[:]),
		"_id":          name + "@" + version,
		"_nodeVersion": "18.17.0",
		"_npmVersion":  "9.6.7",
		"dist": map[string]any{
			"integrity":    "sha512-" + base64.StdEncoding.EncodeToString(s512[:]),
			"shasum":       hex.EncodeToString(s1[:]),
			"tarball":      name + "/-/" + tarballFileName(name, version),
			"fileCount":    16,
			"unpackedSize": 220000 + i,
			"signatures":   []any{map[string]any{"keyid": "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA", "sig": sig}},
		},
		"_npmUser":                person("wes"),
		"directories":             map[string]any{},
		"maintainers":             []any{person("wes"), person("ulises"), person("jon"), person("chris")},
		"_npmOperationalInternal": map[string]any{"host": "s3://npm-registry-packages", "tmp": fmt.Sprintf("tmp/%s_%s_%d", name, version, 1665000000000+i)},
		"_hasShrinkwrap":          false,
	}
}

// realisticPackument is a stored document of n versions, 0.0.0 to
// (n/100).(n%100/10).x, with a 20 KB readme.
func realisticPackument(name string, n int) map[string]any {
	versions, times := map[string]any{}, map[string]any{}
	t0 := time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)
	last := ""
	for i := range n {
		v := fmt.Sprintf("%d.%d.%d", i/100, i%100/10, i%10)
		versions[v] = realisticVersion(name, v, i)
		times[v] = t0.Add(time.Duration(i) * time.Hour).Format("2006-01-02T15:04:05.000Z")
		last = v
	}
	times["created"], times["modified"] = times["0.0.0"], times[last]
	return map[string]any{
		"_id": name, "name": name, "_rev": "3000-abc",
		"description": "Fast, unopinionated, minimalist web framework",
		"dist-tags":   map[string]any{"latest": last},
		"versions":    versions,
		"time":        times,
		"maintainers": []any{map[string]any{"name": "wes", "email": "wes@example.com"}},
		"readme":      strings.Repeat("Express is a minimal and flexible Node.js web application framework. ", 300),
		"license":     "MIT",
	}
}

// `npm deprecate` of a package with 3,000 versions sends the whole document
// back: it must fit the document bounds (bytes and JSON values) with room.
func TestDeprecateOfA3000VersionPackageWorks(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	putJSON(t, hs, packumentKey("big"), realisticPackument("big", 3000))
	doc := hs.writeDoc("big")
	for _, v := range versionsOf(doc) {
		versionOf(doc, v)["deprecated"] = "use something else"
	}
	body := jsonString(t, doc)
	values := countJSONValues(t, body)
	t.Logf("npm deprecate sends %d bytes, %d JSON values (bounds: %d bytes, %d values)",
		len(body), values, hs.h.opts.MaxDocumentSize, hs.h.opts.MaxDocumentSize/16)
	if len(body) < 8<<20 || values < 400_000 {
		t.Fatalf("the document is not realistic: %d bytes, %d values", len(body), values)
	}
	w := hs.do(call{method: http.MethodPut, path: "/big/-rev/" + doc["_rev"].(string), body: body, user: "writer"})
	expectStatus(t, w, http.StatusOK)
	after := hs.packument("reader", "big")
	for _, v := range []string{"0.0.0", "15.3.7", "29.9.9"} {
		if got := versionOf(after, v)["deprecated"]; got != "use something else" {
			t.Fatalf("%s deprecated = %v", v, got)
		}
	}
}

// countJSONValues counts the values of a JSON text, member names aside.
func countJSONValues(t *testing.T, b []byte) int {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	n, inObject, expectName := 0, []bool{}, false
	for {
		tok, err := d.Token()
		if err != nil {
			return n
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			n++
			inObject = append(inObject, tok == json.Delim('{'))
			expectName = tok == json.Delim('{')
			continue
		case json.Delim('}'), json.Delim(']'):
			inObject = inObject[:len(inObject)-1]
		default:
			if !expectName {
				n++
			}
		}
		// After a value inside an object, a name comes next; after a name,
		// its value.
		if len(inObject) > 0 && inObject[len(inObject)-1] {
			if _, isName := tok.(string); isName && expectName {
				expectName = false
				continue
			}
			expectName = true
		} else {
			expectName = false
		}
	}
}
