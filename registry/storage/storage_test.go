package storage_test

import (
	"errors"
	"testing"

	"github.com/unireg/unireg/registry/storage"
)

func TestValidateKeyAcceptsPlainKeys(t *testing.T) {
	for _, key := range []string{
		"a",
		"a/b/c",
		"repositories/library/alpine/_manifests",
		"blobs/sha256:0123abcd/data",
		"v1.0.0-rc.1_build",
		"a..b", // a valid OCI tag: only a leading dot is dangerous
		"with space/é",
	} {
		if err := storage.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
}

func TestValidateKeyRejectsEscapingOrAliasingKeys(t *testing.T) {
	for _, key := range []string{
		"",
		".",
		"..",
		"../x",
		"a/..",
		"a/../b",
		"a/./b",
		"/abs",
		"/",
		"a/",
		"a//b",
		".hidden",
		"a/.tmp-123",
		"a\x00b",
		"a\\b",
		"..\\x",
	} {
		if err := storage.ValidateKey(key); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct {
		name     string
		segments []string
		want     string // "" means ErrInvalidKey
	}{
		{"OneSegment", []string{"a"}, "a"},
		{"SeveralSegments", []string{"repositories", "library", "_layers"}, "repositories/library/_layers"},
		{"SegmentWithSlashes", []string{"repositories", "library/alpine", "_manifests"}, "repositories/library/alpine/_manifests"},
		{"EmptySegment", []string{"a", "", "b"}, ""},
		{"DotDotSegment", []string{"repositories", "..", "secrets"}, ""},
		{"DotDotInsideSegment", []string{"repositories", "a/../../b"}, ""},
		{"LeadingSlash", []string{"a", "/etc"}, ""},
		{"TrailingSlash", []string{"a/", "b"}, ""},
		{"HiddenSegment", []string{"a", ".locks"}, ""},
		{"Backslash", []string{"a", "..\\b"}, ""},
		{"Nul", []string{"a", "b\x00"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storage.Join(tc.segments...)
			if tc.want == "" {
				if !errors.Is(err, storage.ErrInvalidKey) || got != "" {
					t.Fatalf("Join(%q) = %q, %v; want ErrInvalidKey", tc.segments, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Join(%q) = %q, %v; want %q", tc.segments, got, err, tc.want)
			}
			if err := storage.ValidateKey(got); err != nil {
				t.Fatalf("ValidateKey(Join(%q)) = %v, want the joined key valid", tc.segments, err)
			}
		})
	}
}

func TestJoinWithoutSegmentsIsInvalid(t *testing.T) {
	got, err := storage.Join()
	if !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("Join() = %q, %v; want ErrInvalidKey", got, err)
	}
}
