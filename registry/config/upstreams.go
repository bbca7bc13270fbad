package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/unireg/unireg/registry/oci"
)

// parseOCIUpstream reads one --oci-upstream value, NAME=URL. The handler
// checks the name and the URL when the registry is built.
func parseOCIUpstream(s string) (oci.Upstream, error) {
	name, url, ok := strings.Cut(s, "=")
	if !ok || name == "" || url == "" {
		return oci.Upstream{}, fmt.Errorf("%q: want NAME=URL, e.g. docker.io=https://registry-1.docker.io", s)
	}
	return oci.Upstream{Name: name, URL: url}, nil
}

func formatOCIUpstream(u oci.Upstream) string { return u.Name + "=" + u.URL }

// upstreamCredentials is one --oci-upstream-credentials value, NAME=PATH.
type upstreamCredentials struct{ name, path string }

func parseUpstreamCredentials(s string) (upstreamCredentials, error) {
	name, path, ok := strings.Cut(s, "=")
	if !ok || name == "" || path == "" {
		return upstreamCredentials{}, fmt.Errorf("%q: want NAME=PATH", s)
	}
	return upstreamCredentials{name, path}, nil
}

func formatUpstreamCredentials(c upstreamCredentials) string { return c.name + "=" + c.path }

// attachUpstreamCredentials gives each upstream named by
// --oci-upstream-credentials the credentials in its file. The file is read
// at every login, so a mounted Secret that changes applies without a
// restart.
func attachUpstreamCredentials(ups []oci.Upstream, creds []upstreamCredentials) error {
	for _, c := range creds {
		i := indexOfUpstream(ups, c.name)
		if i < 0 {
			return fmt.Errorf("--oci-upstream-credentials: no --oci-upstream is named %q", c.name)
		}
		if _, _, err := readUpstreamCredentials(c.path); err != nil {
			return fmt.Errorf("--oci-upstream-credentials %s: %w", c.name, err)
		}
		path := c.path
		ups[i].Credentials = func() (string, string, error) { return readUpstreamCredentials(path) }
	}
	return nil
}

func indexOfUpstream(ups []oci.Upstream, name string) int {
	for i, u := range ups {
		if u.Name == name {
			return i
		}
	}
	return -1
}

// readUpstreamCredentials reads a file holding user:password, or a
// directory holding the files username and password (a mounted
// kubernetes.io/basic-auth Secret).
func readUpstreamCredentials(path string) (user, password string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	if fi.IsDir() {
		u, err := os.ReadFile(filepath.Join(path, "username"))
		if err != nil {
			return "", "", err
		}
		p, err := os.ReadFile(filepath.Join(path, "password"))
		if err != nil {
			return "", "", err
		}
		return strings.TrimSpace(string(u)), strings.TrimSpace(string(p)), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	user, password, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok || user == "" {
		// The content is a secret: never quote it.
		return "", "", errors.New("the file must hold user:password")
	}
	return user, password, nil
}

// readToken reads a file holding one token (a mounted Secret's key).
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", errors.New("the file must hold one token")
	}
	return tok, nil
}
