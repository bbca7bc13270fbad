package auth

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseScopeAcceptsValidScopes(t *testing.T) {
	tests := []struct {
		in   string
		want Scope
	}{
		{"oci:repository:foo:pull", Scope{"oci", "repository", "foo", "pull"}},
		{"oci:repository:team/app:push", Scope{"oci", "repository", "team/app", "push"}},
		{"oci:repository:team/*:delete", Scope{"oci", "repository", "team/*", "delete"}},
		{"oci:*:foo:pull", Scope{"oci", "*", "foo", "pull"}},
		{"oci:repository:*:*", Scope{"oci", "repository", "*", "*"}},
		{"npm:package:lodash:read", Scope{"npm", "package", "lodash", "read"}},
		{"npm:package:@acme/*:write", Scope{"npm", "package", "@acme/*", "write"}},
		{"npm:package:@acme/pkg:delete", Scope{"npm", "package", "@acme/pkg", "delete"}},
		{"*:*:*:pull", Scope{"*", "*", "*", "pull"}},
		{"*:*:foo:read", Scope{"*", "*", "foo", "read"}},
		{"*:package:foo:write", Scope{"*", "package", "foo", "write"}},
		{"*:*:*:*", Scope{"*", "*", "*", "*"}},
		{"*", Scope{"*", "*", "*", "*"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseScope(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if tt.in != "*" && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestParseScopeRejectsInvalidScopesSayingWhy(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// every fragment must appear in the error message
		want []string
	}{
		{"empty string", "", []string{"4 parts", "got 1 part"}},
		{"three parts", "oci:repository:foo", []string{"4 parts", "got 3 part"}},
		{"five parts", "oci:repository:foo:bar:pull", []string{"4 parts", "got 5 part"}},
		{"star in a part list", "*:*", []string{"got 2 part"}},
		{"unknown protocol", "pypi:package:foo:read", []string{`unknown protocol "pypi"`}},
		{"empty protocol", ":repository:foo:pull", []string{`unknown protocol ""`}},
		{"protocol is case sensitive", "OCI:repository:foo:pull", []string{`unknown protocol "OCI"`}},
		{"package type on oci", "oci:package:foo:pull", []string{`type "package" is not valid for oci`, "want repository"}},
		{"repository type on npm", "npm:repository:foo:read", []string{`type "repository" is not valid for npm`, "want package"}},
		{"unknown type with any protocol", "*:widget:foo:pull", []string{`unknown type "widget"`}},
		{"empty name", "oci:repository::pull", []string{"empty name"}},
		{"empty npm name", "npm:package::read", []string{"empty name"}},
		{"space in name", "oci:repository:foo bar:pull", []string{"whitespace"}},
		{"tab in name", "oci:repository:foo\tbar:pull", []string{"whitespace"}},
		{"NUL in name", "oci:repository:foo\x00:pull", []string{"NUL"}},
		{"unknown action", "oci:repository:foo:fly", []string{`unknown action "fly"`}},
		{"empty action", "oci:repository:foo:", []string{`unknown action ""`}},
		{"npm action on oci", "oci:repository:foo:read", []string{`unknown action "read"`}},
		{"oci action on npm", "npm:package:foo:push", []string{`unknown action "push"`}},
		{"npm action on oci with any type", "oci:*:foo:write", []string{`unknown action "write"`}},
		{"unknown action with any protocol", "*:*:foo:fly", []string{`unknown action "fly"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScope(tt.in)
			if err == nil {
				t.Fatalf("ParseScope(%q) = %+v, want an error", tt.in, got)
			}
			if got != (Scope{}) {
				t.Errorf("ParseScope(%q) returned %+v with its error, want the zero Scope", tt.in, got)
			}
			for _, frag := range tt.want {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("ParseScope(%q) error %q does not contain %q", tt.in, err, frag)
				}
			}
			if !strings.Contains(err.Error(), "scope ") {
				t.Errorf("error %q does not name the offending scope", err)
			}
		})
	}
}

func TestParseScopesTrimsSpaceAndStopsAtFirstInvalidScope(t *testing.T) {
	got, err := ParseScopes([]string{" oci:repository:foo:pull ", "npm:package:bar:read\n"})
	if err != nil {
		t.Fatalf("ParseScopes: %v", err)
	}
	want := []string{"oci:repository:foo:pull", "npm:package:bar:read"}
	if !slices.Equal(got.Strings(), want) {
		t.Errorf("ParseScopes = %v, want %v", got.Strings(), want)
	}

	got, err = ParseScopes([]string{"oci:repository:foo:pull", "oci:repository:bar:fly"})
	if err == nil {
		t.Fatalf("ParseScopes with an invalid entry = %v, want an error", got)
	}
	if !strings.Contains(err.Error(), "bar:fly") {
		t.Errorf("error %q does not name the invalid scope", err)
	}
	if got != nil {
		t.Errorf("ParseScopes returned %v with its error, want nil", got)
	}
}

func oci(name, action string) Access {
	return Access{ProtocolOCI, TypeRepository, name, action}
}

func npm(name, action string) Access {
	return Access{ProtocolNPM, TypePackage, name, action}
}

func TestScopeAllows(t *testing.T) {
	tests := []struct {
		name   string
		scope  string
		access Access
		want   bool
	}{
		{"exact match", "oci:repository:foo:pull", oci("foo", "pull"), true},
		{"other name", "oci:repository:foo:pull", oci("bar", "pull"), false},
		{"name prefix is not a match", "oci:repository:foo:pull", oci("foobar", "pull"), false},
		{"name is not a prefix match", "oci:repository:foobar:pull", oci("foo", "pull"), false},
		{"nested name without star", "oci:repository:foo:pull", oci("foo/bar", "pull"), false},

		{"push implies pull", "oci:repository:foo:push", oci("foo", "pull"), true},
		{"pull does not imply push", "oci:repository:foo:pull", oci("foo", "push"), false},
		{"push does not imply delete", "oci:repository:foo:push", oci("foo", "delete"), false},
		{"oci delete does not imply pull", "oci:repository:foo:delete", oci("foo", "pull"), false},
		{"oci delete does not imply push", "oci:repository:foo:delete", oci("foo", "push"), false},
		{"write implies read", "npm:package:foo:write", npm("foo", "read"), true},
		{"read does not imply write", "npm:package:foo:read", npm("foo", "write"), false},
		{"write does not imply delete", "npm:package:foo:write", npm("foo", "delete"), false},
		{"npm delete does not imply read", "npm:package:foo:delete", npm("foo", "read"), false},
		{"npm delete does not imply write", "npm:package:foo:delete", npm("foo", "write"), false},
		{"any action allows delete", "oci:repository:foo:*", oci("foo", "delete"), true},
		{"any action allows push", "npm:package:foo:*", npm("foo", "write"), true},

		{"oci scope does not grant npm", "oci:repository:foo:pull", npm("foo", "read"), false},
		{"npm scope does not grant oci", "npm:package:foo:read", oci("foo", "pull"), false},
		{"npm scope with any action does not grant oci", "npm:package:*:*", oci("foo", "pull"), false},
		{"oci scope with any type does not grant npm", "oci:*:foo:delete", npm("foo", "delete"), false},
		{"npm scope with any type does not grant oci", "npm:*:foo:*", oci("foo", "pull"), false},
		{"repository type does not grant a package", "*:repository:foo:delete", npm("foo", "delete"), false},
		{"package type does not grant a repository", "*:package:foo:*", oci("foo", "delete"), false},
		{"any protocol grants oci", "*:*:foo:pull", oci("foo", "pull"), true},
		{"any protocol grants npm", "*:*:foo:read", npm("foo", "read"), true},
		{"any protocol keeps the action", "*:*:foo:pull", npm("foo", "read"), false},
		{"any type within the protocol", "oci:*:foo:pull", oci("foo", "pull"), true},

		{"trailing star matches one level", "oci:repository:team/*:push", oci("team/app", "push"), true},
		{"trailing star matches several levels", "oci:repository:team/*:push", oci("team/a/b/c", "push"), true},
		{"trailing star needs the slash", "oci:repository:team/*:push", oci("teamx/y", "push"), false},
		{"trailing star does not match the bare prefix", "oci:repository:team/*:push", oci("team", "push"), false},
		{"trailing star matches empty rest", "oci:repository:team/*:push", oci("team/", "push"), true},
		{"npm scope star", "npm:package:@acme/*:write", npm("@acme/pkg", "write"), true},
		{"npm scope star needs the slash", "npm:package:@acme/*:write", npm("@acmex/y", "write"), false},
		{"npm scope star implies read", "npm:package:@acme/*:write", npm("@acme/pkg", "read"), true},
		{"npm scope does not match unscoped", "npm:package:@acme/*:write", npm("acme", "write"), false},
		{"star in the middle", "oci:repository:team/*/app:pull", oci("team/x/app", "pull"), true},
		{"star in the middle spans slashes", "oci:repository:team/*/app:pull", oci("team/x/y/app", "pull"), true},
		{"star in the middle needs the suffix", "oci:repository:team/*/app:pull", oci("team/x/apps", "pull"), false},
		{"star in the middle needs the prefix", "oci:repository:team/*/app:pull", oci("other/x/app", "pull"), false},
		{"leading star", "oci:repository:*/base:pull", oci("a/b/base", "pull"), true},
		{"leading star needs the suffix", "oci:repository:*/base:pull", oci("a/b/basement", "pull"), false},
		{"star name matches anything", "oci:repository:*:pull", oci("a/b/c", "pull"), true},
		{"bare star allows oci delete", "*", oci("any/thing", "delete"), true},
		{"bare star allows npm write", "*", npm("@x/y", "write"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := ParseScope(tt.scope)
			if err != nil {
				t.Fatalf("ParseScope(%q): %v", tt.scope, err)
			}
			if got := sc.Allows(tt.access); got != tt.want {
				t.Errorf("%q.Allows(%s) = %v, want %v", tt.scope, tt.access, got, tt.want)
			}
		})
	}
}

func TestScopesAllowsWhenAnyScopeAllows(t *testing.T) {
	ss, err := ParseScopes([]string{"oci:repository:foo:pull", "npm:package:@acme/*:write"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		access Access
		want   bool
	}{
		{oci("foo", "pull"), true},
		{oci("foo", "push"), false},
		{npm("@acme/x", "write"), true},
		{npm("@acme/x", "read"), true},
		{npm("@acmex/y", "read"), false},
		{oci("@acme/x", "pull"), false},
	}
	for _, tt := range tests {
		t.Run(tt.access.String(), func(t *testing.T) {
			if got := ss.Allows(tt.access); got != tt.want {
				t.Errorf("Allows(%s) = %v, want %v", tt.access, got, tt.want)
			}
		})
	}
}

func TestEmptyScopesAllowNothing(t *testing.T) {
	var ss Scopes
	if ss.Allows(oci("foo", "pull")) {
		t.Error("nil Scopes allowed an access")
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "", true},
		{"*", "a/b", true},
		{"", "", true},
		{"", "a", false},
		{"a", "", false},
		{"a*", "", false},
		{"*a", "", false},
		{"**", "", true},
		{"a/*", "a/", true},
		{"a/*", "a", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "a/b/c", true},
		{"a*b*c", "abbbc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "abcd", false},
		{"a**b", "ab", true},
		{"a**b", "a/x/b", true},
		{"*/*", "a/b", true},
		{"*/*", "ab", false},
		{"*/*", "/", true},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"a*a", "aXaXa", true},
		{"a*a", "aXaXb", false},
		{"*ab", "aab", true},
		{"*ab", "abab", true},
		{"*ab", "abba", false},
		{"x*y", "x/y/z/y", true},
		{"team/*", "team/a/b", true},
		{"team/*", "teamx/y", false},
		{"foo", "foo", true},
		{"foo", "Foo", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.name, func(t *testing.T) {
			if got := globMatch(tt.pattern, tt.name); got != tt.want {
				t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
			}
		})
	}
}

func TestGlobMatchIsNotExponential(t *testing.T) {
	// A backtracking matcher without memory takes ages on this pair; the
	// linear-space matcher finishes at once.
	pattern := strings.Repeat("a*", 30) + "b"
	name := strings.Repeat("a", 5000)
	if globMatch(pattern, name) {
		t.Errorf("globMatch(%q, a×5000) = true, want false", pattern)
	}
}

func TestParseScopeRejectsActionOfAnotherProtocolWhenOnlyTypeIsGiven(t *testing.T) {
	// The type names the protocol: repository is OCI's, package is npm's.
	// oci:*:foo:read is refused; the same mistake spelled with the type
	// must be refused too rather than grant nothing silently.
	for _, in := range []string{"*:repository:foo:read", "*:repository:foo:write", "*:package:foo:pull", "*:package:foo:push"} {
		if sc, err := ParseScope(in); err == nil {
			t.Errorf("ParseScope(%q) = %+v, want an unknown action error", in, sc)
		}
	}
}

func TestDockerScopeParsesAndRendersDockersGrammar(t *testing.T) {
	tests := []struct {
		in   string
		want DockerScope
	}{
		{"repository:team/app:pull,push", DockerScope{Type: "repository", Name: "team/app", Actions: []string{"pull", "push"}}},
		{"registry:catalog:*", DockerScope{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		// The name runs to the last ':', as Distribution reads a host:port.
		{"repository:localhost:5000/app:pull", DockerScope{Type: "repository", Name: "localhost:5000/app", Actions: []string{"pull"}}},
		{"repository:app:", DockerScope{Type: "repository", Name: "app", Actions: []string{""}}},
	}
	for _, tt := range tests {
		got, err := ParseDockerScope(tt.in)
		if err != nil {
			t.Fatalf("ParseDockerScope(%q): %v", tt.in, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseDockerScope(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("String() = %q, want %q back", s, tt.in)
		}
	}
	for _, bad := range []string{"", "repository", "repository:app"} {
		if ds, err := ParseDockerScope(bad); err == nil {
			t.Errorf("ParseDockerScope(%q) = %#v, want an error", bad, ds)
		}
	}
}
