package auth

// Within reports whether bound allows every access s allows, in the
// server's own terms (Allows): bound's protocol and type include s's, its
// action grants each action s's grants (push implies pull, write implies
// read, `*` is every action of the protocol), and bound's name glob matches
// s's name taken literally, a `*` of s as the character '*'.
//
// The name test is sound because a bound's `*` matches any run of
// characters, '/' included, and a bound has no literal '*': a `*` of s can
// only be matched inside a `*` of bound, so every name s's `*` stands for is
// matched there too. It is conservative: when in doubt, a scope is not
// within.
func (s Scope) Within(bound Scope) bool {
	return Scopes{bound}.Bound(s)
}

// Bound reports whether s stays within ss: every elementary access s stands
// for (its protocol, type and action wildcards expanded, as Allows grants
// them) is granted, for every name s's pattern matches, by some scope of
// ss. The scopes of ss may share the work (push from one, delete from
// another). An operator decides with it whether a token's scope is within
// a policy's templates.
func (ss Scopes) Bound(s Scope) bool {
	accesses := elementaryAccesses(s)
	if len(accesses) == 0 {
		return false
	}
	for _, a := range accesses {
		if !ss.boundOne(a) {
			return false
		}
	}
	return true
}

// boundOne reports whether some scope of ss grants a, a's name being a
// pattern read literally.
func (ss Scopes) boundOne(a Access) bool {
	for _, b := range ss {
		if segmentMatch(b.Protocol, a.Protocol) && segmentMatch(b.Type, a.Type) &&
			actionMatch(b.Action, a.Action) && globMatch(b.Name, a.Name) {
			return true
		}
	}
	return false
}
