package npm

import (
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"path"
	"slices"
	"strings"
	"testing"
)

// FuzzValidName: an accepted package name is ASCII that URLs carry as it is
// (what encodeURIComponent leaves alone, and the scope's @ and /), with a
// lowercase scope; it cannot leave or cross its storage directory (no "."
// or ".." segment, no slash but the scope's, no backslash, no NUL), and
// routes back to itself however the client writes the scope separator.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "lodash", "@acme/app", "@a/b/c", "..", "@../x", "@a/..", "a..b", ".a", "_a", "A",
		"a\x00", `a\b`, "@acme%2fapp", "node_modules", "@a/", "@/a", "café", "a b", strings.Repeat("a", 215), "@a./.b", "~a", "JSONStream", "@acme/JSONStream", "a(b)*", "@Acme/x", "@acme/_x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		if len(name) > maxNameLength {
			t.Fatalf("%q accepted: too long", name)
		}
		if scope, _, ok := strings.Cut(name, "/"); ok && strings.ToLower(scope) != scope {
			t.Fatalf("%q accepted: scope not lowercase", name)
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 ||
				c == '@' && i == 0 || c == '/' && name[0] == '@') {
				t.Fatalf("%q accepted with byte %#x", name, c)
			}
		}
		segs := strings.Split(name, "/")
		if len(segs) > 2 || len(segs) == 2 && !strings.HasPrefix(name, "@") {
			t.Fatalf("%q accepted with a slash that is not the scope's", name)
		}
		for _, s := range segs {
			if s == "" || s == "." || s == ".." {
				t.Fatalf("%q accepted with segment %q", name, s)
			}
		}
		if key := packageKey(name); path.Clean(key) != key || !strings.HasPrefix(key, "npm/packages/") {
			t.Fatalf("%q has storage key %q", name, key)
		}
		if file := tarballFileName(name, "1.0.0"); strings.Contains(file, "/") {
			t.Fatalf("%q has tarball file %q", name, file)
		}
		for _, p := range []string{"/" + escapeName(name), "/" + name} {
			if r := parsePath(p); r.kind != RoutePackument || r.pkg != name || r.nameErr != nil {
				t.Fatalf("%q: path %q routes to %+v", name, p, r)
			}
		}
	})
}

