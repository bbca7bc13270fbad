package oci

import "testing"

// FuzzParseContentRange: an accepted range is well-formed and prints back.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "0-1023", "bytes 10-20", "5-4", "-1-2", "1-", "a-b", "0-9223372036854775807", "10-20/*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := parseContentRange(s)
		if err != nil {
			return
		}
		if start < 0 || end < start {
			t.Fatalf("%q accepted as %d-%d", s, start, end)
		}
	})
}

// FuzzParseDigest: an accepted digest is valid and canonical.
func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{"sha256:" + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256:abc", "sha512:", "md5:x", "sha256:E3B0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		if d.Validate() != nil || d.String() != s {
			t.Fatalf("%q accepted as %q", s, d)
		}
	})
}
