package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// trustedProxiesArgs are the --trusted-proxies flags of a Registry's pods,
// once its Deployment exists.
func trustedProxiesArgs(t *testing.T, ns, name string) []string {
	t.Helper()
	dep := &appsv1.Deployment{}
	eventually(t, "Deployment "+name+" created", func() (bool, error) { return get(ns, name, dep) == nil, nil })
	var out []string
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--trusted-proxies") {
			out = append(out, a)
		}
	}
	return out
}

// spec.trustedProxies becomes the registry's --trusted-proxies: unset
// leaves the server's default (loopback and the private ranges), a list is
// passed as is, an empty list trusts no peer.
func TestTrustedProxiesReachTheRegistryFlag(t *testing.T) {
	ns := namespace(t)
	for _, tc := range []struct {
		name string
		spec *[]string
		want []string
	}{
		{"unset", nil, nil},
		{"list", &[]string{"10.42.0.0/16", "192.0.2.7", "fd00::/8"}, []string{"--trusted-proxies=10.42.0.0/16,192.0.2.7,fd00::/8"}},
		{"empty", &[]string{}, []string{"--trusted-proxies=none"}},
	} {
		create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tc.name},
			Spec: uniregv1.RegistrySpec{TrustedProxies: tc.spec}})
		if got := trustedProxiesArgs(t, ns, tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("%s: args %v, want %v", tc.name, got, tc.want)
		}
	}

	reg := &uniregv1.Registry{}
	update(t, ns, "unset", reg, func() { reg.Spec.TrustedProxies = ptr.To([]string{"10.0.0.1"}) })
	eventually(t, "the Deployment picks up --trusted-proxies", func() (bool, error) {
		dep := &appsv1.Deployment{}
		err := get(ns, "unset", dep)
		return slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--trusted-proxies=10.0.0.1"), err
	})
}

func TestTrustedProxiesMustBeAddressRanges(t *testing.T) {
	ns := namespace(t)
	for _, bad := range []string{"ingress.example.com", "10.0.0.0/33", "10.0.0.0/8,192.168.0.0/16", "none"} {
		err := k8sClient.Create(context.Background(), &uniregv1.Registry{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"},
			Spec:       uniregv1.RegistrySpec{TrustedProxies: &[]string{"10.0.0.0/8", bad}},
		})
		if err == nil || !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("trustedProxies entry %q: %v, want a refusal naming CIDRs", bad, err)
		}
	}
}
