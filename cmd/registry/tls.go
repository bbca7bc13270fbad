package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// certCheckInterval is how often, at most, the files of the serving
// certificate are read again: a handshake after a rotation presents the new
// certificate within it.
const certCheckInterval = time.Second

// servingCert is the certificate the TLS listener presents: the pair of
// --tls-cert-file and --tls-key-file, read again by the handshake that
// finds the last read older than certCheckInterval.
//
// It reads the files by their paths each time rather than watching them:
// the kubelet rotates a Secret volume by swapping its ..data symlink, so
// the files' own inodes never change; reading through the paths sees the
// swap, an editor's rename and an in-place write alike, on any filesystem.
// A pair that does not load is logged once and the certificate in force
// stays, so a half-written rotation never takes the listener down.
type servingCert struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	checked time.Time
	seen    [sha256.Size]byte // what the files held at the last check, loaded or not
	cert    *tls.Certificate
}

// newServingCert loads the pair the flags name; nil when neither is set.
// Its errors name the flag at fault and never the key file's path or
// content (only the certificate's path, which is no secret).
func newServingCert(certFile, keyFile string, log *slog.Logger) (*servingCert, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case keyFile == "":
		return nil, errors.New("--tls-key-file: required with --tls-cert-file")
	case certFile == "":
		return nil, errors.New("--tls-cert-file: required with --tls-key-file")
	}
	s := &servingCert{certFile: certFile, keyFile: keyFile, log: log}
	seen, cert, err := s.read()
	if err != nil {
		return nil, err
	}
	s.seen, s.cert, s.checked = seen, cert, time.Now()
	log.Info("TLS certificate loaded", certAttrs(cert)...)
	return s, nil
}

// tlsConfig is the listener's configuration: TLS 1.2 or later, the
// certificate of the last good pair.
func (s *servingCert) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.getCertificate}
}

func (s *servingCert) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.checked) >= certCheckInterval {
		s.checked = time.Now()
		s.reload()
	}
	return s.cert, nil
}

// reload takes the files' pair if they changed since the last check and it
// loads; a change that does not load is logged once, until the files change
// again.
func (s *servingCert) reload() {
	seen, cert, err := s.read()
	if seen == s.seen {
		return
	}
	s.seen = seen
	if err != nil {
		s.log.Error("TLS certificate not reloaded: the previous one stays in use", "error", err.Error())
		return
	}
	s.cert = cert
	s.log.Info("TLS certificate reloaded", certAttrs(cert)...)
}

// read reads and parses the pair. seen identifies what was read, a failure
// included, so that the same failure is not reported twice.
func (s *servingCert) read() (seen [sha256.Size]byte, cert *tls.Certificate, err error) {
	certPEM, certErr := os.ReadFile(s.certFile)
	keyPEM, keyErr := os.ReadFile(s.keyFile)
	h := sha256.New()
	for _, part := range [][]byte{certPEM, keyPEM, []byte(errText(certErr)), []byte(errText(keyErr))} {
		fmt.Fprintf(h, "%d:", len(part))
		h.Write(part)
	}
	copy(seen[:], h.Sum(nil))
	switch {
	case certErr != nil:
		return seen, nil, fmt.Errorf("--tls-cert-file: %w", certErr)
	case keyErr != nil:
		return seen, nil, fmt.Errorf("--tls-key-file: %s", withoutPath(keyErr))
	}
	if err := checkCertPEM(certPEM); err != nil {
		return seen, nil, fmt.Errorf("--tls-cert-file %s: %w", s.certFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The certificate parsed, so the key is at fault: missing, not a
		// key, or not the certificate's. crypto/tls's messages quote no
		// key material.
		return seen, nil, fmt.Errorf("--tls-key-file: %w", err)
	}
	return seen, &pair, nil
}

// checkCertPEM tells a bad certificate file apart from a bad key, which
// tls.X509KeyPair reports alike.
func checkCertPEM(certPEM []byte) error {
	block, _ := pem.Decode(bytes.TrimSpace(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("no PEM CERTIFICATE block at the start")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return err
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// withoutPath is a file error without the path it names (the key file's
// path stays out of the logs).
func withoutPath(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// certAttrs describe a certificate in the log: what an operator checks
// after a rotation, nothing secret.
func certAttrs(c *tls.Certificate) []any {
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil
		}
	}
	ips := make([]string, len(leaf.IPAddresses))
	for i, ip := range leaf.IPAddresses {
		ips[i] = ip.String()
	}
	return []any{"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
		"dns_names", strings.Join(leaf.DNSNames, ","), "ip_addresses", strings.Join(ips, ",")}
}

// serve runs srv on ln: HTTPS with certs, else plain HTTP. Over TLS only
// HTTP/1.1 is offered: the body and response rate limits (registry/limit)
// are proven on HTTP/1.1 connections, and OCI and npm clients need nothing
// more.
func serve(srv *http.Server, ln net.Listener, certs *servingCert) error {
	if certs == nil {
		return srv.Serve(ln)
	}
	srv.TLSConfig = certs.tlsConfig()
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	return srv.ServeTLS(ln, "", "")
}
