package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const abbreviatedAccept = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"

// tarball is a minimal package tarball (package/package.json).
func tarball(name, version string) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	pj := []byte(fmt.Sprintf(`{"name":%q,"version":%q,"main":"index.js"}`, name, version))
	index := []byte("module.exports = " + fmt.Sprintf("%q", name+"@"+version) + ";\n")
	for _, f := range []struct {
		name string
		body []byte
	}{{"package/package.json", pj}, {"package/index.js", index}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Unix(0, 0)})
		tw.Write(f.body)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// publishBody is what `npm publish` sends for one version: its manifest
// (about 1 KB of typical metadata, and the extra keywords) and the tarball
// as an attachment.
func publishBody(registry, name, version string, keywords ...string) []byte {
	tgz := tarball(name, version)
	sum512 := sha512.Sum512(tgz)
	sum1 := sha1.Sum(tgz)
	file := name + "-" + version + ".tgz"
	deps := map[string]string{}
	for i := 0; i < 10; i++ {
		deps[fmt.Sprintf("dependency-number-%d", i)] = fmt.Sprintf("^%d.%d.0", i+1, i)
	}
	manifest := map[string]any{
		"name": name, "version": version, "main": "index.js", "license": "MIT",
		"description":  "A package of the unireg load test, with metadata of a typical size.",
		"keywords":     append([]string{"load", "test", "registry", "unireg"}, keywords...),
		"author":       map[string]string{"name": "Load Tester", "email": "load@example.com"},
		"repository":   map[string]string{"type": "git", "url": "git+https://example.com/load/" + name + ".git"},
		"scripts":      map[string]string{"test": "node test.js", "build": "tsc -p ."},
		"dependencies": deps, "engines": map[string]string{"node": ">=18"},
		"_id": name + "@" + version, "_nodeVersion": "22.0.0", "_npmVersion": "11.0.0",
		"dist": map[string]any{
			"integrity": "sha512-" + base64.StdEncoding.EncodeToString(sum512[:]),
			"shasum":    hex.EncodeToString(sum1[:]),
			"tarball":   registry + "/" + name + "/-/" + file,
		},
	}
	body, _ := json.Marshal(map[string]any{
		"_id": name, "name": name, "description": manifest["description"],
		"dist-tags": map[string]string{"latest": version},
		"versions":  map[string]any{version: manifest},
		"_attachments": map[string]any{file: map[string]any{
			"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(tgz), "length": len(tgz),
		}},
	})
	return body
}

func (e *env) publish(ctx context.Context, name, version string, keywords ...string) error {
	body := publishBody(e.npmURL, name, version, keywords...)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, e.npmURL+"/"+strings.Replace(name, "/", "%2f", 1), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.c.npmDo(req)
	if err != nil {
		return err
	}
	if err := expect(resp, http.StatusOK, http.StatusCreated); err != nil {
		return err
	}
	drain(resp)
	return nil
}

// packagePrefix keeps package names unique per run.
var packagePrefix = fmt.Sprintf("load-%d", time.Now().Unix())

// npmPackage publishes a package with 150 versions once per run and returns
// its name.
func (e *env) npmPackage(ctx context.Context) (string, error) {
	e.pkgOnce.Do(func() {
		name := packagePrefix + "-150"
		for i := 0; i < 150; i++ {
			if e.pkgErr = e.publish(ctx, name, fmt.Sprintf("1.%d.0", i)); e.pkgErr != nil {
				return
			}
		}
		e.pkgName = name
	})
	return e.pkgName, e.pkgErr
}

// packumentGet GETs the 150-version packument, full or abbreviated, asking
// for gzip like npm does. The first response of each worker is decoded and
// checked; the rest are read as they come (decompressing every one would
// spend the load generator's CPU, which shares the machine).
func packumentGet(abbreviated bool) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		name, err := e.npmPackage(ctx)
		if err != nil {
			return nil, err
		}
		header := e.packumentHeader(abbreviated)
		return rawGetOp(e.concurrency, e.npmURL+"/"+name, header, func(body []byte, encoding string) error {
			return checkPackument(bytes.NewReader(body), encoding, 150)
		})
	}
}

func checkPackument(body io.Reader, encoding string, versions int) error {
	if encoding == "gzip" {
		gz, err := gzip.NewReader(body)
		if err != nil {
			return err
		}
		body = gz
	}
	var doc struct {
		Versions map[string]json.RawMessage `json:"versions"`
	}
	if err := json.NewDecoder(body).Decode(&doc); err != nil {
		return fmt.Errorf("packument: %v", err)
	}
	if len(doc.Versions) != versions {
		return fmt.Errorf("packument has %d versions, want %d", len(doc.Versions), versions)
	}
	return nil
}

// tarballGet GETs one tarball of the 150-version package.
func tarballGet(ctx context.Context, e *env) (opFunc, error) {
	name, err := e.npmPackage(ctx)
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.npmURL+"/"+name, nil)
	resp, err := e.c.npmDo(req)
	if err != nil {
		return nil, err
	}
	if err := expect(resp, http.StatusOK); err != nil {
		return nil, err
	}
	var doc struct {
		Versions map[string]struct {
			Dist struct{ Tarball string } `json:"dist"`
		} `json:"versions"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	url := doc.Versions["1.0.0"].Dist.Tarball
	if url == "" {
		return nil, fmt.Errorf("version 1.0.0 has no tarball URL")
	}
	header := map[string]string{}
	if e.c.password != "" {
		header["Authorization"] = "Bearer " + e.c.password
	}
	return rawGetOp(e.concurrency, url, header, nil)
}

// npmPublish publishes a new version of a per-worker package each time.
func npmPublish(ctx context.Context, e *env) (opFunc, error) {
	counters := make([]int, e.concurrency)
	return func(ctx context.Context, worker int) (int64, time.Duration, error) {
		name := fmt.Sprintf("%s-publish-%d", packagePrefix, worker)
		version := fmt.Sprintf("1.0.%d", counters[worker])
		counters[worker]++
		start := time.Now()
		err := e.publish(ctx, name, version)
		return 0, time.Since(start), err
	}, nil
}

// packumentHeader is what npm sends for a packument: the full or the
// abbreviated document, gzip, and the token as its bearer.
func (e *env) packumentHeader(abbreviated bool) map[string]string {
	accept := "application/json"
	if abbreviated {
		accept = abbreviatedAccept
	}
	header := map[string]string{"Accept": accept, "Accept-Encoding": "gzip"}
	if e.c.password != "" {
		header["Authorization"] = "Bearer " + e.c.password
	}
	return header
}
