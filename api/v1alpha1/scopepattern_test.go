package v1alpha1_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/unireg/unireg/registry/auth"
)

// scopeFields are the CRD fields that hold scopes in the server's grammar.
var scopeFields = map[string]bool{"anonymousScopes": true, "scopes": true}

// crdScopePatterns are the item patterns of every scope list in the
// generated CRDs, keyed by where they stand.
func crdScopePatterns(t testing.TB) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs under config/crd/bases (%v): run make manifests", err)
	}
	out := map[string]string{}
	var walk func(where string, node map[string]any)
	walk = func(where string, node map[string]any) {
		props, _ := node["properties"].(map[string]any)
		for name, v := range props {
			child, _ := v.(map[string]any)
			if child == nil {
				continue
			}
			if items, _ := child["items"].(map[string]any); scopeFields[name] && items != nil {
				if p, ok := items["pattern"].(string); ok {
					out[where+"."+name] = p
				}
			}
			walk(where+"."+name, child)
		}
		if items, _ := node["items"].(map[string]any); items != nil {
			walk(where+"[]", items)
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd struct {
			Spec struct {
				Versions []struct {
					Name   string `json:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, v := range crd.Spec.Versions {
			walk(filepath.Base(f)+":"+v.Name, v.Schema.OpenAPIV3Schema)
		}
	}
	return out
}

// scopePattern is the one scope pattern of the CRDs, compiled as the API
// server compiles OpenAPI patterns (Go's regexp).
func scopePattern(t testing.TB) *regexp.Regexp {
	t.Helper()
	patterns := crdScopePatterns(t)
	// Registry anonymousScopes and tokenPolicy.scopes, RegistryToken and
	// RegistryScope scopes.
	if len(patterns) < 4 {
		t.Fatalf("found the scope pattern in %d places, want at least 4: %v", len(patterns), patterns)
	}
	var first, firstAt string
	for at, p := range patterns {
		if first == "" {
			first, firstAt = p, at
		}
		if p != first {
			t.Fatalf("the scope pattern differs between %s (%q) and %s (%q): the marker is copied in api/v1alpha1, keep the copies equal", firstAt, first, at, p)
		}
	}
	return regexp.MustCompile(first)
}

// scopeCorpus is every combination of the grammar's segments with
// awkward names, plus strings that are not four segments.
func scopeCorpus() []string {
	protocols := []string{"oci", "npm", "*", "pypi", "", "OCI"}
	types := []string{"repository", "package", "*", "blob", ""}
	names := []string{"a", "team/*", "@acme/*", "*", "**", "@a/b", "a.b-c_d", "a b", "a\tb", "a\nb", "a\rb",
		"a\x00b", "a\fb", "a\vb", "a\u00a0b", "a\u2028b", "é", "", "{{.Namespace}}/*", "@{{.Namespace}}/*"}
	actions := []string{"pull", "push", "delete", "read", "write", "*", "admin", "", "Pull"}
	out := []string{"*", "**", "", ":", ":::", "oci:repository:a", "oci:repository:a:pull:x", "oci:repository:a:b:pull", " *", "* "}
	for _, p := range protocols {
		for _, ty := range types {
			for _, n := range names {
				for _, a := range actions {
					out = append(out, p+":"+ty+":"+n+":"+a)
				}
			}
		}
	}
	return out
}

// The CRDs and the server speak one scope grammar: every scope the API
// server admits into a Registry, RegistryToken or RegistryScope is one the
// server's parser accepts (else the projection would carry a scope the pods
// refuse), and they agree on every scope without control characters or
// whitespace. Where they differ the CRD is the stricter side (it refuses
// form feed, which the parser lets through in a name).
func TestCRDScopePatternAgreesWithParser(t *testing.T) {
	re := scopePattern(t)
	accepted := 0
	for _, s := range scopeCorpus() {
		crd := re.MatchString(s)
		_, err := auth.ParseScope(s)
		parser := err == nil
		if crd {
			accepted++
		}
		if crd && !parser {
			t.Errorf("the CRD admits %q, which the server refuses: %v", s, err)
		}
		if parser && !crd && !strings.ContainsAny(s, "\f") {
			t.Errorf("the server accepts %q, which the CRD refuses", s)
		}
	}
	if accepted < 100 {
		t.Fatalf("the CRD pattern admitted only %d scopes of the corpus: the corpus or the pattern is broken", accepted)
	}
}

// FuzzCRDScopePattern: the same agreement on any string (go test runs the
// corpus; go test -fuzz explores).
func FuzzCRDScopePattern(f *testing.F) {
	for _, s := range scopeCorpus() {
		f.Add(s)
	}
	re := scopePattern(f)
	f.Fuzz(func(t *testing.T, s string) {
		crd := re.MatchString(s)
		_, err := auth.ParseScope(s)
		if crd && err != nil {
			t.Fatalf("the CRD admits %q, which the server refuses: %v", s, err)
		}
		if err == nil && !crd && !strings.ContainsAny(s, "\f") {
			t.Fatalf("the server accepts %q, which the CRD refuses", s)
		}
	})
}
