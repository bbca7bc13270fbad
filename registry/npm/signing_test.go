package npm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func newSigningKeys(t testing.TB) (*SigningKeys, []byte) {
	t.Helper()
	raw, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := ParseSigningKeys(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ks, raw
}

// servedKey is one entry of /-/npm/v1/keys.
type servedKey struct {
	Expires *string `json:"expires"`
	KeyID   string  `json:"keyid"`
	KeyType string  `json:"keytype"`
	Scheme  string  `json:"scheme"`
	Key     string  `json:"key"`
}

func servedKeys(t *testing.T, hs *harness, user string) []servedKey {
	t.Helper()
	w := hs.get(user, "/-/npm/v1/keys")
	expectStatus(t, w, http.StatusOK)
	var doc struct {
		Keys []servedKey `json:"keys"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || doc.Keys == nil {
		t.Fatalf("keys document %s: %v", w.Body.String(), err)
	}
	return doc.Keys
}

// verify checks a signature as npm does (pacote: crypto.createVerify
// ('SHA256') over "<name>@<version>:<integrity>", the served key's SPKI,
// a DER signature).
func verify(t *testing.T, keys []servedKey, sig map[string]any, name, version, integrity string) error {
	t.Helper()
	for _, k := range keys {
		if k.KeyID != sig["keyid"] {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil {
			return err
		}
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return err
		}
		raw, err := base64.StdEncoding.DecodeString(str(sig["sig"]))
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(name + "@" + version + ":" + integrity))
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), sum[:], raw) {
			return fmt.Errorf("signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("no served key has keyid %v", sig["keyid"])
}

func signaturesOf(t *testing.T, doc map[string]any, version string) []any {
	t.Helper()
	sigs, _ := distOf(obj(obj(doc["versions"])[version]))["signatures"].([]any)
	return sigs
}

func TestPublishedVersionIsSignedInFullAndAbbreviatedDocuments(t *testing.T) {
	ks, _ := newSigningKeys(t)
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Signing = ks }})
	hs.mustPublish("@acme/signed", "1.0.0")
	hs.mustPublish("@acme/signed", "1.1.0")
	keys := servedKeys(t, hs, "")
	if len(keys) != 1 || keys[0].Expires != nil || keys[0].KeyType != "ecdsa-sha2-nistp256" || keys[0].Scheme != "ecdsa-sha2-nistp256" {
		t.Fatalf("keys: %+v", keys)
	}
	for _, accept := range []string{"application/json", mediaTypeAbbreviated} {
		w := hs.do(call{method: http.MethodGet, path: "/@acme%2fsigned", user: "reader", header: map[string]string{"Accept": accept}})
		expectStatus(t, w, http.StatusOK)
		doc := decodeBody(t, w)
		for _, v := range []string{"1.0.0", "1.1.0"} {
			sigs := signaturesOf(t, doc, v)
			if len(sigs) != 1 {
				t.Fatalf("%s %s: signatures %v", accept, v, sigs)
			}
			integrity := str(distOf(obj(obj(doc["versions"])[v]))["integrity"])
			if err := verify(t, keys, obj(sigs[0]), "@acme/signed", v, integrity); err != nil {
				t.Fatalf("%s %s: %v", accept, v, err)
			}
			// A tampered integrity (or another version's) fails.
			other := "sha512-" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 64))
			if err := verify(t, keys, obj(sigs[0]), "@acme/signed", v, other); err == nil {
				t.Fatalf("%s %s: a signature verified another integrity", accept, v)
			}
		}
	}
	// The one-version manifest carries it too.
	w := hs.get("reader", "/@acme%2fsigned/1.0.0")
	expectStatus(t, w, http.StatusOK)
	var vm map[string]any
	json.Unmarshal(w.Body.Bytes(), &vm)
	sigs, _ := distOf(vm)["signatures"].([]any)
	if len(sigs) != 1 || verify(t, keys, obj(sigs[0]), "@acme/signed", "1.0.0", str(distOf(vm)["integrity"])) != nil {
		t.Fatalf("version manifest signatures: %v", distOf(vm))
	}
	// Nothing is stored: versions published before signing are signed
	// when rendered, and a rotation re-signs them.
	if bytes.Contains(hs.storedPackument("@acme/signed"), []byte("signatures")) {
		t.Fatalf("signatures were stored: %s", hs.storedPackument("@acme/signed"))
	}
}

func TestVersionsPublishedBeforeSigningAreSigned(t *testing.T) {
	hs := newHarness(t, defaultUsers())
	hs.mustPublish("old", "1.0.0")
	if sigs := signaturesOf(t, hs.packument("reader", "old"), "1.0.0"); sigs != nil {
		t.Fatalf("signed without a key: %v", sigs)
	}
	if keys := servedKeys(t, hs, ""); len(keys) != 0 {
		t.Fatalf("keys without a key: %v", keys)
	}
	ks, _ := newSigningKeys(t)
	h := mustNew(Options{Storage: hs.store, Gate: hs.gate, Settings: Settings{Signing: ks}})
	hs.h = h
	doc := hs.packument("reader", "old")
	sigs := signaturesOf(t, doc, "1.0.0")
	if len(sigs) != 1 {
		t.Fatalf("signatures %v", sigs)
	}
	if err := verify(t, servedKeys(t, hs, ""), obj(sigs[0]), "old", "1.0.0", str(distOf(versionOf(doc, "1.0.0"))["integrity"])); err != nil {
		t.Fatal(err)
	}
}

func TestKeyIDIsSHA256OfTheServedSPKI(t *testing.T) {
	ks, _ := newSigningKeys(t)
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Signing = ks }})
	k := servedKeys(t, hs, "")[0]
	der, _ := base64.StdEncoding.DecodeString(k.Key)
	sum := sha256.Sum256(der)
	if want := "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:]); k.KeyID != want || ks.KeyID() != want {
		t.Fatalf("keyid %q (KeyID %q), want %q", k.KeyID, ks.KeyID(), want)
	}
	// The public registry's form: 43 characters of unpadded base64.
	if !regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`).MatchString(k.KeyID) {
		t.Fatalf("keyid %q", k.KeyID)
	}
	// The keys endpoint says nothing but the keys, and to anyone.
	w := hs.get("", "/-/npm/v1/keys")
	if w.Body.String() != `{"keys":[{"expires":null,"key":"`+k.Key+`","keyid":"`+k.KeyID+`","keytype":"ecdsa-sha2-nistp256","scheme":"ecdsa-sha2-nistp256"}]}` {
		t.Fatalf("keys document %s", w.Body.String())
	}
}

// publicBlock is the public half of a key file's signing key as a
// previous key's block; expires "" leaves the header out.
func publicBlock(t *testing.T, keyPEM []byte, expires string) []byte {
	t.Helper()
	k, err := ParseSigningKeys(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&k.key.PublicKey)
	b := &pem.Block{Type: "PUBLIC KEY", Bytes: spki}
	if expires != "" {
		b.Headers = map[string]string{"Expires": expires}
	}
	return pem.EncodeToMemory(b)
}

// previousKeyFile is a rotation: a new signing key, then the old key's
// public half with its expiry.
func previousKeyFile(t *testing.T, oldPEM []byte, expires string) []byte {
	t.Helper()
	newPEM, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	return append(newPEM, publicBlock(t, oldPEM, expires)...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRotationListsThePreviousKeyWithItsExpiryAndOldSignaturesVerify(t *testing.T) {
	oldKeys, oldPEM := newSigningKeys(t)
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Signing = oldKeys }})
	hs.mustPublish("rotated", "1.0.0")
	before := hs.packument("reader", "rotated")
	oldSig := obj(signaturesOf(t, before, "1.0.0")[0])
	integrity := str(distOf(versionOf(before, "1.0.0"))["integrity"])

	rotated, err := ParseSigningKeys(previousKeyFile(t, oldPEM, "2026-03-01T12:00:00+01:00"))
	if err != nil {
		t.Fatal(err)
	}
	hs.h = mustNew(Options{Storage: hs.store, Gate: hs.gate, Settings: Settings{Signing: rotated}})
	keys := servedKeys(t, hs, "")
	if len(keys) != 2 || keys[0].KeyID != rotated.KeyID() || keys[0].Expires != nil ||
		keys[1].KeyID != oldKeys.KeyID() || keys[1].Expires == nil || *keys[1].Expires != "2026-03-01T11:00:00Z" {
		t.Fatalf("keys after rotation: %+v", keys)
	}
	// A signature made before the rotation (a client's cached document)
	// still verifies with the listed old key; the document now carries the
	// new key's.
	if err := verify(t, keys, oldSig, "rotated", "1.0.0", integrity); err != nil {
		t.Fatalf("old signature: %v", err)
	}
	sigs := signaturesOf(t, hs.packument("reader", "rotated"), "1.0.0")
	if len(sigs) != 1 || obj(sigs[0])["keyid"] != rotated.KeyID() {
		t.Fatalf("signatures after rotation: %v", sigs)
	}
	if err := verify(t, keys, obj(sigs[0]), "rotated", "1.0.0", integrity); err != nil {
		t.Fatal(err)
	}
}

