package npm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Registry signatures, as the public registry makes them and
// `npm audit signatures` checks them (npm's lib/utils/verify-signatures.js
// and pacote's registry fetcher): each version's dist.signatures holds
// [{keyid, sig}], sig the base64 of a DER ECDSA P-256 signature over the
// SHA-256 of "<name>@<version>:<dist.integrity>"; /-/npm/v1/keys lists the
// public keys by keyid, and npm refuses a signature whose key's expires is
// not after the version's publish time (time[version]).
//
// Versions are signed when a document is rendered, not when published: so
// versions published before signing existed are signed too, a rotation
// re-signs everything with the new key, and nothing stored changes. The
// cost is paid once per change of a document (the render is cached).

// SigningKeyExpiresHeader is the PEM header that dates a previous key.
const SigningKeyExpiresHeader = "Expires"

// SigningKeys sign the versions published here and list the public keys
// that verify them: the current key, which signs, and previous keys, kept
// listed with their expiry so that signatures made before a rotation
// (held in clients' caches and mirrors) still verify.
//
// Its file format (ParseSigningKeys) is PEM: first the current key, a
// "PRIVATE KEY" (PKCS #8) or "EC PRIVATE KEY" (SEC 1) block of an ECDSA
// P-256 key, without headers; then any previous keys, each a "PUBLIC KEY"
// (PKIX) block, or a private key block of which only the public half is
// used, carrying an "Expires: <RFC 3339 time>" header.
type SigningKeys struct {
	key  *ecdsa.PrivateKey
	id   string      // the current key's keyid
	list []publicKey // the current key first
}

type publicKey struct {
	keyid   string
	spki    []byte
	expires *time.Time
}

// Signature is one entry of a version's dist.signatures.
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// GenerateSigningKey returns a new ECDSA P-256 key as a PKCS #8 PEM block,
// the content of a signing key file of one key.
func GenerateSigningKey() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate npm signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode npm signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseSigningKeys reads a signing key file (see SigningKeys). Its errors
// name the block by position, never its content.
func ParseSigningKeys(data []byte) (*SigningKeys, error) {
	var ks SigningKeys
	seen := map[string]bool{}
	for n := 1; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		pub, priv, err := parseKeyBlock(b)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		k := publicKey{keyid: KeyID(spki), spki: spki}
		if seen[k.keyid] {
			return nil, fmt.Errorf("PEM block %d: the same key as an earlier block", n)
		}
		seen[k.keyid] = true
		exp, dated := b.Headers[SigningKeyExpiresHeader]
		switch {
		case n == 1 && priv == nil:
			return nil, errors.New("PEM block 1: the first block must be the private key that signs")
		case n == 1 && dated:
			return nil, fmt.Errorf("PEM block 1: the signing key has no %s header (it signs now)", SigningKeyExpiresHeader)
		case n == 1:
			ks.key, ks.id = priv, k.keyid
		case !dated:
			return nil, fmt.Errorf("PEM block %d: a previous key needs an %s: <RFC 3339 time> header", n, SigningKeyExpiresHeader)
		default:
			t, err := time.Parse(time.RFC3339, exp)
			if err != nil {
				return nil, fmt.Errorf("PEM block %d: %s is not an RFC 3339 time", n, SigningKeyExpiresHeader)
			}
			t = t.UTC()
			k.expires = &t
		}
		ks.list = append(ks.list, k)
	}
	if ks.key == nil {
		return nil, errors.New("no PEM block: want the ECDSA P-256 private key")
	}
	return &ks, nil
}

// parseKeyBlock returns the P-256 public key of a block, and its private
// key when it holds one.
func parseKeyBlock(b *pem.Block) (*ecdsa.PublicKey, *ecdsa.PrivateKey, error) {
	var (
		key any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(b.Bytes)
	default:
		return nil, nil, fmt.Errorf("type %q: want PRIVATE KEY, EC PRIVATE KEY or PUBLIC KEY", b.Type)
	}
	if err != nil {
		// x509's messages describe the encoding, never the key's bytes.
		return nil, nil, fmt.Errorf("%s: %w", b.Type, err)
	}
	var pub *ecdsa.PublicKey
	var priv *ecdsa.PrivateKey
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		pub, priv = &k.PublicKey, k
	case *ecdsa.PublicKey:
		pub = k
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, nil, errors.New("not an ECDSA P-256 key (npm verifies ecdsa-sha2-nistp256 only)")
	}
	return pub, priv, nil
}

// KeyID is the keyid of a public key as the public registry writes it:
// "SHA256:" and the unpadded base64 of the SHA-256 of its PKIX (SPKI) DER.
func KeyID(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// KeyID returns the keyid of the current key.
func (k *SigningKeys) KeyID() string { return k.id }

// String names the current key by its keyid only: a SigningKeys printed
// or logged by mistake shows nothing secret.
func (k *SigningKeys) String() string { return "npm signing key " + k.id }

// GoString is String, for %#v.
func (k *SigningKeys) GoString() string { return k.String() }

// LogValue is String, for slog.
func (k *SigningKeys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Sign signs a version: the message is "<name>@<version>:<integrity>".
func (k *SigningKeys) Sign(name, version, integrity string) (Signature, error) {
	sum := sha256.Sum256([]byte(name + "@" + version + ":" + integrity))
	sig, err := ecdsa.SignASN1(rand.Reader, k.key, sum[:])
	if err != nil {
		return Signature{}, fmt.Errorf("sign %s@%s: %w", name, version, err)
	}
	return Signature{KeyID: k.id, Sig: base64.StdEncoding.EncodeToString(sig)}, nil
}

// keysJSON returns the entries of /-/npm/v1/keys, the current key first.
func (k *SigningKeys) keysJSON() []json.RawMessage {
	if k == nil {
		return nil
	}
	out := make([]json.RawMessage, 0, len(k.list))
	for _, p := range k.list {
		var exp any // null: the key signs now
		if p.expires != nil {
			exp = p.expires.Format(time.RFC3339)
		}
		b, _ := json.Marshal(map[string]any{
			"expires": exp, "keyid": p.keyid,
			"keytype": "ecdsa-sha2-nistp256", "scheme": "ecdsa-sha2-nistp256",
			"key": base64.StdEncoding.EncodeToString(p.spki),
		})
		out = append(out, b)
	}
	return out
}

// signFunc returns the dist.signatures of a version, nil to leave its
// dist as stored.
type signFunc func(vm map[string]any) []Signature

// signer signs each version of a document once, remembering the
// signatures in memo (the full and abbreviated renders share them); nil
// when there is nothing to sign with.
func (k *SigningKeys) signer(memo map[string][]Signature) signFunc {
	if k == nil {
		return nil
	}
	return func(vm map[string]any) []Signature {
		name, version, integrity := str(vm["name"]), str(vm["version"]), str(distOf(vm)["integrity"])
		if integrity == "" {
			return nil // nothing for npm to check a signature against
		}
		msg := name + "@" + version + ":" + integrity
		if s, ok := memo[msg]; ok {
			return s
		}
		sig, err := k.Sign(name, version, integrity)
		if err != nil {
			return nil // crypto/rand failing; npm then reports the signature missing
		}
		s := []Signature{sig}
		if memo != nil {
			memo[msg] = s
		}
		return s
	}
}

// signaturesFor returns a copy of the signatures c made with k, for the
// next version of its document: a publish then signs the new version only.
func (c *cachedDoc) signaturesFor(k *SigningKeys) map[string][]Signature {
	if c == nil || k == nil || c.signing != k {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string][]Signature, len(c.signatures))
	for msg, s := range c.signatures {
		out[msg] = s
	}
	return out
}
