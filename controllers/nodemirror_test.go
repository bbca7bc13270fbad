package controllers

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/controllers/nodemirror"
)

// envtest runs no DaemonSet controller and no kubelet: the tests play
// them, writing the DaemonSet's rollout status as the DaemonSet controller
// would once every node's agent is ready.

func mirroredRegistry(ns, name string) *uniregv1.Registry {
	return &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: uniregv1.RegistrySpec{
		Upstreams: &uniregv1.UpstreamsSpec{OCI: []uniregv1.OCIUpstream{
			{Name: "docker.io", URL: "https://registry-1.docker.io"},
			{Name: "ghcr.io", URL: "https://ghcr.io"},
		}},
		NodeMirror: &uniregv1.NodeMirrorSpec{Enabled: true},
	}}
}

func getRegistry(t *testing.T, ns, name string) *uniregv1.Registry {
	t.Helper()
	reg := &uniregv1.Registry{}
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// waitNodeMirror waits until NodeMirrorReady has the reason.
func waitNodeMirror(t *testing.T, ns, name, reason string) *uniregv1.Registry {
	t.Helper()
	var reg *uniregv1.Registry
	eventually(t, "NodeMirrorReady "+reason, func() (bool, error) {
		reg = &uniregv1.Registry{}
		if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, reg); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionNodeMirrorReady)
		return c != nil && c.Reason == reason, nil
	})
	return reg
}

func mirrorDaemonSet(t *testing.T, name string) *appsv1.DaemonSet {
	t.Helper()
	ds := &appsv1.DaemonSet{}
	eventually(t, "DaemonSet "+name, func() (bool, error) {
		err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: name}, ds)
		return err == nil, client404(err)
	})
	return ds
}

// rollOut writes the status the DaemonSet controller writes once the
// current template runs ready on n nodes.
func rollOut(t *testing.T, name string, n int32) {
	t.Helper()
	// The operator may be updating the DaemonSet (a new generation) at the
	// same time: the status update then conflicts, and is tried again on
	// the DaemonSet as it is now.
	eventually(t, "DaemonSet "+name+" rolled out", func() (bool, error) {
		ds := &appsv1.DaemonSet{}
		if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: name}, ds); err != nil {
			return false, err
		}
		ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: n, CurrentNumberScheduled: n,
			UpdatedNumberScheduled: n, NumberReady: n, NumberAvailable: n}
		err := k8sClient.Status().Update(t.Context(), ds)
		return err == nil, err
	})
}

func mirrorConfig(t *testing.T, name string) nodemirror.Config {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: name}, cm); err != nil {
		t.Fatal(err)
	}
	var cfg nodemirror.Config
	if err := json.Unmarshal([]byte(cm.Data[nodemirror.ConfigFile]), &cfg); err != nil {
		t.Fatalf("ConfigMap %s: %v", name, err)
	}
	return cfg
}

