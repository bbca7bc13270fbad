package auth

import "context"

// ListingGate is a Gate that can tell, before a listing walks the storage
// (the OCI catalog, npm search), that an identity could be shown nothing in
// it. *Service implements it; with another Gate every listing walks.
type ListingGate interface {
	MayAccessSome(ctx context.Context, id *Identity, protocol, action string) bool
}

// MayAccessSome reports whether id could be allowed action on at least one
// resource of protocol (some repository, some package). It follows Allowed:
// anonymous scopes apply to everyone, anonymous callers get nothing else, a
// JWT of the token flow does exactly what it carries, and other identities
// what their scopes allow, unless a custom Authorizer decides, about which
// nothing can be said in advance.
func (s *Service) MayAccessSome(_ context.Context, id *Identity, protocol, action string) bool {
	if grantsSome(s.anonymous, protocol, action) {
		return true
	}
	if id == nil || id.Anonymous {
		return false
	}
	if _, scopesDecide := s.authz.(ScopeAuthorizer); !id.Issued() && !scopesDecide {
		return true
	}
	return grantsSome(id.Scopes, protocol, action)
}

// grantsSome reports whether a scope allows action on some name of
// protocol: a name pattern matches itself, so asking each scope about its
// own pattern answers for every name it could match.
func grantsSome(scopes Scopes, protocol, action string) bool {
	typ := TypeRepository
	if protocol == ProtocolNPM {
		typ = TypePackage
	}
	for _, sc := range scopes {
		if sc.Allows(Access{Protocol: protocol, Type: typ, Name: sc.Name, Action: action}) {
			return true
		}
	}
	return false
}
