package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The server-level limits the flags set: header size and the time to send
// headers. (The body limits are tested in package registry.)
func TestOversizedHeadersAreRefused(t *testing.T) {
	s := startServer(t, "", "--anonymous", "*", "--max-header-bytes", "8192")
	req, _ := http.NewRequest("GET", s.url+"/v2/", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB header against --max-header-bytes 8192: %s, want 431", resp.Status)
	}
	if code := s.status("GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("a normal request after it: %d", code)
	}
}

func TestSlowHeadersAreCut(t *testing.T) {
	s := startServer(t, "", "--anonymous", "*", "--read-header-timeout", "300ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// The server must give up on its own; the deadline here only keeps a
	// broken server from hanging the test.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server still waits for the headers after 30s")
	}
	if line != "" && !strings.Contains(line, "408") {
		t.Fatalf("answer to unfinished headers: %q, want the connection closed or 408", line)
	}
}