func TestParseSigningKeysTakesTheDocumentedFormatOnly(t *testing.T) {
	_, cur := newSigningKeys(t)
	_, other := newSigningKeys(t)
	notDER := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not der")})
	for name, tc := range map[string]struct {
		file []byte
		want string
	}{
		"empty":                   {nil, "no PEM block"},
		"public key first":        {cat(publicBlock(t, other, "2026-01-01T00:00:00Z"), cur), "must be the private key"},
		"previous without expiry": {cat(cur, publicBlock(t, other, "")), "needs an Expires"},
		"bad expiry":              {cat(cur, publicBlock(t, other, "tomorrow")), "not an RFC 3339 time"},
		"the signing key dated":   {bytes.Replace(cur, []byte("-----\n"), []byte("-----\nExpires: 2026-01-01T00:00:00Z\n\n"), 1), "signs now"},
		"not DER":                 {cat(cur, notDER), "PEM block 2: PUBLIC KEY"},
		"twice the same key":      {cat(cur, publicBlock(t, cur, "2026-01-01T00:00:00Z")), "the same key"},
		"a private previous key":  {cat(cur, bytes.Replace(other, []byte("-----\n"), []byte("-----\nExpires: 2026-01-01T00:00:00Z\n\n"), 1)), ""},
	} {
		t.Run(name, func(t *testing.T) {
			ks, err := ParseSigningKeys(tc.file)
			if tc.want == "" {
				if err != nil || len(ks.list) != 2 || ks.list[1].expires == nil {
					t.Fatalf("%v %+v", err, ks)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseSigningKeysRefusesOtherCurves(t *testing.T) {
	// A P-384 key (openssl ecparam -name secp384r1), which npm cannot
	// verify as ecdsa-sha2-nistp256.
	const p384 = `-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDCqGdRNOjfh4vR1ZPHLTk1KJwVx4ec20/8nLsLdeHMMmLjPcLtVIu+x
4dOMHzRr/nKgBwYFK4EEACKhZANiAAT1oPqa0kzHdMGAEMrRn2FeMf2XM7DZvmk1
5Vgd0xIfkfnLv7b1PsaQNBAdc7cN61jyPNWzOW6yLoKv3+xYsWvd1rMsGQN+VF+E
5YhQUD0pbmXFxwWxSmyhiC4f4qd1tAA=
-----END EC PRIVATE KEY-----
`
	_, err := ParseSigningKeys([]byte(p384))
	if err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Fatalf("error %v", err)
	}
}

// The private key never shows: not when the keys are printed or logged,
// not in an error about a broken file, not in any answer.
func TestSigningKeyNeverShows(t *testing.T) {
	ks, raw := newSigningKeys(t)
	b, _ := pem.Decode(raw)
	secrets := []string{string(raw), base64.StdEncoding.EncodeToString(b.Bytes), fmt.Sprintf("%x", b.Bytes), ks.key.D.String(), fmt.Sprintf("%x", ks.key.D.Bytes())}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "keys", ks)
	printed := fmt.Sprintf("%v %+v %#v %s", ks, ks, ks, ks) + logged.String()
	broken := bytes.Replace(raw, []byte("\n"), []byte("\n!"), 2) // corrupt the base64
	_, err1 := ParseSigningKeys(append(b.Bytes, raw...))         // DER before the PEM
	truncated := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b.Bytes[:len(b.Bytes)-3]})
	_, err2 := ParseSigningKeys(truncated)
	_, err3 := ParseSigningKeys(broken)
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			printed += err.Error()
		}
	}
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Signing = ks }})
	hs.mustPublish("secret", "1.0.0")
	for _, p := range []string{"/-/npm/v1/keys", "/secret", "/secret/1.0.0", "/-/npm/v1/keys?x=1"} {
		printed += hs.get("reader", p).Body.String() + hs.get("", p).Body.String()
	}
	for _, s := range secrets {
		if strings.Contains(printed, s) {
			t.Fatalf("the private key shows in: %s", printed)
		}
	}
	if !strings.Contains(printed, ks.KeyID()) {
		t.Fatalf("the keyid should show: %s", printed)
	}
}

