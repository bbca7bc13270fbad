package main

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
)

// publishBody builds what `npm publish` sends for name@version.
func publishBody(name, version string, tarball []byte) []byte {
	s512 := sha512.Sum512(tarball)
	s1 := sha1.Sum(tarball)
	doc := map[string]any{
		"_id": name, "name": name, "description": "concurrency test",
		"dist-tags": map[string]string{"latest": version},
		"versions": map[string]any{version: map[string]any{
			"name": name, "version": version,
			"dist": map[string]any{"integrity": "sha512-" + base64.StdEncoding.EncodeToString(s512[:]), "shasum": hex.EncodeToString(s1[:])},
		}},
		"_attachments": map[string]any{name + "-" + version + ".tgz": map[string]any{
			"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(tarball), "length": len(tarball),
		}},
	}
	b, _ := json.Marshal(doc)
	return b
}

// TestConcurrentPublishesOverTwoProcessesLoseNothing: 32 simultaneous
// publishes of distinct versions of one new package, spread over two server
// processes on one data dir. All must be accepted and present afterwards,
// each tarball matching its integrity.
func TestConcurrentPublishesOverTwoProcessesLoseNothing(t *testing.T) {
	dir := t.TempDir()
	a := startServer(t, dir)
	b := startServer(t, dir)
	token := a.adminToken()
	const n = 32
	const name = "@race/pkg"
	tarballs := make([][]byte, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		tarballs[i] = bytes.Repeat([]byte(fmt.Sprintf("tarball of version %d;", i)), 100+i)
		srv := a
		if i%2 == 1 {
			srv = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := publishBody(name, fmt.Sprintf("1.0.%d", i), tarballs[i])
			req, _ := http.NewRequest("PUT", srv.url+"/npm/@race%2fpkg", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			rb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- fmt.Errorf("publish 1.0.%d: %d %s", i, resp.StatusCode, rb)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, srv := range []*server{a, b} {
		resp := srv.request("GET", "/npm/@race%2fpkg", token, nil)
		var doc struct {
			Versions map[string]struct {
				Dist struct {
					Integrity string `json:"integrity"`
					Tarball   string `json:"tarball"`
				} `json:"dist"`
			} `json:"versions"`
			DistTags map[string]string `json:"dist-tags"`
		}
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if len(doc.Versions) != n || doc.DistTags["latest"] == "" {
			t.Fatalf("%s has %d versions (want %d), latest %q", srv.url, len(doc.Versions), n, doc.DistTags["latest"])
		}
		for i := range n {
			v := doc.Versions[fmt.Sprintf("1.0.%d", i)]
			tr, err := http.NewRequest("GET", v.Dist.Tarball, nil)
			if err != nil {
				t.Fatalf("version 1.0.%d: tarball URL %q: %v", i, v.Dist.Tarball, err)
			}
			tr.Header.Set("Authorization", "Bearer "+token)
			r, err := http.DefaultClient.Do(tr)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r.Body)
			r.Body.Close()
			sum := sha512.Sum512(got)
			if "sha512-"+base64.StdEncoding.EncodeToString(sum[:]) != v.Dist.Integrity || !bytes.Equal(got, tarballs[i]) {
				t.Fatalf("version 1.0.%d: tarball does not match its integrity", i)
			}
		}
	}
}
