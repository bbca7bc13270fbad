package protocol

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/requestlog"
)

// Guard is one protocol's side of the auth gate: the protocol and resource
// type its accesses name, and how it writes a refusal.
type Guard struct {
	// Gate identifies requests and decides accesses; nil allows everything.
	Gate auth.Gate
	// Protocol and Type name the protocol's resources in auth.Access
	// (auth.ProtocolOCI and auth.TypeRepository, for instance).
	Protocol, Type string
	// Refuse turns a Denial into the protocol's error for the client.
	Refuse func(c *Call, d Denial) error
}

// Denial says why a caller may not go on; the protocol's Refuse writes it.
type Denial struct {
	// BadCredentials: the request carried credentials that are wrong,
	// expired or revoked; Call.Caller is nil.
	BadCredentials bool
	// Name and Actions are what was asked for; Action is the first of
	// Actions the caller may not do.
	Name    string
	Actions []string
	Action  string
}

// Call is one request to a protocol handler and its caller, identified at
// most once, when something first asks.
type Call struct {
	W http.ResponseWriter
	R *http.Request
	// Caller is who the request acts as; nil until Identify.
	Caller *auth.Identity
	guard  *Guard
}

// Call starts a call of w and r checked by g.
func (g *Guard) Call(w http.ResponseWriter, r *http.Request) Call {
	return Call{W: w, R: r, guard: g}
}

// Gated reports whether a gate decides the calls: without one every call
// is anonymous and allowed everything.
func (c *Call) Gated() bool { return c.guard.Gate != nil }

// Identify authenticates the request once. Wrong credentials are refused
// through the guard's Refuse; any other failure (storage down) is returned
// wrapped, for Classify.
func (c *Call) Identify() error {
	if c.Caller != nil {
		return nil
	}
	if c.guard.Gate == nil {
		c.Caller = &auth.Identity{Anonymous: true}
		return nil
	}
	id, err := c.guard.Gate.Identify(c.R)
	if errors.Is(err, auth.ErrInvalidCredentials) {
		return c.guard.Refuse(c, Denial{BadCredentials: true})
	}
	if err != nil {
		return fmt.Errorf("identify: %w", err)
	}
	c.Caller = id
	return nil
}

// Allowed reports whether the identified caller may do action on name.
func (c *Call) Allowed(name, action string) bool {
	if c.guard.Gate == nil {
		return true
	}
	return c.guard.Gate.Allowed(c.R.Context(), c.Caller, c.access(name, action))
}

// Require identifies the caller and checks that they may do every action on
// name; the first one they may not is refused through the guard's Refuse.
func (c *Call) Require(name string, actions ...string) error {
	if err := c.Identify(); err != nil {
		return err
	}
	for _, a := range actions {
		if !c.Allowed(name, a) {
			return c.guard.Refuse(c, Denial{Name: name, Actions: actions, Action: a})
		}
	}
	return nil
}

// MaySeeSome reports whether the identified caller could be allowed action
// on some resource of the protocol, so that a listing is worth walking.
func (c *Call) MaySeeSome(action string) bool {
	g, ok := c.guard.Gate.(auth.ListingGate)
	return !ok || g.MayAccessSome(c.R.Context(), c.Caller, c.guard.Protocol, action)
}

// Subject names the caller in messages and as the key of its upload slots.
func (c *Call) Subject() string { return Subject(c.Caller) }

func (c *Call) access(name, action string) auth.Access {
	return auth.Access{Protocol: c.guard.Protocol, Type: c.guard.Type, Name: name, Action: action}
}

// Subject names an identity in messages: its subject, or "anonymous".
func Subject(id *auth.Identity) string {
	if id == nil || id.Subject == "" {
		return "anonymous"
	}
	return id.Subject
}

// ReportRoute names the request's route in the request log and the metrics:
// the guard's protocol and the kind of call its parser found
// ("oci_manifest"). The protocol reports it once it has parsed the path,
// so that nothing parses it again.
func (g *Guard) ReportRoute(r *http.Request, kind string) {
	requestlog.SetRoute(r, g.Protocol+"_"+kind)
}
