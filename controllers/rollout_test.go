package controllers

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// upgradeCluster is an API server of its own, apart from the suite's (whose
// operator keeps one default image): the test plays two operator versions
// in turn, calling their Reconcile itself, and the Deployment controller
// (which envtest lacks) by writing Deployment status.
type upgradeCluster struct {
	t      *testing.T
	c      client.Client // through the cache, as the operator reads
	direct client.Client
	events *record.FakeRecorder
}

func startUpgradeCluster(t *testing.T) *upgradeCluster {
	t.Helper()
	needAPIServer(t)
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join("..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Stop() })
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: k8sClient.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := indexTokensByRegistry(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go mgr.Start(ctx)
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	direct, err := client.New(cfg, client.Options{Scheme: k8sClient.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return &upgradeCluster{t: t, c: mgr.GetClient(), direct: direct, events: record.NewFakeRecorder(1000)}
}

// operator is the registry controller of an operator version.
func (u *upgradeCluster) operator(image string) *RegistryReconciler {
	return &RegistryReconciler{Client: u.c, Scheme: u.c.Scheme(), Recorder: u.events, DefaultImage: image, Now: time.Now}
}

// reconcile runs the operator on the Registries in the order given: the
// auth-store controller, whose Secret the pods wait for, then the registry
// controller.
func (u *upgradeCluster) reconcile(op *RegistryReconciler, keys ...client.ObjectKey) map[client.ObjectKey]ctrl.Result {
	u.t.Helper()
	out := map[client.ObjectKey]ctrl.Result{}
	for _, k := range keys {
		u.authStore(k)
		res, err := op.Reconcile(context.Background(), ctrl.Request{NamespacedName: k})
		if err != nil {
			u.t.Fatalf("reconcile %s: %v", k, err)
		}
		out[k] = res
	}
	return out
}

// authStore runs the auth-store controller on a Registry and waits until
// the operator's cache sees its Secret.
func (u *upgradeCluster) authStore(k client.ObjectKey) {
	u.t.Helper()
	as := &AuthStoreReconciler{Client: u.c, Scheme: u.c.Scheme(), Recorder: u.events}
	if _, err := as.Reconcile(context.Background(), ctrl.Request{NamespacedName: k}); err != nil {
		u.t.Fatalf("auth store of %s: %v", k, err)
	}
	eventually(u.t, "the cache sees the auth store of "+k.String(), func() (bool, error) {
		return u.c.Get(context.Background(), client.ObjectKey{Namespace: k.Namespace, Name: k.Name + "-auth"}, &corev1.Secret{}) == nil, nil
	})
}

func (u *upgradeCluster) deployment(k client.ObjectKey) *appsv1.Deployment {
	u.t.Helper()
	dep := &appsv1.Deployment{}
	if err := u.direct.Get(context.Background(), k, dep); err != nil {
		u.t.Fatal(err)
	}
	return dep
}

func (u *upgradeCluster) image(k client.ObjectKey) string {
	return u.deployment(k).Spec.Template.Spec.Containers[0].Image
}

// rolledOut plays the Deployment controller: the Deployment's pods are all
// of its current template and available. It waits until the operator's
// cache sees it.
func (u *upgradeCluster) rolledOut(k client.ObjectKey) {
	u.t.Helper()
	dep := u.deployment(k)
	n := *dep.Spec.Replicas
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	if err := u.direct.Status().Update(context.Background(), dep); err != nil {
		u.t.Fatal(err)
	}
	eventually(u.t, "the cache sees "+k.String()+" rolled out", func() (bool, error) {
		seen := &appsv1.Deployment{}
		err := u.c.Get(context.Background(), k, seen)
		return seen.Status.ObservedGeneration == seen.Generation && seen.Status.AvailableReplicas == n, err
	})
}

func (u *upgradeCluster) progressing(k client.ObjectKey) *metav1.Condition {
	reg := &uniregv1.Registry{}
	if err := u.direct.Get(context.Background(), k, reg); err != nil {
		u.t.Fatal(err)
	}
	return meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionProgressing)
}

func TestOperatorUpgradeRollsRegistriesOneAtATime(t *testing.T) {
	u := startUpgradeCluster(t)
	ctx := context.Background()
	for _, ns := range []string{"n1", "n2"} {
		if err := u.direct.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := client.ObjectKey{Namespace: "n1", Name: "a"}, client.ObjectKey{Namespace: "n1", Name: "b"}, client.ObjectKey{Namespace: "n2", Name: "c"}
	pinned, idle := client.ObjectKey{Namespace: "n1", Name: "pinned"}, client.ObjectKey{Namespace: "n2", Name: "idle"}
	for _, reg := range []*uniregv1.Registry{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "n1", Name: "a"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "n1", Name: "b"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "n2", Name: "c"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "n1", Name: "pinned"}, Spec: uniregv1.RegistrySpec{Image: "example.com/unireg:custom"}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "n2", Name: "idle"}, Spec: uniregv1.RegistrySpec{Replicas: ptr.To[int32](0)}},
	} {
		if err := u.direct.Create(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
	all := []client.ObjectKey{a, b, c, pinned, idle}
	eventually(t, "the cache sees the Registries", func() (bool, error) {
		var list uniregv1.RegistryList
		err := u.c.List(ctx, &list)
		return len(list.Items) == len(all), err
	})

	v1, v2 := u.operator("unireg/registry:v1"), u.operator("unireg/registry:v2")
	u.reconcile(v1, all...)
	for _, k := range all {
		u.rolledOut(k)
	}

	// The upgrade, Registries reconciled in reverse order: the order of
	// the slots is the Registries' (namespace/name), not the queue's.
	reverse := []client.ObjectKey{idle, pinned, c, b, a}
	results := u.reconcile(v2, reverse...)
	want := map[client.ObjectKey]string{a: "unireg/registry:v2", b: "unireg/registry:v1", c: "unireg/registry:v1",
		pinned: "example.com/unireg:custom", idle: "unireg/registry:v2"}
	for k, img := range want {
		if got := u.image(k); got != img {
			t.Errorf("after the upgrade's first round %s runs %s, want %s", k, got, img)
		}
	}
	for _, k := range []client.ObjectKey{b, c} {
		if p := u.progressing(k); p == nil || p.Reason != uniregv1.ReasonWaitingForUpgradeSlot || !strings.Contains(p.Message, "n1/a") {
			t.Errorf("%s Progressing = %+v; want %s naming n1/a", k, p, uniregv1.ReasonWaitingForUpgradeSlot)
		}
		if r := results[k].RequeueAfter; r <= 0 || r > upgradeSlotRetry {
			t.Errorf("%s requeued after %v; want within %v", k, r, upgradeSlotRetry)
		}
	}

	// While a rolls, the others keep their image but get every other change.
	reg := &uniregv1.Registry{}
	if err := u.direct.Get(ctx, b, reg); err != nil {
		t.Fatal(err)
	}
	reg.Spec.AnonymousScopes = []string{"oci:repository:*:pull"}
	if err := u.direct.Update(ctx, reg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache sees b's change", func() (bool, error) {
		seen := &uniregv1.Registry{}
		err := u.c.Get(ctx, b, seen)
		return len(seen.Spec.AnonymousScopes) == 1, err
	})
	u.reconcile(v2, reverse...)
	if img, args := u.image(b), u.deployment(b).Spec.Template.Spec.Containers[0].Args; img != "unireg/registry:v1" || !strings.Contains(strings.Join(args, " "), "--anonymous=oci:repository:*:pull") {
		t.Errorf("b while a rolls: image %s, args %v; want v1 with the new --anonymous", img, args)
	}
	if u.image(c) != "unireg/registry:v1" {
		t.Errorf("c rolled while a was rolling")
	}

	u.rolledOut(a)
	u.reconcile(v2, reverse...)
	if u.image(b) != "unireg/registry:v2" || u.image(c) != "unireg/registry:v1" {
		t.Errorf("a rolled out: b %s, c %s; want b next, c still waiting", u.image(b), u.image(c))
	}
	u.rolledOut(b)
	u.reconcile(v2, reverse...)
	if u.image(c) != "unireg/registry:v2" {
		t.Errorf("b rolled out: c %s, want v2", u.image(c))
	}
	if p := u.progressing(c); p == nil || p.Reason == uniregv1.ReasonWaitingForUpgradeSlot {
		t.Errorf("c Progressing = %+v once its turn came", p)
	}
	waited := 0
	for len(u.events.Events) > 0 {
		if strings.Contains(<-u.events.Events, uniregv1.ReasonWaitingForUpgradeSlot) {
			waited++
		}
	}
	if waited == 0 {
		t.Error("no WaitingForUpgradeSlot event")
	}
}

// A Deployment of an operator from before the default-image record: its
// image is taken for a previous default when it is of the same repository.
func TestPreviousDefaultImage(t *testing.T) {
	r := &RegistryReconciler{DefaultImage: "docker.io/unireg/registry:v0.5.0"}
	dep := func(image string, annotations map[string]string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Annotations: annotations}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "registry", Image: image}}}}}}
	}
	for _, c := range []struct {
		image       string
		annotations map[string]string
		want        bool
	}{
		{"docker.io/unireg/registry:v0.4.0", map[string]string{annotationDefaultImage: "docker.io/unireg/registry:v0.4.0"}, true},
		{"docker.io/unireg/registry:v0.5.0", map[string]string{annotationDefaultImage: "docker.io/unireg/registry:v0.5.0"}, false}, // already there
		{"evil.example/registry:1", map[string]string{annotationDefaultImage: "docker.io/unireg/registry:v0.4.0"}, false},          // a hand edit
		{"docker.io/unireg/registry:v0.4.0", nil, true},
		{"docker.io/unireg/registry@sha256:0123", nil, true},
		{"localhost:5000/unireg/registry:v0.4.0", nil, false},
		{"other/registry:v0.4.0", nil, false},
	} {
		if got := r.previousDefault(dep(c.image, c.annotations)); got != c.want {
			t.Errorf("previousDefault(%s, %v) = %t, want %t", c.image, c.annotations, got, c.want)
		}
	}
}
