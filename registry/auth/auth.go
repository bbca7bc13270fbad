package auth

import (
	"context"
	"errors"
	"net/http"
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
	// Anonymous is true when the request carried no credentials.
	Anonymous bool
	// Scopes are the grants of this identity. The default Authorizer checks
	// them; a custom Authorizer may ignore them.
	Scopes Scopes
	// TokenID is a short, non-secret fingerprint of the credential used.
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
}

// MayMountFrom reports whether a blob in repository name may serve as the
// source of a mount without `from`: the subject may pull that repository.
// For issued JWTs that is the subject's pull grants recorded at issue time,
// since the JWT's access covers only the repositories the client asked for.
func (id *Identity) MayMountFrom(name string) bool {
	return id.issued && id.mountable.Allows(Access{ProtocolOCI, TypeRepository, name, ActionPull})
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
