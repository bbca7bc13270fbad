package nodemirror

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// ConfigFile is the ConfigMap key, and the file name in the mounted
// volume, that holds the agent's Config as JSON.
const ConfigFile = "config.json"

// Config is what the operator tells every node's agent: which hosts.toml
// files one Registry wants on the node.
type Config struct {
	// Owner is "<namespace>/<registry>": the Registry the files belong to,
	// written into each file's first line.
	Owner string `json:"owner"`
	// HostsDir is containerd's config_path as the node sees it (e.g.
	// /etc/containerd/certs.d), used for the ca paths inside hosts.toml.
	HostsDir string `json:"hostsDir"`
	// Hosts are the registry host namespaces to configure.
	Hosts []Host `json:"hosts"`
}

// Host is one registry host namespace: one directory under HostsDir.
type Host struct {
	// Name is the directory: an upstream name like docker.io, or the
	// Registry's own ClusterIP:port.
	Name string `json:"name"`
	// Server is the upstream URL containerd falls back to; empty for the
	// Registry's own host, whose server is Mirror itself.
	Server string `json:"server,omitempty"`
	// Mirror is http(s)://ClusterIP:port of the Registry's Service.
	Mirror string `json:"mirror"`
	// CA is PEM, when the Registry serves TLS.
	CA []byte `json:"ca,omitempty"`
}

// CAFile is the name of the CA file written beside a hosts.toml.
const CAFile = "unireg-ca.crt"

// hostsFile is the file containerd reads in each host directory.
const hostsFile = "hosts.toml"

const (
	headerPrefix = "# Written by unireg node-mirror for "
	headerSuffix = ". Do not edit: the operator rewrites and removes this file."
)

// header is the first line (without its newline) of every hosts.toml
// written for owner: the only record of ownership on the node.
func header(owner string) string { return headerPrefix + owner + headerSuffix }

// ownerOf returns the Owner named by a hosts.toml's first line, and false
// when the line is not one of ours.
func ownerOf(firstLine string) (string, bool) {
	if !strings.HasPrefix(firstLine, headerPrefix) || !strings.HasSuffix(firstLine, headerSuffix) {
		return "", false
	}
	owner := strings.TrimSuffix(strings.TrimPrefix(firstLine, headerPrefix), headerSuffix)
	return owner, owner != ""
}

var (
	// ownerRE is a namespace (a DNS label), "/", a Registry name (a DNS
	// subdomain).
	ownerRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	// labelRE is one label of a host name.
	labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
)

// Validate checks the whole Config; Apply writes nothing when it fails.
func (c Config) Validate() error {
	if !ownerRE.MatchString(c.Owner) {
		return fmt.Errorf("owner %q is not <namespace>/<registry>", c.Owner)
	}
	if err := validateHostsDir(c.HostsDir); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, h := range c.Hosts {
		if err := h.validate(); err != nil {
			return fmt.Errorf("hosts[%d]: %w", i, err)
		}
		if seen[h.Name] {
			return fmt.Errorf("hosts[%d]: name %q given twice", i, h.Name)
		}
		seen[h.Name] = true
	}
	return nil
}

func validateHostsDir(dir string) error {
	if dir == "" || !path.IsAbs(dir) || path.Clean(dir) != dir || !printable(dir) || strings.ContainsAny(dir, `"\`) {
		return fmt.Errorf("hostsDir %q is not a clean absolute path", dir)
	}
	return nil
}

func (h Host) validate() error {
	if err := ValidateName(h.Name); err != nil {
		return err
	}
	if err := validateURL(h.Mirror, false); err != nil {
		return fmt.Errorf("%s: mirror: %w", h.Name, err)
	}
	if h.Server != "" {
		if err := validateURL(h.Server, true); err != nil {
			return fmt.Errorf("%s: server: %w", h.Name, err)
		}
	}
	if h.CA != nil {
		if err := validateCA(h.CA); err != nil {
			return fmt.Errorf("%s: ca: %w", h.Name, err)
		}
	}
	return nil
}

// ValidateName reports whether name can be a host directory: a host name,
// host:port, IP:port or [IPv6]:port, and so never a path.
func ValidateName(name string) error {
	if err := validName(name); err != nil {
		return fmt.Errorf("name %q: %w", name, err)
	}
	return nil
}

func validName(name string) error {
	if name == "" || len(name) > 253+1+5+2 {
		return errors.New("empty or too long")
	}
	if strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") {
		return errors.New("a path, not a host")
	}
	host := name
	if strings.HasPrefix(name, "[") || strings.Count(name, ":") == 1 {
		h, port, err := net.SplitHostPort(name)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Errorf("port %q is not 1-65535", port)
		}
		if strings.HasPrefix(name, "[") {
			if ip := net.ParseIP(h); ip == nil || ip.To4() != nil {
				return fmt.Errorf("%q is not an IPv6 address", h)
			}
			return nil
		}
		host = h
	}
	if net.ParseIP(host) != nil {
		if strings.Contains(host, ":") {
			return errors.New("an IPv6 address must be [address]:port")
		}
		return nil
	}
	if len(host) > 253 {
		return errors.New("host name longer than 253")
	}
	for _, l := range strings.Split(host, ".") {
		if !labelRE.MatchString(l) {
			return fmt.Errorf("%q is not a host name", host)
		}
	}
	return nil
}

// validateURL accepts http(s)://host[:port], and a path when withPath:
// containerd reads the scheme from it (plain http works for a mirror), and
// nothing in it needs quoting inside TOML.
func validateURL(raw string, withPath bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: scheme must be http or https", raw)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%q: must be scheme://host[:port] without user, query or fragment", raw)
	case !withPath && u.Path != "" && u.Path != "/":
		return fmt.Errorf("%q: must not have a path", raw)
	case !printable(raw) || strings.ContainsAny(raw, `"\ `):
		return fmt.Errorf("%q: has characters a URL must not", raw)
	}
	return nil
}

// validateCA accepts PEM CERTIFICATE blocks and nothing else.
func validateCA(ca []byte) error {
	rest := ca
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %q is not a CERTIFICATE", b.Type)
		}
		n++
	}
	if n == 0 || len(bytes.TrimSpace(rest)) > 0 {
		return errors.New("not PEM CERTIFICATE blocks only")
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