// An upstream's versions keep the upstream's signatures, untouched and not
// re-signed, and the upstream's keys are served after ours.
func TestUpstreamSignaturesAreKeptAndItsKeysServedBesideOurs(t *testing.T) {
	upSig := []any{map[string]any{"keyid": "SHA256:upstreamkey", "sig": "MEUCIQupstream"}}
	upKey := `{"expires":null,"keyid":"SHA256:upstreamkey","keytype":"ecdsa-sha2-nistp256","scheme":"ecdsa-sha2-nistp256","key":"MFkwupstream"}`
	integrity := "sha512-" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 64))
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/-/npm/v1/keys":
			io.WriteString(w, `{"keys":[`+upKey+`]}`)
		case "/proxied":
			doc := map[string]any{"name": "proxied", "dist-tags": map[string]any{"latest": "1.0.0"},
				"time": map[string]any{"1.0.0": "2025-01-01T00:00:00.000Z"},
				"versions": map[string]any{"1.0.0": map[string]any{"name": "proxied", "version": "1.0.0",
					"dist": map[string]any{"integrity": integrity, "tarball": "https://up/proxied/-/proxied-1.0.0.tgz", "signatures": upSig}}}}
			json.NewEncoder(w).Encode(doc)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"not found"}`)
		}
	}))
	t.Cleanup(up.Close)
	ks, _ := newSigningKeys(t)
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) {
		o.Signing, o.Upstream, o.UpstreamMaxAge = ks, Upstream{URL: up.URL}, time.Minute
	}})
	hs.mustPublish("@acme/local", "1.0.0")
	for _, accept := range []string{"application/json", mediaTypeAbbreviated} {
		w := hs.do(call{method: http.MethodGet, path: "/proxied", user: "reader", header: map[string]string{"Accept": accept}})
		expectStatus(t, w, http.StatusOK)
		got, _ := json.Marshal(signaturesOf(t, decodeBody(t, w), "1.0.0"))
		want, _ := json.Marshal(upSig)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: upstream signatures %s, want %s", accept, got, want)
		}
	}
	keys := servedKeys(t, hs, "")
	if len(keys) != 2 || keys[0].KeyID != ks.KeyID() || keys[1].KeyID != "SHA256:upstreamkey" || keys[1].Key != "MFkwupstream" {
		t.Fatalf("keys %+v", keys)
	}
	local := hs.packument("reader", "@acme/local")
	if sigs := signaturesOf(t, local, "1.0.0"); len(sigs) != 1 || obj(sigs[0])["keyid"] != ks.KeyID() {
		t.Fatalf("local signatures %v", sigs)
	}
}

// BenchmarkPackumentRenderSigned is BenchmarkPackumentRender with every
// version signed (150 versions, one signature each shared by the two
// renders): what signing adds once per change of a package.
func BenchmarkPackumentRenderSigned(b *testing.B) {
	p := packument150(b)
	ks, _ := newSigningKeys(b)
	b.ReportAllocs()
	for b.Loop() {
		c := newCachedDoc(p, "v1")
		c.signing = ks
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

// A publish signs the new version only: ECDSA signatures are randomised,
// so an unchanged signature of the older version proves it was not made
// again.
func TestPublishSignsOnlyTheNewVersion(t *testing.T) {
	ks, _ := newSigningKeys(t)
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Signing = ks }})
	hs.mustPublish("grows", "1.0.0")
	before := obj(signaturesOf(t, hs.packument("reader", "grows"), "1.0.0")[0])["sig"]
	hs.mustPublish("grows", "1.1.0")
	doc := hs.packument("reader", "grows")
	if after := obj(signaturesOf(t, doc, "1.0.0")[0])["sig"]; after != before {
		t.Fatalf("1.0.0 was signed again: %v, then %v", before, after)
	}
	if len(signaturesOf(t, doc, "1.1.0")) != 1 {
		t.Fatalf("1.1.0 unsigned")
	}
}

// The signatures of a document npm sends back (deprecate, owner, unpublish
// of a version: GET ?write=true, then PUT) are not stored.
func TestSignaturesSentBackAreNotStored(t *testing.T) {
	ks, _ := newSigningKeys(t)
	hs := newHarnessWith(t, harnessConfig{users: defaultUsers(), options: func(o *Options) { o.Signing = ks }})
	hs.mustPublish("sentback", "1.0.0")
	hs.mustPublish("sentback", "1.1.0")
	doc := hs.writeDoc("sentback")
	if signaturesOf(t, doc, "1.0.0") == nil {
		t.Fatalf("the write document is unsigned")
	}
	obj(obj(doc["versions"])["1.0.0"])["deprecated"] = "old"
	expectStatus(t, hs.putDoc("admin", "sentback", doc), http.StatusOK)
	doc = hs.writeDoc("sentback")
	delete(obj(doc["versions"]), "1.0.0")
	if w := hs.do(call{method: http.MethodPut, path: "/sentback/-rev/" + str(doc["_rev"]), body: jsonString(t, doc), user: "admin"}); w.Code >= 300 {
		t.Fatalf("unpublish of 1.0.0: %d %s", w.Code, w.Body.String())
	}
	if stored := hs.storedPackument("sentback"); bytes.Contains(stored, []byte("signatures")) || bytes.Contains(stored, []byte(`"1.0.0":{`)) {
		t.Fatalf("stored: %s", stored)
	}
}
