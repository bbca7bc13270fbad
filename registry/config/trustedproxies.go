package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/unireg/unireg/registry"
)

// trustedProxies is the flag.Value of --trusted-proxies: a comma list of
// CIDRs or single addresses. "none" is the empty list (no peer trusted); a
// flag never set leaves nil, which registry.Config reads as its default set.
func trustedProxies(dst *[]netip.Prefix) *list[netip.Prefix] {
	l := commaList(dst, parseProxy, netip.Prefix.String)
	l.none = "none"
	return l
}

// parseProxy reads a CIDR, or a single address as its own /32 or /128.
func parseProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		return pr.Masked(), nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an address", s)
	}
	return netip.PrefixFrom(addr, addr.BitLen()), nil
}

// trustedProxiesUsage is the --trusted-proxies help, with the library's
// default set spelled out.
func trustedProxiesUsage() string {
	var def []string
	for _, pr := range registry.DefaultTrustedProxies() {
		def = append(def, pr.String())
	}
	return "`CIDRs` (or addresses; comma-separated, or the flag repeated) of the proxies whose X-Forwarded-For, X-Real-IP, X-Forwarded-Host and X-Forwarded-Proto are believed; " +
		`from other peers they are ignored; "none" trusts no peer (default ` + strings.Join(def, ",") + ")"
}
