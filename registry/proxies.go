package registry

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// DefaultTrustedProxies are the peers trusted when Config.TrustedProxies is
// nil: loopback and the private ranges (RFC 1918 and RFC 4193), where the
// ingress controllers and sidecars of today's installs connect from.
func DefaultTrustedProxies() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("fc00::/7"),
	}
}

// proxies decides which forwarded headers of a request to believe: only
// those a trusted proxy, the request's direct peer, passed on.
type proxies struct {
	trusted []netip.Prefix
	// The client address comes from echo's extractors, which implement the
	// usual rule (the right-most X-Forwarded-For address that is not a
	// trusted proxy; X-Real-IP only from a trusted peer) and are what
	// echo's own RealIP is documented to use.
	fromXFF, fromRealIP echo.IPExtractor
}

func newProxies(trusted []netip.Prefix) *proxies {
	if trusted == nil {
		trusted = DefaultTrustedProxies()
	}
	p := &proxies{}
	// echo trusts loopback, link-local and private addresses unless told
	// otherwise: only the configured set counts here.
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, pr := range trusted {
		pr = pr.Masked()
		p.trusted = append(p.trusted, pr)
		opts = append(opts, echo.TrustIPRange(&net.IPNet{
			IP: net.IP(pr.Addr().AsSlice()), Mask: net.CIDRMask(pr.Bits(), pr.Addr().BitLen()),
		}))
	}
	p.fromXFF = echo.ExtractIPFromXFFHeader(opts...)
	p.fromRealIP = echo.ExtractIPFromRealIPHeader(opts...)
	return p
}

// trustsPeer reports whether the request's direct peer is a trusted proxy.
func (p *proxies) trustsPeer(req *http.Request) bool {
	addr, ok := peerAddr(req.RemoteAddr)
	if !ok {
		return false
	}
	for _, pr := range p.trusted {
		if pr.Contains(addr) {
			return true
		}
	}
	return false
}

// clientIP is the client's address as the request log records it.
func (p *proxies) clientIP(req *http.Request) string {
	if len(req.Header.Values(echo.HeaderXForwardedFor)) > 0 {
		return p.fromXFF(req)
	}
	return p.fromRealIP(req)
}

// peerAddr parses an http.Request's RemoteAddr ("host:port", a bare host,
// or nothing for a Unix socket) into a plain address, IPv4 unmapped.
func peerAddr(remote string) (netip.Addr, bool) {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	host, _, _ = strings.Cut(host, "%") // IPv6 zone
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap(), true
}
