package controllers

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// TestRegistryPublishesItsPullHosts: a Registry's status names the hosts
// its images are pulled by (the Service's DNS name and its ClusterIP, or
// spec.publicURL's host), and its tokens' pull secrets follow them.
func TestRegistryPublishesItsPullHosts(t *testing.T) {
	needAPIServer(t)
	ns := namespace(t)
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}}
	create(t, reg)
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pull"}, Spec: tokenSpec("oci:repository:*:pull")})
	svc := &corev1.Service{}
	eventually(t, "the Service has its ClusterIP", func() (bool, error) {
		err := get(ns, "reg", svc)
		return err == nil && svc.Spec.ClusterIP != "", nil
	})
	dns, node := "reg."+ns+".svc:5000", svc.Spec.ClusterIP+":5000"
	eventually(t, "status.pullHosts names the DNS name and the ClusterIP", func() (bool, error) {
		err := get(ns, "reg", reg)
		return slices.Equal(reg.Status.PullHosts, []string{dns, node}), err
	})
	eventually(t, "the pull secret covers both", func() (bool, error) { return pullSecretHosts(ns, "pull-token", dns, node) })

	update(t, ns, "reg", reg, func() { reg.Spec.PublicURL = "https://registry.example.com" })
	eventually(t, "status.pullHosts is the public host", func() (bool, error) {
		err := get(ns, "reg", reg)
		return slices.Equal(reg.Status.PullHosts, []string{"registry.example.com"}), err
	})
	eventually(t, "the pull secret covers the public host only", func() (bool, error) {
		return pullSecretHosts(ns, "pull-token", "registry.example.com")
	})
}

// pullSecretHosts tells whether the token Secret's .dockerconfigjson has
// credentials for exactly the hosts given.
func pullSecretHosts(ns, name string, hosts ...string) (bool, error) {
	s := &corev1.Secret{}
	if err := get(ns, name, s); err != nil {
		return false, nil
	}
	var cfg struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		return false, err
	}
	got := slices.Sorted(maps.Keys(cfg.Auths))
	slices.Sort(hosts)
	return slices.Equal(got, hosts), nil
}
