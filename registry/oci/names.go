package oci

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

// The grammar of the distribution spec, which names_test.go checks these
// hand-written matchers against (they run on every request, where the
// regular expressions cost more than the rest of the routing):
//
//	name: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
//	tag:  [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}

// maxNameLength bounds repository names (Distribution uses 255).
const maxNameLength = 255

// ValidName reports whether name is a valid repository name.
func ValidName(name string) bool {
	if len(name) > maxNameLength {
		return false
	}
	for {
		component, rest, more := strings.Cut(name, "/")
		if !validComponent(component) {
			return false
		}
		if !more {
			return true
		}
		name = rest
	}
}

// validComponent matches [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func validComponent(c string) bool {
	i := 0
	for {
		start := i
		for i < len(c) && lowerAlnum(c[i]) {
			i++
		}
		if i == start {
			return false // empty run: at the start, or after a separator
		}
		if i == len(c) {
			return true
		}
		switch c[i] {
		case '.':
			i++
		case '_':
			i++
			if i < len(c) && c[i] == '_' {
				i++
			}
		case '-':
			for i < len(c) && c[i] == '-' {
				i++
			}
		default:
			return false
		}
	}
}

func lowerAlnum(b byte) bool { return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' }

// ValidTag reports whether tag is a valid tag.
func ValidTag(tag string) bool {
	if len(tag) == 0 || len(tag) > 128 || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		b := tag[i]
		if !(lowerAlnum(b) || 'A' <= b && b <= 'Z' || b == '_' || b == '.' || b == '-') {
			return false
		}
	}
	return true
}

// ParseDigest parses and validates a digest of a supported algorithm
// (sha256 or sha512).
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", err
	}
	if err := checkAlgorithm(d.Algorithm()); err != nil {
		return "", err
	}
	return d, nil
}

// checkAlgorithm accepts the digest algorithms the OCI image spec registers,
// sha256 and sha512. go-digest also knows sha384 (and Distribution accepts
// it), but no client of the spec produces it, and a registry that stored it
// would hold content other registries refuse to copy.
func checkAlgorithm(alg digest.Algorithm) error {
	if alg != digest.SHA256 && alg != digest.SHA512 {
		return fmt.Errorf("unsupported digest algorithm %q: this registry accepts sha256 and sha512, the algorithms of the OCI image spec", truncate(string(alg)))
	}
	return nil
}