// FuzzCheckPublish: a publish document is accepted only for a valid semver
// version whose document names the package and version, with an attachment
// named and sized for it, and a dist.integrity whose first sha512 entry (the
// one the registry finds the tarball by) is the tarball's, and which holds
// that digest as the client computes it (npm compares the base64 text); the
// same document with any other tarball is refused. In the seeds' documents
// $INTEGRITY and $SHASUM stand for the tarball's real digests, with the last
// characters of the integrity replaced by tail.
func FuzzCheckPublish(f *testing.F) {
	doc := func(name, version string) string {
		return `{"name":"` + name + `","versions":{"` + version + `":{"name":"` + name + `","version":"` + version +
			`","dist":{"integrity":"$INTEGRITY","shasum":"$SHASUM"}}}}`
	}
	tgz := []byte("\x1f\x8b\x08\x00 a tarball")
	for _, s := range []struct {
		name, doc, att string
		length         int64
		tail           string
	}{
		{"pkg", doc("pkg", "1.0.0"), "pkg-1.0.0.tgz", int64(len(tgz)), ""},
		{"@acme/app", doc("@acme/app", "2.0.0-beta.1+build.5"), "@acme/app-2.0.0-beta.1+build.5.tgz", -1, ""},
		{"@acme/app", doc("@acme/app", "1.0.0"), "app-1.0.0.tgz", -1, ""},
		{"pkg", doc("pkg", "1.0.0"), "pkg-1.0.0.tgz", -1, "A=="},
		{"pkg", doc("pkg", "01.0.0"), "pkg-01.0.0.tgz", -1, ""},
		{"pkg", doc("pkg", "1.0.0-01"), "pkg-1.0.0-01.tgz", -1, ""},
		{"pkg", doc("pkg", "1.0.0/../x"), "pkg-1.0.0/../x.tgz", -1, ""},
		{"pkg", doc("other", "1.0.0"), "pkg-1.0.0.tgz", -1, ""},
		{"pkg", strings.Replace(doc("pkg", "1.0.0"), "$INTEGRITY", "sha1-x sha512-!! $INTEGRITY", 1), "pkg-1.0.0.tgz", 3, ""},
		{"pkg", `{"name":"pkg","versions":{"1.0.0":{"name":"pkg","version":"1.0.0"}}}`, "pkg-1.0.0.tgz", -1, ""},
	} {
		f.Add(s.name, s.doc, s.att, s.length, tgz, s.tail)
	}
	// The integrity with the padding bits of its last character set: base64
	// decoders that are not strict read the same digest, npm does not.
	sum := sha512.Sum512(tgz)
	canonical := base64.StdEncoding.EncodeToString(sum[:])
	last := strings.IndexByte(b64Alphabet, canonical[len(canonical)-3])
	f.Add("pkg", doc("pkg", "1.0.0"), "pkg-1.0.0.tgz", int64(-1), tgz, b64Alphabet[last+1:last+2]+"==")
	f.Fuzz(func(t *testing.T, name, doc, attName string, length int64, tarball []byte, tail string) {
		if ValidName(name) != nil {
			return // the router refuses the request before reading the body
		}
		st := stagedOf(tarball)
		want := "sha512-" + base64.StdEncoding.EncodeToString(st.sha512)
		integrity := want
		if len(tail) <= 4 {
			integrity = want[:len(want)-len(tail)] + tail
		}
		doc = strings.NewReplacer("$INTEGRITY", integrity, "$SHASUM", hex.EncodeToString(st.sha1)).Replace(doc)
		incoming, err := decodePackument([]byte(doc))
		if err != nil {
			return
		}
		att := attachment{Name: attName, Length: length}
		version, vm, err := checkPublish(name, incoming, att, st)
		if err != nil {
			return
		}
		if !isSemver(version) || len(version) > 256 || str(vm["name"]) != name || str(vm["version"]) != version || incoming.name() != name {
			t.Fatalf("%s accepted for %q as version %q", doc, name, version)
		}
		if attName != name+"-"+version+".tgz" && attName != tarballFileName(name, version) {
			t.Fatalf("%s accepted with attachment %q", doc, attName)
		}
		if length >= 0 && length != int64(len(tarball)) {
			t.Fatalf("%s accepted with length %d for %d bytes", doc, length, len(tarball))
		}
		dist := distOf(vm)
		entries := strings.Fields(str(dist["integrity"]))
		if first := firstSHA512(entries); first == "" || !slices.Contains(entries, want) || decodeSRI(first) != decodeSRI(want) {
			t.Fatalf("%s accepted: the tarball's integrity is %q", doc, want)
		}
		if s := str(dist["shasum"]); s != "" && s != hex.EncodeToString(st.sha1) {
			t.Fatalf("%s accepted with shasum %q", doc, s)
		}
		att.Length = -1
		if _, _, err := checkPublish(name, incoming, att, stagedOf(append(tarball[:len(tarball):len(tarball)], 0))); err == nil {
			t.Fatalf("%s accepted for another tarball", doc)
		}
	})
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func stagedOf(tarball []byte) *staged {
	s512, s1 := sha512.Sum512(tarball), sha1.Sum(tarball)
	return &staged{size: int64(len(tarball)), sha512: s512[:], sha1: s1[:]}
}

// firstSHA512 returns the first sha512 entry of an SRI string that decodes
// to a digest: the registry locates the tarball by it.
func firstSHA512(entries []string) string {
	for _, e := range entries {
		if decodeSRI(e) != "" {
			return e
		}
	}
	return ""
}

// decodeSRI returns the digest of a sha512 SRI entry, "" if it is none.
func decodeSRI(entry string) string {
	b64, ok := strings.CutPrefix(entry, "sha512-")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if !ok || err != nil || len(raw) != sha512.Size {
		return ""
	}
	return string(raw)
}

// isSemver checks SemVer 2.0.0 by hand, independently of the registry's
// regular expression.
func isSemver(v string) bool {
	rest, build, hasBuild := strings.Cut(v, "+")
	core, pre, hasPre := strings.Cut(rest, "-")
	if hasBuild && !semverIdentifiers(build, false) || hasPre && !semverIdentifiers(pre, true) {
		return false
	}
	nums := strings.Split(core, ".")
	if len(nums) != 3 {
		return false
	}
	for _, n := range nums {
		if !allDigits(n) || len(n) > 1 && n[0] == '0' {
			return false
		}
	}
	return true
}

func semverIdentifiers(s string, pre bool) bool {
	for _, id := range strings.Split(s, ".") {
		if id == "" || pre && allDigits(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
				return false
			}
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
