package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The flags of the response rate reach the server: a client that asks for a
// blob and never reads it is disconnected. (The limit itself, and that a
// slow reader above the minimum gets everything, are tested in package
// registry.)
func TestResponseRateFlagsDisconnectAReaderThatStopsReading(t *testing.T) {
	s := startServer(t, "", "--response-idle-timeout", "1s", "--response-min-rate", "65536")
	token := s.adminToken()
	const size = 32 << 20
	blob := make([]byte, size)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	resp := s.request("POST", "/v2/slow/app/blobs/uploads/?digest="+digest, token, bytes.NewReader(blob))
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob: %s", resp.Status)
	}

	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	conn := c.(*net.TCPConn)
	defer conn.Close()
	// A small receive buffer: the kernel would otherwise take tens of MiB
	// on loopback on the client's behalf.
	if err := conn.SetReadBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", s.url+"/v2/slow/app/blobs/"+digest, nil)
	req.SetBasicAuth("user", token)
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	// Read nothing for a while: long past one part (1 s), so the server
	// gives up; then take what the connection still holds.
	time.Sleep(6 * time.Second)
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("after %d bytes the connection still neither ends nor sends", n)
	}
	if n >= size {
		t.Fatalf("the client received %d bytes, the whole blob: the server never cut the reader that stopped", n)
	}
}
