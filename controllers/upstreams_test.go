package controllers

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/config"
)

// spec.upstreams reach the server as its flags, which its own parser
// accepts; credentials come as Secret volumes of the registry's pods only
// (never args or env), and anonymous pulls are granted exactly where
// anonymousPull (or its default) says.
func TestUpstreamsReachTheServer(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cache"}, Spec: uniregv1.RegistrySpec{
		AnonymousScopes: []string{"npm:package:*:read"},
		Upstreams: &uniregv1.UpstreamsSpec{
			OCI: []uniregv1.OCIUpstream{
				{Name: "docker.io", URL: "https://registry-1.docker.io", CredentialsSecretRef: &corev1.LocalObjectReference{Name: "dockerhub"}, AnonymousPull: ptr.To(true)},
				{Name: "ghcr.io", URL: "https://ghcr.io/"},
				{Name: "private.example.com", URL: "https://private.example.com", CredentialsSecretRef: &corev1.LocalObjectReference{Name: "private"}},
			},
			NPM: &uniregv1.NPMUpstream{URL: "https://registry.npmjs.org/", CredentialsSecretRef: &corev1.LocalObjectReference{Name: "npm-uplink"},
				LocalScopes: []string{"@acme", "@tools"}, MaxAge: &metav1.Duration{Duration: 5 * time.Minute}},
		},
	}})
	pod := deployment(t, ns, "cache").Spec.Template.Spec
	c := pod.Containers[0]
	for _, want := range []string{
		"--oci-upstream=docker.io=https://registry-1.docker.io",
		"--oci-upstream-credentials=docker.io=/etc/unireg/upstreams/oci-upstream-0",
		"--oci-upstream=ghcr.io=https://ghcr.io",
		"--oci-upstream=private.example.com=https://private.example.com",
		"--oci-upstream-credentials=private.example.com=/etc/unireg/upstreams/oci-upstream-2",
		"--npm-upstream=https://registry.npmjs.org/",
		"--npm-upstream-credentials=/etc/unireg/upstreams/npm-upstream/token",
		"--npm-local-scope=@acme", "--npm-local-scope=@tools",
		"--npm-upstream-max-age=5m0s",
		// docker.io asks for it, ghcr.io has no credentials, the private
		// one has credentials and keeps its content private.
		"--anonymous=npm:package:*:read,oci:repository:docker.io/*:pull,oci:repository:ghcr.io/*:pull",
	} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != "" && slices.Contains([]string{"dockerhub", "private", "npm-uplink"}, e.ValueFrom.SecretKeyRef.Name) {
			t.Errorf("an upstream's credentials are in the environment: %+v", e)
		}
	}
	secretOf := map[string]*corev1.SecretVolumeSource{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secretOf[v.Name] = v.Secret
		}
	}
	for volume, want := range map[string]struct {
		secret string
		keys   []string
	}{
		"oci-upstream-0": {"dockerhub", []string{"username", "password"}},
		"oci-upstream-2": {"private", []string{"username", "password"}},
		"npm-upstream":   {"npm-uplink", []string{"token"}},
	} {
		s := secretOf[volume]
		if s == nil || s.SecretName != want.secret || s.DefaultMode == nil || *s.DefaultMode != 0o400 {
			t.Errorf("volume %s = %+v, want Secret %s mode 0400", volume, s, want.secret)
			continue
		}
		var keys []string
		for _, it := range s.Items {
			keys = append(keys, it.Key)
		}
		if !slices.Equal(keys, want.keys) {
			t.Errorf("volume %s projects keys %v, want %v", volume, keys, want.keys)
		}
		mounted := false
		for _, m := range c.VolumeMounts {
			mounted = mounted || (m.Name == volume && m.ReadOnly && m.MountPath == "/etc/unireg/upstreams/"+volume)
		}
		if !mounted {
			t.Errorf("volume %s is not mounted read-only at /etc/unireg/upstreams/%s: %+v", volume, volume, c.VolumeMounts)
		}
	}

	var serverArgs []string
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--oci-upstream") || strings.HasPrefix(a, "--npm-") || strings.HasPrefix(a, "--anonymous=") {
			serverArgs = append(serverArgs, a)
		}
	}
	o, err := config.Load(serverArgs, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("the server refuses the operator's flags %q: %v", serverArgs, err)
	}
	if ups := o.Registry.OCI.Upstreams; len(ups) != 3 || ups[1].Name != "ghcr.io" || ups[1].URL != "https://ghcr.io" {
		t.Errorf("the server read upstreams %+v", ups)
	}
	if o.Registry.NPM.Upstream.URL != "https://registry.npmjs.org/" || !slices.Equal(o.Registry.NPM.LocalScopes, []string{"@acme", "@tools"}) || o.Registry.NPM.UpstreamMaxAge != 5*time.Minute {
		t.Errorf("the server read npm upstream %+v, local scopes %v, max age %v", o.Registry.NPM.Upstream, o.Registry.NPM.LocalScopes, o.Registry.NPM.UpstreamMaxAge)
	}
}

// Names that the server would refuse (a port, a path) are refused by the
// API before anything rolls.
func TestUpstreamNamesTheServerRefusesAreRefused(t *testing.T) {
	ns := namespace(t)
	for i, up := range []uniregv1.OCIUpstream{
		{Name: "localhost:5000", URL: "http://localhost:5000"},
		{Name: "docker.io/library", URL: "https://registry-1.docker.io"},
		{Name: "docker.io", URL: "https://registry-1.docker.io/v2/"},
		{Name: "docker.io", URL: "ftp://registry-1.docker.io"},
		{Name: "docker.io", URL: "https://user:pw@registry-1.docker.io"},
	} {
		reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad" + string(rune('a'+i))},
			Spec: uniregv1.RegistrySpec{Upstreams: &uniregv1.UpstreamsSpec{OCI: []uniregv1.OCIUpstream{up}}}}
		if err := k8sClient.Create(t.Context(), reg); err == nil {
			t.Errorf("upstream %+v was accepted", up)
		}
	}
}
