package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/unireg/unireg/registry"
)

// proxyList is the flag.Value of --trusted-proxies: comma-separated CIDRs or
// single addresses. "none" is the empty list (no peer trusted); a flag never
// set leaves nil, which registry.Config reads as its default set.
type proxyList struct{ dst *[]netip.Prefix }

func (p proxyList) String() string {
	if p.dst == nil || *p.dst == nil {
		return ""
	}
	if len(*p.dst) == 0 {
		return "none"
	}
	parts := make([]string, len(*p.dst))
	for i, pr := range *p.dst {
		parts[i] = pr.String()
	}
	return strings.Join(parts, ",")
}

func (p proxyList) Set(s string) error {
	if strings.TrimSpace(s) == "none" {
		*p.dst = []netip.Prefix{}
		return nil
	}
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		pr, err := parseProxy(part)
		if err != nil {
			return err
		}
		out = append(out, pr)
	}
	if len(out) == 0 {
		return errors.New(`empty: list CIDRs, or "none" to trust no proxy`)
	}
	*p.dst = out
	return nil
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
	return "comma-separated `CIDRs` (or addresses) of the proxies whose X-Forwarded-For, X-Real-IP, X-Forwarded-Host and X-Forwarded-Proto are believed; " +
		`from other peers they are ignored; "none" trusts no peer (default ` + strings.Join(def, ",") + ")"
}
