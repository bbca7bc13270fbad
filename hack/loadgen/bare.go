package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// bareMain runs the baseline the targets are measured against: a Go server
// that does only what any registry must. PUT /<anything> streams the body
// into a temporary file while hashing it, then renames the file to its
// digest; GET /<digest> serves the file (sendfile). With --fsync it does the
// durable work a registry must do before it acknowledges a push: the file is
// synced before the rename and the folder after it.
func bareMain(args []string) {
	fs := flag.NewFlagSet("bare", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:5001", "address to listen on")
	dir := fs.String("dir", "", "folder for the files (default: a temporary folder)")
	durable := fs.Bool("fsync", false, "sync each file before its rename and the folder after it, before answering")
	fs.Parse(args)
	if *dir == "" {
		d, err := os.MkdirTemp("", "loadgen-bare-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("bare server on %s, files in %s", ln.Addr(), *dir)
	log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			tmp, err := os.CreateTemp(*dir, ".upload-*")
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			h := sha256.New()
			_, err = io.CopyBuffer(io.MultiWriter(tmp, h), r.Body, make([]byte, 1<<20))
			if err == nil && *durable {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			digest := hex.EncodeToString(h.Sum(nil))
			if err == nil {
				err = os.Rename(tmp.Name(), filepath.Join(*dir, digest))
			}
			if err == nil && *durable {
				err = syncDir(*dir)
			}
			if err != nil {
				os.Remove(tmp.Name())
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header().Set("Digest", digest)
			w.WriteHeader(http.StatusCreated)
		case http.MethodGet:
			name := strings.TrimPrefix(r.URL.Path, "/")
			if strings.ContainsAny(name, "/.") {
				http.NotFound(w, r)
				return
			}
			http.ServeFile(w, r, filepath.Join(*dir, name))
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})))
}

// barePut uploads a body to the bare server and returns its digest.
func (e *env) barePut(ctx context.Context, body io.Reader, size int64) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, e.c.url("/upload"), body)
	req.ContentLength = size
	resp, err := e.c.http.Do(req)
	if err != nil {
		return "", err
	}
	if err := expect(resp, http.StatusCreated); err != nil {
		return "", err
	}
	drain(resp)
	return resp.Header.Get("Digest"), nil
}

func barePush(size int64) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		return func(ctx context.Context, _ int) (int64, time.Duration, error) {
			start := time.Now()
			_, err := e.barePut(ctx, newBlob(blobIDs.Add(1), size), size)
			return size, time.Since(start), err
		}, nil
	}
}

func barePull(size int64) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		id := blobIDs.Add(1)
		digest, err := e.barePut(ctx, newBlob(id, size), size)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, _ int) (int64, time.Duration, error) {
			start := time.Now()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.c.url("/"+digest), nil)
			resp, err := e.c.http.Do(req)
			if err != nil {
				return 0, 0, err
			}
			n, err := readVerified(resp, digest, size)
			return n, time.Since(start), err
		}, nil
	}
}

// bareStatic stores body once and GETs it.
func bareStatic(body []byte) setupFunc {
	return func(ctx context.Context, e *env) (opFunc, error) {
		digest, err := e.barePut(ctx, bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return nil, err
		}
		return rawGetOp(e.concurrency, e.c.url("/"+digest), nil, nil)
	}
}

// bareManifest serves a manifest-sized file (about 700 bytes).
var bareManifest = bareStatic(bytes.Repeat([]byte("m"), 700))

// barePackument serves a 150-version packument built the way publishBody
// describes versions (about the size unireg serves).
var barePackument = func(ctx context.Context, e *env) (opFunc, error) {
	versions := map[string]json.RawMessage{}
	for i := 0; i < 150; i++ {
		v := fmt.Sprintf("1.%d.0", i)
		var doc struct {
			Versions map[string]json.RawMessage `json:"versions"`
		}
		json.Unmarshal(publishBody("http://bare/npm", "load-150", v), &doc)
		versions[v] = doc.Versions[v]
	}
	body, _ := json.Marshal(map[string]any{"_id": "load-150", "name": "load-150", "versions": versions,
		"dist-tags": map[string]string{"latest": "1.149.0"}})
	return bareStatic(body)(ctx, e)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
