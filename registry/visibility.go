package registry

import (
	"context"

	"github.com/unireg/unireg/registry/auth"
)

// protocolGate is the auth service as the protocol handlers see it, with the
// one thing only the registry knows: whether the Authorizer is the scope one,
// so that an identity's scopes are all it may do. That lets a listing (the
// OCI catalog, npm search), whose cost grows with the registry, be skipped
// for a caller who could not be shown anything in it.
type protocolGate struct {
	*auth.Service
	// scopesDecide is set when Config.Authorizer is nil: the identity's
	// scopes and the anonymous scopes are the whole truth.
	scopesDecide bool
}

// MayAccessSome reports whether id could be allowed action on at least one
// resource of protocol (some repository, some package). It mirrors
// auth.Service.Allowed: anonymous scopes apply to everyone, anonymous
// callers get nothing else, a JWT of the token flow does exactly what it
// carries, and other identities what their scopes allow, unless a custom
// Authorizer decides, about which nothing can be said in advance.
func (g protocolGate) MayAccessSome(_ context.Context, id *auth.Identity, protocol, action string) bool {
	if grantsSome(g.Anonymous(), protocol, action) {
		return true
	}
	if id == nil || id.Anonymous {
		return false
	}
	if !id.Issued() && !g.scopesDecide {
		return true
	}
	return grantsSome(id.Scopes, protocol, action)
}

// grantsSome reports whether a scope allows action on some name of
// protocol: a name pattern matches itself, so asking each scope about its
// own pattern answers for every name it could match.
func grantsSome(scopes auth.Scopes, protocol, action string) bool {
	typ := auth.TypeRepository
	if protocol == auth.ProtocolNPM {
		typ = auth.TypePackage
	}
	for _, s := range scopes {
		if s.Allows(auth.Access{Protocol: protocol, Type: typ, Name: s.Name, Action: action}) {
			return true
		}
	}
	return false
}

// protocolGate is the gate handed to the protocol handlers.
func (r *Registry) protocolGate() protocolGate {
	return protocolGate{Service: r.auth, scopesDecide: r.cfg.Authorizer == nil}
}
