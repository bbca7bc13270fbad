package nodemirror

import (
	"fmt"
	"path"
	"strings"
)

// Render returns h's hosts.toml, in containerd's format (its docs/hosts.md):
//
//   - an upstream: server is the upstream, the fallback after the mirror,
//     and [host."<Mirror>"] is tried first with pull and resolve (a private
//     mirror is trusted to resolve tags); containerd sends ?ns=<Name> to
//     it, which unireg serves as the <Name>/... namespace;
//   - the Registry's own host (no Server): server is the Registry itself,
//     and no [host] table is needed.
//
// With a CA, ca names the file Apply writes beside hosts.toml, by its path
// on the node. Render does not validate: Apply checks the Config first.
func Render(cfg Config, h Host) []byte {
	var b strings.Builder
	b.WriteString(header(cfg.Owner) + "\n")
	ca := ""
	if len(h.CA) > 0 {
		ca = path.Join(cfg.HostsDir, h.Name, CAFile)
	}
	if h.Server == "" {
		fmt.Fprintf(&b, "server = %s\n", tomlString(h.Mirror))
		if ca != "" {
			fmt.Fprintf(&b, "ca = %s\n", tomlString(ca))
		}
		return []byte(b.String())
	}
	fmt.Fprintf(&b, "server = %s\n\n", tomlString(h.Server))
	fmt.Fprintf(&b, "[host.%s]\n", tomlString(h.Mirror))
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	if ca != "" {
		fmt.Fprintf(&b, "  ca = %s\n", tomlString(ca))
	}
	return []byte(b.String())
}

// tomlString quotes s as a TOML basic string. Validated input never needs
// an escape; this keeps an unvalidated one from breaking out of the quotes.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
