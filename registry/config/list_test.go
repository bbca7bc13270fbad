package config

import (
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "unireg.yaml")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	out := []netip.Prefix{}
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestListFlagsTakeEveryOccurrence(t *testing.T) {
	o, err := Load([]string{
		"--anonymous", "oci:repository:a:pull", "--anonymous", "npm:package:*:read, oci:repository:b:pull",
		"--trusted-proxies", "10.0.0.0/8", "--trusted-proxies", "192.168.1.1,fd00::/8",
	}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"oci:repository:a:pull", "npm:package:*:read", "oci:repository:b:pull"}; !slices.Equal(o.AnonymousScopes(), want) {
		t.Errorf("anonymous = %q, want %q", o.AnonymousScopes(), want)
	}
	if want := prefixes(t, "10.0.0.0/8", "192.168.1.1/32", "fd00::/8"); !slices.Equal(o.Registry.TrustedProxies, want) {
		t.Errorf("trusted proxies = %v, want %v", o.Registry.TrustedProxies, want)
	}
}

func TestListVariablesHoldOneValuePerLine(t *testing.T) {
	o, err := Load(nil, env(map[string]string{
		// As a Kubernetes manifest's `value: |` block writes it.
		"UNIREG_ANONYMOUS":       "oci:repository:a:pull\nnpm:package:*:read,oci:repository:b:pull\n",
		"UNIREG_TRUSTED_PROXIES": "10.0.0.0/8\r\n\n  192.168.1.1\n",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"oci:repository:a:pull", "npm:package:*:read", "oci:repository:b:pull"}; !slices.Equal(o.AnonymousScopes(), want) {
		t.Errorf("anonymous = %q, want %q", o.AnonymousScopes(), want)
	}
	if want := prefixes(t, "10.0.0.0/8", "192.168.1.1/32"); !slices.Equal(o.Registry.TrustedProxies, want) {
		t.Errorf("trusted proxies = %v, want %v", o.Registry.TrustedProxies, want)
	}
}

// The first layer that sets a list gives all of it: a flag hides the
// variable and the file, a variable hides the file, nothing is merged.
func TestListPrecedenceIsFlagThenEnvThenFileWithoutMerging(t *testing.T) {
	file := writeConfig(t, "anonymous:\n  - oci:repository:file:pull\n  - npm:package:file:read\ntrusted-proxies: [10.1.0.0/16]\n")
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		want  []string
		proxy []netip.Prefix
	}{
		{"file", nil, nil, []string{"oci:repository:file:pull", "npm:package:file:read"}, prefixes(t, "10.1.0.0/16")},
		{"env over file", nil, map[string]string{"UNIREG_ANONYMOUS": "oci:repository:env:pull", "UNIREG_TRUSTED_PROXIES": "none"},
			[]string{"oci:repository:env:pull"}, []netip.Prefix{}},
		{"flag over env and file", []string{"--anonymous", "oci:repository:flag:pull", "--trusted-proxies", "10.9.0.0/16"},
			map[string]string{"UNIREG_ANONYMOUS": "oci:repository:env:pull"}, []string{"oci:repository:flag:pull"}, prefixes(t, "10.9.0.0/16")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := Load(append([]string{"--config", file}, c.args...), env(c.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.AnonymousScopes(), c.want) {
				t.Errorf("anonymous = %q, want %q", o.AnonymousScopes(), c.want)
			}
			if !slices.Equal(o.Registry.TrustedProxies, c.proxy) || o.Registry.TrustedProxies == nil {
				t.Errorf("trusted proxies = %#v, want %v", o.Registry.TrustedProxies, c.proxy)
			}
		})
	}
}

// A repeatable flag (the kind --oci-upstream and --retention are) never
// splits: its values keep their commas and regular expressions in every layer.
func TestRepeatableListKeepsCommasAndRegularExpressions(t *testing.T) {
	values := []string{`ci/*=keep-last=10,keep-tags=^v[0-9]{1,3},untagged-after=30d`, `team/*=keep-tags=^(main|release-[a-z]{2,5})$`}
	newFlags := func() (*flag.FlagSet, *[]string) {
		var got []string
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("config", "", "")
		fs.Var(repeatable(&got, stringValue, nil), "retention", "")
		return fs, &got
	}
	file := writeConfig(t, "retention:\n  - 'ci/*=keep-last=10,keep-tags=^v[0-9]{1,3},untagged-after=30d'\n  - 'team/*=keep-tags=^(main|release-[a-z]{2,5})$'\n")
	cases := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"file", []string{"--config", file}, nil},
		{"flags", []string{"--retention", values[0], "--retention", values[1]}, nil},
		{"env", nil, map[string]string{"UNIREG_RETENTION": values[0] + "\n" + values[1] + "\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, got := newFlags()
			if err := resolve(fs, c.args, env(c.env)); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(*got, values) {
				t.Fatalf("retention = %q, want %q", *got, values)
			}
		})
	}
}

func TestTrustedProxiesNoneIsTheEmptyList(t *testing.T) {
	for _, args := range [][]string{{"--trusted-proxies", "none"}, {"--config", writeConfig(t, "trusted-proxies: []\n")}} {
		o, err := Load(args, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.Registry.TrustedProxies == nil || len(o.Registry.TrustedProxies) != 0 {
			t.Errorf("%q: trusted proxies = %#v, want the empty list", args, o.Registry.TrustedProxies)
		}
	}
	o, err := Load(nil, env(nil), io.Discard)
	if err != nil || o.Registry.TrustedProxies != nil {
		t.Errorf("unset: trusted proxies = %#v (%v), want nil (the library's default)", o.Registry.TrustedProxies, err)
	}
}

func TestListsRejectBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"none with a CIDR", []string{"--trusted-proxies", "none", "--trusted-proxies", "10.0.0.0/8"}, nil, "empty list"},
		{"empty proxies", []string{"--trusted-proxies", ","}, nil, "empty"},
		{"bad proxy in env", nil, map[string]string{"UNIREG_TRUSTED_PROXIES": "10.0.0.0/8\nnot-an-address"}, "UNIREG_TRUSTED_PROXIES"},
		{"YAML list for a single value", []string{"--config", writeConfig(t, "listen: [':1', ':2']\n")}, nil, "not a list setting"},
		{"nested YAML list", []string{"--config", writeConfig(t, "anonymous: [[a]]\n")}, nil, "itself a list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.args, env(c.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}
