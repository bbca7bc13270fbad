package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ErrInvalidCredentials is returned by an Authenticator for credentials that
// are present but wrong, expired or revoked. Handlers answer it with 401.
var ErrInvalidCredentials = errors.New("invalid credentials")

// Identity is who a request acts as, and what it may do.
type Identity struct {
	// Subject is the user name; empty for anonymous requests.
	Subject string
	// Anonymous is true when the request carried no credentials, or a JWT
	// of the token flow bought without any.
	Anonymous bool
	// Scopes are the grants of this identity. The default Authorizer checks
	// them; a custom Authorizer may ignore them.
	Scopes Scopes
	// TokenID is a short, non-secret fingerprint of the credential used
	// (for the registry's own tokens, TokenID of their hash). It is what
	// TokenLiveness is asked about.
	TokenID string
	// ExpiresAt is when the credential used stops working; zero: never.
	// Credentials made from this one must not outlive it.
	ExpiresAt time.Time

	// issued marks identities carried by a JWT of our own issuer: their
	// scopes are exactly the JWT's access, whatever the Authorizer says.
	issued bool
	// mountable are the pull grants of the subject behind an issued JWT,
	// used only to find the source of a cross-repository mount without
	// `from`; they never authorise reading.
	mountable Scopes
	// asked are the repositories an issued JWT's access lists, whatever
	// actions it grants there (none, when all were refused).
	asked []string
	// tracked is set when the Authenticator that accepted the credential
	// implements TokenLiveness: what is made from it (JWTs, npm tokens)
	// names its TokenID and stops working when it does.
	tracked bool
	// boughtWith is, for an issued JWT, the TokenID of the credential it was
	// bought with; empty when that credential cannot be followed.
	boughtWith string
}

// Tracked reports whether the registry can tell, on every request, that the
// credential behind this identity stopped working: its Authenticator
// implements TokenLiveness. Credentials made from an identity (npm tokens)
// are made only from tracked ones, so that they stop with it.
func (id *Identity) Tracked() bool { return id.tracked }

// MayMountFrom reports whether a blob in repository name may serve as the
// source of a mount without `from`: the subject may pull that repository.
// For issued JWTs that is the subject's pull grants recorded at issue time,
// since the JWT's access covers only the repositories the client asked for.
func (id *Identity) MayMountFrom(name string) bool {
	return id.issued && id.mountable.Allows(Access{ProtocolOCI, TypeRepository, name, ActionPull})
}

// AskedFor reports whether the identity is an issued JWT whose access lists
// repository name, granted any action or none: a client whose JWT lacks an
// action on a repository it never asked about should be challenged to ask,
// one that asked and was refused should not.
func (id *Identity) AskedFor(name string) bool {
	return id.issued && slices.Contains(id.asked, name)
}

// Issued reports whether the identity comes from a JWT of the token flow: it
// may do exactly what the JWT's access lists, and a client lacking an action
// should fetch a new JWT rather than give up.
func (id *Identity) Issued() bool { return id.issued }

// Credentials are what a request presented.
type Credentials struct {
	// Username and Password come from HTTP Basic authentication.
	Username, Password string
	// Bearer is the token of an `Authorization: Bearer` header.
	Bearer string
	// Malformed is set when an Authorization header was sent but could not
	// be read: such a request is refused, never treated as anonymous.
	Malformed bool
}

// Empty reports whether no credentials were presented.
func (c Credentials) Empty() bool {
	return c.Password == "" && c.Bearer == "" && c.Username == "" && !c.Malformed
}

// CredentialsFrom extracts credentials from a request's Authorization header.
func CredentialsFrom(r *http.Request) Credentials {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Credentials{}
	}
	scheme, rest, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "bearer") && strings.TrimSpace(rest) != "":
		return Credentials{Bearer: strings.TrimSpace(rest)}
	case strings.EqualFold(scheme, "basic"):
		// Empty Basic credentials (":") read as none: clients without
		// credentials send them (the OCI conformance suite does), and they
		// carry no secret, so they can grant nothing beyond anonymous.
		if u, p, ok := r.BasicAuth(); ok {
			return Credentials{Username: u, Password: p}
		}
	}
	return Credentials{Malformed: true}
}

// Authenticator turns credentials into an identity. It is called only when
// credentials are present; it returns ErrInvalidCredentials (possibly
// wrapped) when they are wrong. The built-in TokenStore implements it; a
// program may back it with its own user database, OIDC or an API call.
type Authenticator interface {
	Authenticate(ctx context.Context, c Credentials) (*Identity, error)
}

// TokenLiveness is implemented by an Authenticator whose credentials can stop
// working before they expire (removed from its store, revoked): it tells
// whether the credential with a TokenID (Identity.TokenID) still works. JWTs
// of the token flow name the credential they were bought with, npm tokens
// the credential they were made with; both are refused once TokenLive says
// false. It is asked on every request carrying such a credential, so it must
// answer from memory; it answers false for ids it does not know, and an error
// only when it cannot tell now (the request then fails with 503).
//
// A JWT bought with a credential of an Authenticator that does not implement
// it names no credential: it works until it expires (the token TTL), and no
// npm token can be made from such a credential.
type TokenLiveness interface {
	TokenLive(ctx context.Context, tokenID string) (bool, error)
}

// Authorizer decides whether an identity may perform an access.
type Authorizer interface {
	Authorize(ctx context.Context, id *Identity, a Access) bool
}

// ScopeAuthorizer is the default Authorizer: it grants what the identity's
// scopes allow.
type ScopeAuthorizer struct{}

// Authorize implements Authorizer.
func (ScopeAuthorizer) Authorize(_ context.Context, id *Identity, a Access) bool {
	return id != nil && id.Scopes.Allows(a)
}
