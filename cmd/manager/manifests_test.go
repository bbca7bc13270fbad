package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// decodeAll decodes a multi-document YAML stream of built-in kinds.
func decodeAll(t *testing.T, b []byte) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	for _, doc := range bytes.Split(b, []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) == 0 || !bytes.Contains(doc, []byte("kind:")) {
			continue
		}
		obj, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			if strings.Contains(err.Error(), "no kind") { // CRDs and other kinds the scheme lacks
				continue
			}
			t.Fatalf("decode: %v\n%s", err, doc)
		}
		out = append(out, obj)
	}
	return out
}

func readConfig(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"..", "..", "config"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOperatorNamespaceEnforcesRestricted: unireg-system admits only pods
// of the restricted Pod Security Standard, and the manager's pod is one.
func TestOperatorNamespaceEnforcesRestricted(t *testing.T) {
	var ns *corev1.Namespace
	var dep *appsv1.Deployment
	for _, obj := range decodeAll(t, readConfig(t, "manager", "manager.yaml")) {
		switch o := obj.(type) {
		case *corev1.Namespace:
			ns = o
		case *appsv1.Deployment:
			dep = o
		}
	}
	if ns == nil || dep == nil {
		t.Fatal("config/manager/manager.yaml lacks the Namespace or the Deployment")
	}
	for _, mode := range []string{"enforce", "audit", "warn"} {
		if got := ns.Labels["pod-security.kubernetes.io/"+mode]; got != "restricted" {
			t.Errorf("Namespace label pod-security.kubernetes.io/%s = %q, want restricted", mode, got)
		}
	}
	// What the restricted profile asks of a pod (see
	// https://kubernetes.io/docs/concepts/security/pod-security-standards/).
	pod := dep.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("the manager's pod does not set runAsNonRoot")
	}
	if pod.SecurityContext == nil || pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("the manager's pod has no RuntimeDefault seccomp profile")
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Error("the manager's pod uses a host namespace")
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s may escalate privileges", c.Name)
		}
		if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s does not drop ALL capabilities (and add none)", c.Name)
		}
		if sc != nil && sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
	}
}

// TestMetricsServiceServesHTTPS: the manager serves metrics on :8443 and
// config/default has a Service for that port.
func TestMetricsServiceServesHTTPS(t *testing.T) {
	var dep *appsv1.Deployment
	for _, obj := range decodeAll(t, readConfig(t, "manager", "manager.yaml")) {
		if d, ok := obj.(*appsv1.Deployment); ok {
			dep = d
		}
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if !strings.Contains(strings.Join(c.Args, " "), "--metrics-bind-address=:8443") {
		t.Errorf("manager args %q do not serve metrics on :8443", c.Args)
	}
	if strings.Contains(strings.Join(c.Args, " "), "--metrics-secure=false") {
		t.Error("the manager serves metrics without authentication")
	}
	port := false
	for _, p := range c.Ports {
		port = port || (p.Name == "https" && p.ContainerPort == 8443)
	}
	if !port {
		t.Errorf("manager ports %+v lack https 8443", c.Ports)
	}
	svc := &corev1.Service{}
	if err := yaml.UnmarshalStrict(readConfig(t, "default", "metrics_service.yaml"), svc); err != nil {
		t.Fatal(err)
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the metrics Service selects %s=%s, which the manager's pod lacks", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Ports[0].TargetPort.String() != "https" {
		t.Errorf("metrics Service ports %+v, want 8443 to the https port", svc.Spec.Ports)
	}
	if !strings.Contains(string(readConfig(t, "default", "kustomization.yaml")), "- metrics_service.yaml") {
		t.Error("config/default does not deploy metrics_service.yaml")
	}
}

// TestNamespacedInstallGrantsNothingClusterWide renders config/namespaced
// (kubectl kustomize): the manager watches its namespaces and holds
// manager-role only through RoleBindings there.
func TestNamespacedInstallGrantsNothingClusterWide(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH: cannot render config/namespaced")
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join("..", "..", "config", "namespaced")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/namespaced: %v", err)
	}
	var watched []string
	bound := map[string]bool{}
	for _, obj := range decodeAll(t, out) {
		switch o := obj.(type) {
		case *rbacv1.ClusterRoleBinding:
			if o.RoleRef.Name == "unireg-manager-role" {
				t.Errorf("ClusterRoleBinding %s grants manager-role cluster-wide", o.Name)
			}
		case *rbacv1.RoleBinding:
			if o.RoleRef.Name == "unireg-manager-role" {
				bound[o.Namespace] = true
			}
		case *appsv1.Deployment:
			for _, a := range o.Spec.Template.Spec.Containers[0].Args {
				if v, ok := strings.CutPrefix(a, "--watch-namespaces="); ok {
					watched = strings.Split(v, ",")
				}
			}
		}
	}
	if len(watched) == 0 {
		t.Fatal("the namespaced manager has no --watch-namespaces")
	}
	for _, ns := range watched {
		if !bound[ns] {
			t.Errorf("watched namespace %s has no RoleBinding to manager-role", ns)
		}
	}
	for ns := range bound {
		if !strings.Contains(","+strings.Join(watched, ",")+",", ","+ns+",") {
			t.Errorf("manager-role is bound in %s, which is not watched", ns)
		}
	}
}
