package npm

import (
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
)

// packument150 is a package document with 150 versions of about 1 KB of
// typical metadata each (about 150 KB serialised).
func packument150(b *testing.B) packument {
	versions := map[string]any{}
	times := map[string]any{}
	for i := range 150 {
		v := fmt.Sprintf("1.%d.0", i)
		sum := sha512.Sum512([]byte(v))
		deps := map[string]any{}
		for d := range 10 {
			deps[fmt.Sprintf("dependency-number-%d", d)] = fmt.Sprintf("^%d.0.0", d+1)
		}
		versions[v] = map[string]any{
			"name": "bench", "version": v, "main": "index.js", "license": "MIT",
			"description":  "A package of the benchmark, with metadata of a typical size.",
			"keywords":     []any{"bench", "registry"},
			"author":       map[string]any{"name": "Bench", "email": "bench@example.com"},
			"repository":   map[string]any{"type": "git", "url": "git+https://example.com/bench.git"},
			"scripts":      map[string]any{"test": "node test.js"},
			"dependencies": deps,
			"dist": map[string]any{
				"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sum[:]),
				"shasum":    fmt.Sprintf("%x", sum[:20]),
				"tarball":   "http://x/bench/-/bench-" + v + ".tgz",
			},
		}
		times[v] = "2026-01-01T00:00:00.000Z"
	}
	raw, _ := json.Marshal(map[string]any{"_id": "bench", "name": "bench", "versions": versions, "time": times,
		"dist-tags": map[string]any{"latest": "1.149.0"}})
	var p packument
	if err := json.Unmarshal(raw, &p); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkPackumentRender is the work done once per change of a package:
// the full and the abbreviated document serialised for a base URL, each
// plain and gzipped.
func BenchmarkPackumentRender(b *testing.B) {
	p := packument150(b)
	b.ReportAllocs()
	for b.Loop() {
		c := newCachedDoc(p, "v1")
		full, err := c.render("http://registry.example/npm", false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.render("http://registry.example/npm", true); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(full.plain)))
	}
}

// BenchmarkPackumentRenderCached is what every later GET pays.
func BenchmarkPackumentRenderCached(b *testing.B) {
	c := newCachedDoc(packument150(b), "v1")
	c.render("http://registry.example/npm", false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.render("http://registry.example/npm", false); err != nil {
			b.Fatal(err)
		}
	}
}
