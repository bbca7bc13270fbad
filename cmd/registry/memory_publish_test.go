package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// hostileBody is prefix, then item repeated (comma-separated, %d in it
// numbering the copies) until the body is about size bytes, then suffix;
// generated as it is sent.
func hostileBody(prefix, item, suffix string, size int) io.Reader {
	return io.MultiReader(strings.NewReader(prefix), &repeated{item: item, left: size - len(prefix) - len(suffix)}, strings.NewReader(suffix))
}

// repeated yields comma-separated copies of item (%d: numbered) while they
// fit in left bytes, so the whole body stays within its size.
type repeated struct {
	item string
	n    int
	left int
	buf  []byte
}

func (r *repeated) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var next []byte
		if r.n > 0 {
			next = append(next, ',')
		}
		if strings.Contains(r.item, "%d") {
			next = fmt.Appendf(next, r.item, r.n)
		} else {
			next = append(next, r.item...)
		}
		if len(next) > r.left {
			break
		}
		r.buf = append(r.buf, next...)
		r.n++
		r.left -= len(next)
	}
	if len(r.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// TestHostileNPMPutBodiesKeepMemoryFlat sends 16 MiB npm PUT bodies built to
// cost the most memory once decoded ({"a":[{},{},...]} cost about 37 times
// its size), four at a time, anonymously and with a read-only token, and
// checks that the server's peak resident memory grew by less than 64 MiB:
// an anonymous body is refused before it is read, a read-only caller's is
// read past or refused at the first member that needs write (issue 14,
// item 1).
func TestHostileNPMPutBodiesKeepMemoryFlat(t *testing.T) {
	const size, parallel = 16 << 20, 4
	s := startServer(t, "")
	admin := s.adminToken()
	resp := s.request("PUT", "/npm/x", admin, strings.NewReader(string(publishBody("x", "1.0.0", []byte("tarball")))))
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
	resp = s.request("POST", "/npm/-/npm/v1/tokens", admin, strings.NewReader(`{"readonly":true}`))
	var created struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if created.Token == "" {
		t.Fatalf("no read-only token: %d", resp.StatusCode)
	}
	reader := created.Token
	// The read-only token's subject is the admin's: its own entry of users.
	tests := []struct {
		name, token, path    string
		prefix, item, suffix string
		want                 int
	}{
		{"anonymous, many empty objects", "", "/npm/x", `{"a":[`, `{}`, `]}`, 401},
		{"anonymous, missing package", "", "/npm/nothing", `{"a":[`, `{}`, `]}`, 401},
		{"anonymous, versions", "", "/npm/x", `{"versions":{"1.0.1":[`, `{}`, `]}}`, 401},
		{"read-only, many empty objects", reader, "/npm/x", `{"a":[`, `{}`, `]}`, 200},
		{"read-only, users as an array", reader, "/npm/x", `{"users":[`, `{}`, `]}`, 200},
		{"read-only, users as a huge object", reader, "/npm/x", `{"users":{`, `"u%d":{}`, `}}`, 200},
		{"read-only, own entry huge", reader, "/npm/x", `{"users":{"admin":[`, `{}`, `]}}`, 413},
		{"read-only, versions", reader, "/npm/x", `{"versions":{"1.0.1":[`, `{}`, `]}}`, 403},
		{"read-only, long readme", reader, "/npm/x", `{"readme":"`, `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`, `"}`, 200},
	}
	// Settle the runtime, then measure from here.
	s.status("GET", "/npm/x", admin)
	pid := s.cmd.Process.Pid
	baseline := residentKiB(t, pid, "VmRSS")
	for _, tt := range tests {
		var wg sync.WaitGroup
		statuses := make([]string, parallel)
		for i := range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("PUT", s.url+tt.path, hostileBody(tt.prefix, tt.item, tt.suffix, size))
				if tt.token != "" {
					req.SetBasicAuth("u", tt.token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					// The server may close the connection on a body it
					// refused without reading, while the client still sends.
					statuses[i] = "error: " + err.Error()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[i] = fmt.Sprint(resp.StatusCode)
			}()
		}
		wg.Wait()
		answered := 0
		for _, got := range statuses {
			if got == fmt.Sprint(tt.want) {
				answered++
			} else if !strings.HasPrefix(got, "error: ") || tt.want == 200 {
				t.Errorf("%s: %s, want %d", tt.name, got, tt.want)
			}
		}
		if answered == 0 {
			t.Errorf("%s: no request was answered: %v", tt.name, statuses)
		}
		t.Logf("%s: %v; peak %d KiB", tt.name, statuses, residentKiB(t, pid, "VmHWM"))
	}
	peak := residentKiB(t, pid, "VmHWM")
	t.Logf("server resident memory: %d KiB before, peak %d KiB", baseline, peak)
	if growth := peak - baseline; growth > 64<<10 {
		t.Fatalf("peak resident memory grew by %d KiB on hostile PUT bodies; want < 64 MiB", growth)
	}
}
