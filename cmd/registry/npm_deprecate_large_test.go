package main

import (
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// largePackument is a stored document of n versions shaped like a
// well-used package's on the public registry: some thirty dependencies and
// twenty devDependencies per version, people, scripts, a signed dist block.
func largePackument(name string, n int) []byte {
	person := func(p string) map[string]any { return map[string]any{"name": p, "email": p + "@example.com"} }
	versions, times := map[string]any{}, map[string]any{}
	t0 := time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		v := fmt.Sprintf("%d.%d.%d", i/100, i%100/10, i%10)
		deps, dev := map[string]any{}, map[string]any{}
		for d := range 30 {
			deps[fmt.Sprintf("dependency-number-%d", d)] = fmt.Sprintf("~%d.%d.%d", i%7, d, i%5)
		}
		for d := range 20 {
			dev[fmt.Sprintf("dev-dependency-%d", d)] = fmt.Sprintf("^%d.%d.0", i%9, d)
		}
		tgz := []byte(name + "@" + v)
		s512, s1 := sha512.Sum512(tgz), sha1.Sum(tgz)
		versions[v] = map[string]any{
			"name": name, "version": v, "description": "Fast, unopinionated, minimalist web framework",
			"author": person("tj"), "contributors": []any{person("aaron"), person("ciaran"), person("douglas"), person("roman")},
			"license": "MIT", "homepage": "https://example.com/" + name,
			"repository":   map[string]any{"type": "git", "url": "git+https://github.com/example/" + name + ".git"},
			"keywords":     []any{"express", "framework", "web", "http", "rest", "router", "app", "api"},
			"dependencies": deps, "devDependencies": dev, "engines": map[string]any{"node": ">= 0.10.0"},
			"scripts": map[string]any{"lint": "eslint .", "test": "mocha --require test/support/env --reporter spec --bail --check-leaks test/"},
			"gitHead": hex.EncodeToString(s1[:]), "_id": name + "@" + v, "_nodeVersion": "18.17.0", "_npmVersion": "9.6.7",
			"dist": map[string]any{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512[:]), "shasum": hex.EncodeToString(s1[:]),
				"tarball": name + "/-/" + name + "-" + v + ".tgz", "fileCount": 16, "unpackedSize": 220000 + i,
				"signatures": []any{map[string]any{"keyid": "SHA256:jl3bwswu80PjjokCgh0o2w5c2U4LhQAE57gj9cz1kzA", "sig": base64.StdEncoding.EncodeToString(s512[:52])}}},
			"_npmUser": person("wes"), "maintainers": []any{person("wes"), person("ulises"), person("jon")},
			"_npmOperationalInternal": map[string]any{"host": "s3://npm-registry-packages", "tmp": fmt.Sprintf("tmp/%s_%s_%d", name, v, 1665000000000+i)},
		}
		times[v] = t0.Add(time.Duration(i) * time.Hour).Format("2006-01-02T15:04:05.000Z")
	}
	last := fmt.Sprintf("%d.%d.%d", (n-1)/100, (n-1)%100/10, (n-1)%10)
	times["created"], times["modified"] = times["0.0.0"], times[last]
	b, _ := json.Marshal(map[string]any{
		"_id": name, "name": name, "_rev": fmt.Sprintf("%d-abc", n), "dist-tags": map[string]any{"latest": last},
		"versions": versions, "time": times, "maintainers": []any{person("admin")}, "license": "MIT",
		"readme": strings.Repeat("Express is a minimal and flexible Node.js web application framework. ", 300),
	})
	return b
}

// TestNPMDeprecateOfA3000VersionPackage: the real `npm deprecate` sends the
// whole document of a package with 3,000 versions back; it fits the body
// bounds (bytes and JSON values).
func TestNPMDeprecateOfA3000VersionPackage(t *testing.T) {
	npm := npmClient(t, "npm")
	if os.Getenv("UNIREG_S3_ENDPOINT") != "" {
		t.Skip("writes the document into the filesystem store before the server starts")
	}
	dir := t.TempDir()
	doc := largePackument("big", 3000)
	key := filepath.Join(dir, "storage", "npm", "packages", "big", "packument.json")
	if err := os.MkdirAll(filepath.Dir(key), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("the stored document: %d bytes", len(doc))
	s := startServer(t, dir)
	w := newNPMWorld(t, s, s.adminToken())
	app := w.project("app")
	w.run(app, npm, "deprecate", "big", "use something else")
	for _, v := range []string{"0.0.0", "15.3.7", "29.9.9"} {
		if out := w.run(app, npm, "view", "big@"+v, "deprecated"); !strings.Contains(out, "use something else") {
			t.Fatalf("big@%s deprecated: %q", v, out)
		}
	}
}
