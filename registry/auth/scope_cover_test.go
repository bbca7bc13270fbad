package auth

import "testing"

func TestScopeWithin(t *testing.T) {
	tests := []struct {
		scope, bound string
		want         bool
	}{
		// The bound's name glob matches the scope's name taken literally.
		{"oci:repository:team-a/app:push", "oci:repository:team-a/*:push", true},
		{"oci:repository:team-a/*:push", "oci:repository:team-a/*:push", true},
		{"oci:repository:team-a/x/*:pull", "oci:repository:team-a/*:pull", true}, // * crosses '/'
		{"oci:repository:team-a*:pull", "oci:repository:team-a/*:pull", false},   // team-ab would escape
		{"oci:repository:*:pull", "oci:repository:team-a/*:pull", false},
		{"oci:repository:team-b/app:pull", "oci:repository:team-a/*:pull", false},
		{"oci:repository:team-a:pull", "oci:repository:team-a/*:pull", false},
		{"oci:repository:*/team-a/*:pull", "oci:repository:*/team-a/*:pull", true},
		{"oci:repository:team-a/*:pull", "oci:repository:team-a/app:pull", false}, // a literal bound covers no glob
		// Actions as the server grants them: push implies pull, write implies read.
		{"oci:repository:team-a/app:pull", "oci:repository:team-a/*:push", true},
		{"oci:repository:team-a/app:push", "oci:repository:team-a/*:pull", false},
		{"oci:repository:team-a/app:delete", "oci:repository:team-a/*:push", false},
		{"oci:repository:team-a/app:*", "oci:repository:team-a/*:push", false},
		{"oci:repository:team-a/app:*", "oci:repository:team-a/*:*", true},
		{"npm:package:@team-a/x:read", "npm:package:@team-a/*:write", true},
		{"npm:package:@team-a/x:write", "npm:package:@team-a/*:read", false},
		// Protocol and type wildcards stand for every protocol they may mean.
		{"*:*:team-a/x:delete", "oci:repository:team-a/*:delete", false}, // npm delete too
		{"*:*:team-a/x:delete", "*:*:team-a/*:*", true},
		{"oci:*:team-a/x:pull", "oci:repository:team-a/*:pull", true},
		{"*:repository:team-a/x:pull", "oci:repository:team-a/*:pull", true},
		{"*:*:team-a/x:pull", "oci:repository:team-a/*:pull", true}, // pull exists only in oci
		{"npm:package:team-a/x:read", "oci:repository:team-a/*:*", false},
		{"*", "oci:repository:*:*", false},
		{"*", "*", true},
		{"oci:repository:anything:pull", "*", true},
	}
	for _, tt := range tests {
		t.Run(tt.scope+" in "+tt.bound, func(t *testing.T) {
			s, err := ParseScope(tt.scope)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ParseScope(tt.bound)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Within(b); got != tt.want {
				t.Errorf("Within = %v, want %v", got, tt.want)
			}
			if got := (Scopes{b}).Bound(s); got != tt.want {
				t.Errorf("Bound = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestScopeBoundTakesTheUnionOfBounds: a scope whose actions are granted
// by different bounds together stays within them.
func TestScopeBoundTakesTheUnionOfBounds(t *testing.T) {
	bounds, err := ParseScopes([]string{"oci:repository:team-a/*:push", "oci:repository:team-a/*:delete"})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := ParseScope("oci:repository:team-a/app:*")
	if !bounds.Bound(all) {
		t.Error("push and delete together cover every oci action")
	}
	bounds = bounds[:1]
	if bounds.Bound(all) {
		t.Error("push alone does not cover delete")
	}
}

// TestScopeWithinIsSound checks the claim behind Within on concrete names:
// whatever access a scope allows, a bound it is within allows too.
func TestScopeWithinIsSound(t *testing.T) {
	names := []string{"team-a", "team-a/", "team-a/app", "team-a/x/y", "team-ab", "team-b/app", "@team-a/x", "x/team-a/y", "*", "team-a/*"}
	patterns := []string{"*", "team-a/*", "team-a*", "team-a/app", "*/team-a/*", "team-*/x*", "@team-a/*", "team-a/*/y"}
	for _, sp := range patterns {
		for _, bp := range patterns {
			for _, sa := range []string{"pull", "push", "*"} {
				for _, ba := range []string{"pull", "push", "delete", "*"} {
					s := Scope{ProtocolOCI, TypeRepository, sp, sa}
					b := Scope{ProtocolOCI, TypeRepository, bp, ba}
					if !s.Within(b) {
						continue
					}
					for _, n := range names {
						for _, a := range validActions[ProtocolOCI] {
							acc := Access{ProtocolOCI, TypeRepository, n, a}
							if s.Allows(acc) && !b.Allows(acc) {
								t.Errorf("%s is within %s but allows %s, which %s does not", s, b, acc, b)
							}
						}
					}
				}
			}
		}
	}
}
