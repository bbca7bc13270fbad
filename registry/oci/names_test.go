package oci

import (
	"regexp"
	"strings"
	"testing"
)

// The distribution spec's grammar, as its regular expressions: the
// reference the hand-written matchers must agree with.
var (
	specNameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	specTagRE  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

var nameSeeds = []string{
	"", "a", "library/ubuntu", "a/b/c", "a.b", "a_b", "a__b", "a___b", "a-b", "a--b", "a.-b", "a..b",
	"-a", "a-", "a/", "/a", "a//b", "A", "a/B", "a b", "a\x00b", "..", "a/../b", "%2e", "a.b/c_d/e--f",
	strings.Repeat("a", 255), strings.Repeat("a", 256), "v1.0", "_x", ".x", "x.", "x" + strings.Repeat("-", 40) + "y",
}

func TestNameAndTagMatchTheSpecGrammar(t *testing.T) {
	for _, s := range nameSeeds {
		checkAgainstSpec(t, s)
	}
	// Every string of up to 4 characters over an alphabet with each class.
	alphabet := []byte{'a', 'Z', '0', '.', '_', '-', '/', ' '}
	var walk func(prefix []byte)
	walk = func(prefix []byte) {
		checkAgainstSpec(t, string(prefix))
		if len(prefix) == 4 {
			return
		}
		for _, c := range alphabet {
			walk(append(prefix, c))
		}
	}
	walk(nil)
}

func checkAgainstSpec(t testing.TB, s string) {
	t.Helper()
	if got, want := ValidName(s), len(s) <= maxNameLength && specNameRE.MatchString(s); got != want {
		t.Fatalf("ValidName(%q) = %v, the spec says %v", s, got, want)
	}
	if got, want := ValidTag(s), specTagRE.MatchString(s); got != want {
		t.Fatalf("ValidTag(%q) = %v, the spec says %v", s, got, want)
	}
}

// FuzzNameAndTag: go test -fuzz FuzzNameAndTag ./registry/oci/
func FuzzNameAndTag(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkAgainstSpec(t, s) })
}

func BenchmarkValidName(b *testing.B) {
	for b.Loop() {
		if !ValidName("team/backend/api-server_v2") {
			b.Fatal("rejected")
		}
	}
}