// A Registry with upstreams and nodeMirror.enabled gets a DaemonSet in the
// operator's namespace that writes a hosts.toml for each upstream pointing
// at the Service's ClusterIP; NodeMirrorReady follows the rollout; turning
// it off rolls the agents into removing their files, and only then the
// DaemonSet, its ConfigMap and the finalizer go.
func TestNodeMirrorConfiguresNodesAndCleansUp(t *testing.T) {
	needAPIServer(t)
	ns := "mirror-a"
	create(t, mirroredRegistry(ns, "cache"))
	ds := mirrorDaemonSet(t, "cache-node-mirror")
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "unireg/manager:test" || len(c.Args) == 0 || c.Args[0] != "node-mirror" {
		t.Errorf("agent container runs %s %q, want the manager's image with node-mirror", c.Image, c.Args)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(t corev1.Toleration) bool { return t.Operator == corev1.TolerationOpExists && t.Key == "" }) {
		t.Errorf("the agent does not tolerate every taint: %+v", pod.Tolerations)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("the agent gets a service account token")
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("agent security context %+v", sc)
	}
	var hostPaths []string
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths = append(hostPaths, v.HostPath.Path)
		}
	}
	if !slices.Equal(hostPaths, []string{"/etc/containerd/certs.d"}) {
		t.Errorf("agent host paths %q, want only containerd's certs.d", hostPaths)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() {
		t.Errorf("agent resources %+v", c.Resources)
	}

	svc := &corev1.Service{}
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "cache"}, svc); err != nil {
		t.Fatal(err)
	}
	cfg := mirrorConfig(t, "cache-node-mirror")
	mirror := "http://" + svc.Spec.ClusterIP + ":5000"
	if cfg.Owner != "mirror-a/cache" || cfg.HostsDir != "/etc/containerd/certs.d" || len(cfg.Hosts) != 2 ||
		!reflect.DeepEqual(cfg.Hosts, []nodemirror.Host{{Name: "docker.io", Server: "https://registry-1.docker.io", Mirror: mirror}, {Name: "ghcr.io", Server: "https://ghcr.io", Mirror: mirror}}) {
		t.Fatalf("agent config %+v, want docker.io and ghcr.io mirrored by %s", cfg, mirror)
	}
	toml := string(nodemirror.Render(cfg, cfg.Hosts[0]))
	for _, want := range []string{`server = "https://registry-1.docker.io"`, `[host."` + mirror + `"]`, `capabilities = ["pull", "resolve"]`} {
		if !strings.Contains(toml, want) {
			t.Errorf("hosts.toml for docker.io lacks %s:\n%s", want, toml)
		}
	}
	if reg := getRegistry(t, ns, "cache"); !controllerutil.ContainsFinalizer(reg, "unireg.dev/node-mirror") {
		t.Errorf("no finalizer holds the Registry for the cleanup: %q", reg.Finalizers)
	}
	waitNodeMirror(t, ns, "cache", uniregv1.ReasonConfiguringNodes)
	rollOut(t, "cache-node-mirror", 3)
	reg := waitNodeMirror(t, ns, "cache", uniregv1.ReasonNodesConfigured)
	if cond := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionNodeMirrorReady); cond.Status != metav1.ConditionTrue ||
		reg.Status.NodeMirror == nil || reg.Status.NodeMirror.Desired != 3 || reg.Status.NodeMirror.Ready != 3 {
		t.Fatalf("NodeMirrorReady %+v, counts %+v", cond, reg.Status.NodeMirror)
	}
	hashBefore := mirrorDaemonSet(t, "cache-node-mirror").Spec.Template.Annotations[annotationConfigHash]

	// Off: the agents roll into a configuration without hosts.
	reg.Spec.NodeMirror.Enabled = false
	if err := k8sClient.Update(t.Context(), reg); err != nil {
		t.Fatal(err)
	}
	waitNodeMirror(t, ns, "cache", uniregv1.ReasonCleaningUp)
	if cfg := mirrorConfig(t, "cache-node-mirror"); len(cfg.Hosts) != 0 || cfg.Owner != "mirror-a/cache" {
		t.Fatalf("cleanup config %+v, want this owner and no hosts", cfg)
	}
	ds = mirrorDaemonSet(t, "cache-node-mirror")
	if ds.Spec.Template.Annotations[annotationConfigHash] == hashBefore {
		t.Fatal("the cleanup config does not roll the agents")
	}
	if reg := getRegistry(t, ns, "cache"); !controllerutil.ContainsFinalizer(reg, "unireg.dev/node-mirror") {
		t.Fatal("the finalizer went before the nodes were cleaned")
	}
	rollOut(t, "cache-node-mirror", 3)
	eventually(t, "DaemonSet, ConfigMap and finalizer gone", func() (bool, error) {
		err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: "cache-node-mirror"}, &appsv1.DaemonSet{})
		if !apierrors.IsNotFound(err) {
			return false, client404(err)
		}
		err = k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: "cache-node-mirror"}, &corev1.ConfigMap{})
		if !apierrors.IsNotFound(err) {
			return false, client404(err)
		}
		reg := getRegistry(t, ns, "cache")
		return !controllerutil.ContainsFinalizer(reg, "unireg.dev/node-mirror") &&
			meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionNodeMirrorReady) == nil, nil
	})
}

