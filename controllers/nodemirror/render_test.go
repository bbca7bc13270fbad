package nodemirror

import (
	"testing"
)

const testCA = `-----BEGIN CERTIFICATE-----
MIIBdzCCAR2gAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDEwl1bmlyZWcg
Q0EwHhcNMjYwMTAxMDAwMDAwWhcNMzYwMTAxMDAwMDAwWjAUMRIwEAYDVQQDEwl1
-----END CERTIFICATE-----
`

func TestRenderHTTPMirrorWithUpstream(t *testing.T) {
	cfg := Config{Owner: "team-a/cache", HostsDir: "/etc/containerd/certs.d"}
	got := string(Render(cfg, Host{Name: "docker.io", Server: "https://registry-1.docker.io", Mirror: "http://10.0.0.10:5000"}))
	want := `# Written by unireg node-mirror for team-a/cache. Do not edit: the operator rewrites and removes this file.
server = "https://registry-1.docker.io"

[host."http://10.0.0.10:5000"]
  capabilities = ["pull", "resolve"]
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRenderTLSMirrorNamesCAByNodePath(t *testing.T) {
	cfg := Config{Owner: "team-a/cache", HostsDir: "/etc/containerd/certs.d"}
	got := string(Render(cfg, Host{Name: "ghcr.io", Server: "https://ghcr.io", Mirror: "https://10.0.0.10:5443", CA: []byte(testCA)}))
	want := `# Written by unireg node-mirror for team-a/cache. Do not edit: the operator rewrites and removes this file.
server = "https://ghcr.io"

[host."https://10.0.0.10:5443"]
  capabilities = ["pull", "resolve"]
  ca = "/etc/containerd/certs.d/ghcr.io/unireg-ca.crt"
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRenderOwnHostIsItsOwnServer(t *testing.T) {
	cfg := Config{Owner: "team-a/cache", HostsDir: "/var/lib/cluster/certs.d"}
	got := string(Render(cfg, Host{Name: "10.0.0.10:5443", Mirror: "https://10.0.0.10:5443", CA: []byte(testCA)}))
	want := `# Written by unireg node-mirror for team-a/cache. Do not edit: the operator rewrites and removes this file.
server = "https://10.0.0.10:5443"
ca = "/var/lib/cluster/certs.d/10.0.0.10:5443/unireg-ca.crt"
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRenderQuotesWhatValidateWouldRefuse(t *testing.T) {
	cfg := Config{Owner: "a/b", HostsDir: "/d"}
	got := string(Render(cfg, Host{Name: "x", Mirror: "http://a\"\n[host.\"evil\"]\\"}))
	want := "# Written by unireg node-mirror for a/b. Do not edit: the operator rewrites and removes this file.\n" +
		`server = "http://a\"\u000A[host.\"evil\"]\\"` + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
