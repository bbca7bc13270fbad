package config

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unireg/unireg/registry/npm"
)

func buildNPMSigning(t *testing.T, dataDir string, args ...string) (*Built, error) {
	t.Helper()
	o, err := Load(append([]string{"--data-dir", dataDir}, args...), env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
	if err == nil {
		t.Cleanup(func() { b.Close() })
	}
	return b, err
}

// The first run makes DATA_DIR/npm-signing-key.pem (0600), later runs sign
// with the same key.
func TestNPMSigningKeyIsGeneratedOnFirstRunAndKept(t *testing.T) {
	dir := t.TempDir()
	b, err := buildNPMSigning(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, NPMSigningKeyName)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	first := b.Config.NPM.Signing
	if first == nil || !strings.HasPrefix(first.KeyID(), "SHA256:") {
		t.Fatalf("signing keys %v", first)
	}
	b2, err := buildNPMSigning(t, dir)
	if err != nil || b2.Config.NPM.Signing.KeyID() != first.KeyID() {
		t.Fatalf("second run: %v, %v, want %s", b2, err, first.KeyID())
	}
	// With npm off there is nothing to sign, and no key is made.
	off := t.TempDir()
	b3, err := buildNPMSigning(t, off, "--npm-enabled=false")
	if err != nil || b3.Config.NPM.Signing != nil {
		t.Fatalf("npm off: %v %v", b3, err)
	}
	if _, err := os.Stat(filepath.Join(off, NPMSigningKeyName)); err == nil {
		t.Fatalf("a key was made with npm off")
	}
}

// --npm-signing-key-file takes a rotation file (the new key, the old one's
// public half with Expires); a broken file stops the start naming the
// flag, never the key.
func TestNPMSigningKeyFileFlag(t *testing.T) {
	dir := t.TempDir()
	oldPEM, _ := npm.GenerateSigningKey()
	newPEM, _ := npm.GenerateSigningKey()
	blk, _ := pem.Decode(oldPEM)
	k, _ := x509.ParsePKCS8PrivateKey(blk.Bytes)
	spki, _ := x509.MarshalPKIXPublicKey(&k.(*ecdsa.PrivateKey).PublicKey)
	file := filepath.Join(dir, "signing.pem")
	rotation := append(append([]byte{}, newPEM...), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Expires": "2026-01-01T00:00:00Z"}, Bytes: spki})...)
	os.WriteFile(file, rotation, 0o600)
	b, err := buildNPMSigning(t, dir, "--npm-signing-key-file", file)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := npm.ParseSigningKeys(newPEM)
	if b.Config.NPM.Signing.KeyID() != want.KeyID() {
		t.Fatalf("signs with %s, want %s", b.Config.NPM.Signing.KeyID(), want.KeyID())
	}
	if _, err := os.Stat(filepath.Join(dir, NPMSigningKeyName)); err == nil {
		t.Fatalf("a default key was made beside --npm-signing-key-file")
	}

	broken := bytes.Replace(newPEM, []byte("PRIVATE KEY"), []byte("CERTIFICATE"), 2)
	os.WriteFile(file, broken, 0o600)
	_, err = buildNPMSigning(t, dir, "--npm-signing-key-file", file)
	if err == nil || !strings.HasPrefix(err.Error(), "--npm-signing-key-file: ") {
		t.Fatalf("broken file: %v", err)
	}
	body := strings.Join(strings.Split(string(blk.Bytes), "\n"), "")
	if strings.Contains(err.Error(), body) || strings.Contains(err.Error(), string(newPEM[30:60])) {
		t.Fatalf("the error shows the key: %v", err)
	}
}