// Deleting the Registry waits for the nodes' cleanup: the finalizer holds
// it until the agents have rolled into removing their files.
func TestNodeMirrorHoldsADeletedRegistryUntilNodesAreClean(t *testing.T) {
	needAPIServer(t)
	ns := "mirror-b"
	create(t, mirroredRegistry(ns, "gone"))
	mirrorDaemonSet(t, "gone-node-mirror")
	rollOut(t, "gone-node-mirror", 1)
	waitNodeMirror(t, ns, "gone", uniregv1.ReasonNodesConfigured)
	if err := k8sClient.Delete(t.Context(), getRegistry(t, ns, "gone")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agents told to clean up", func() (bool, error) {
		cm := &corev1.ConfigMap{}
		if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: "gone-node-mirror"}, cm); err != nil {
			return false, err
		}
		return !strings.Contains(cm.Data[nodemirror.ConfigFile], "docker.io"), nil
	})
	if reg := getRegistry(t, ns, "gone"); reg.DeletionTimestamp.IsZero() {
		t.Fatal("the Registry is not being deleted")
	}
	rollOut(t, "gone-node-mirror", 1)
	eventually(t, "the Registry gone after the cleanup", func() (bool, error) {
		err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "gone"}, &uniregv1.Registry{})
		return apierrors.IsNotFound(err), client404(err)
	})
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: "gone-node-mirror"}, &appsv1.DaemonSet{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the DaemonSet outlived its Registry: %v", err)
	}
}

// A node mirror decides what every pod of the cluster runs: a Registry in
// a namespace the operator does not allow, or naming a host directory it
// does not allow, gets none, and says why.
func TestNodeMirrorOnlyWhereTheOperatorAllows(t *testing.T) {
	ns := namespace(t)
	create(t, mirroredRegistry(ns, "tenant"))
	reg := waitNodeMirror(t, ns, "tenant", uniregv1.ReasonNodeMirrorNotAllowed)
	if c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionNodeMirrorReady); !strings.Contains(c.Message, "--node-mirror-namespaces") {
		t.Errorf("message %q does not say how to allow it", c.Message)
	}
	if controllerutil.ContainsFinalizer(reg, "unireg.dev/node-mirror") {
		t.Error("a refused node mirror holds a finalizer")
	}
	etc := mirroredRegistry("mirror-c", "etc")
	etc.Spec.NodeMirror.HostsDir = "/etc"
	create(t, etc)
	reg = waitNodeMirror(t, "mirror-c", "etc", uniregv1.ReasonNodeMirrorNotAllowed)
	if c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionNodeMirrorReady); !strings.Contains(c.Message, "hostsDir") {
		t.Errorf("message %q does not name hostsDir", c.Message)
	}
	for _, name := range []string{"tenant-node-mirror", "etc-node-mirror"} {
		if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: name}, &appsv1.DaemonSet{}); !apierrors.IsNotFound(err) {
			t.Errorf("DaemonSet %s exists (err %v)", name, err)
		}
	}
	bad := mirroredRegistry("mirror-c", "dotdot")
	bad.Spec.NodeMirror.HostsDir = "/etc/containerd/certs.d/../../root"
	if err := k8sClient.Create(t.Context(), bad); err == nil {
		t.Error("a hostsDir with .. was accepted")
	}
}

// A DaemonSet of the name that is not this Registry's node mirror is left
// as it is, and the condition says so.
func TestNodeMirrorNeverTakesOverADaemonSet(t *testing.T) {
	needAPIServer(t)
	foreign := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "taken-node-mirror", Labels: map[string]string{"app": "other"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "other"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "other:1"}}, TerminationGracePeriodSeconds: ptr.To[int64](1)},
			},
		},
	}
	create(t, foreign)
	create(t, mirroredRegistry("mirror-c", "taken"))
	waitNodeMirror(t, "mirror-c", "taken", uniregv1.ReasonChildConflict)
	got := &appsv1.DaemonSet{}
	if err := k8sClient.Get(t.Context(), client.ObjectKeyFromObject(foreign), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Template.Spec.Containers[0].Image != "other:1" || got.Labels["app"] != "other" || len(got.Spec.Template.Spec.Volumes) != 0 {
		t.Fatalf("the foreign DaemonSet was changed: %+v", got.Spec.Template.Spec)
	}
}
