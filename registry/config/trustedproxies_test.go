package config

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// --trusted-proxies comes from a flag, UNIREG_TRUSTED_PROXIES or the config
// file (as a string or a YAML list) and reaches registry.Config; unset is
// the library's default set (nil), "none" trusts no peer (empty, non-nil).
func TestTrustedProxiesFromFlagEnvAndFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("trusted-proxies:\n  - 10.1.0.0/16\n  - fd00::/8\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []netip.Prefix
	}{
		{"unset", nil, nil, nil},
		{"flag", []string{"--trusted-proxies", "10.0.0.0/8, 192.0.2.7"}, nil,
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}},
		{"environment", nil, map[string]string{"UNIREG_TRUSTED_PROXIES": "none"}, []netip.Prefix{}},
		{"file list", []string{"--config", file}, nil,
			[]netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/8")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := Load(append([]string{"--data-dir", t.TempDir(), "--anonymous", "oci:repository:*:pull"}, tc.args...), env(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			b, err := o.Build(context.Background(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			got := b.Config.TrustedProxies
			if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Fatalf("TrustedProxies = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestTrustedProxiesRejectsWhatIsNotAnAddressRange(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "proxy.example.com", "", " , "} {
		_, err := Load([]string{"--trusted-proxies=" + bad}, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "invalid value") || !strings.Contains(err.Error(), "trusted-proxies") {
			t.Errorf("--trusted-proxies=%q: error %v", bad, err)
		}
	}
}
