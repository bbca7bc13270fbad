package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// With more than one replica a Registry gets a PodDisruptionBudget of
// maxUnavailable 1 and its pods spread over nodes; with one, neither; a
// spread the user gives wins.
func TestReplicasGetADisruptionBudgetAndSpread(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pair"}, Spec: uniregv1.RegistrySpec{
		Replicas: ptr.To[int32](2), Storage: s3Storage("pair"),
	}})
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "single"}, Spec: uniregv1.RegistrySpec{
		Storage: s3Storage("single"),
	}})
	own := corev1.TopologySpreadConstraint{MaxSkew: 2, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/instance": "zoned"}}}
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "zoned"}, Spec: uniregv1.RegistrySpec{
		Replicas: ptr.To[int32](3), Storage: s3Storage("zoned"),
		PodTemplate: uniregv1.PodTemplateOverrides{TopologySpreadConstraints: []corev1.TopologySpreadConstraint{own}},
	}})

	pdb := &policyv1.PodDisruptionBudget{}
	eventually(t, "the PodDisruptionBudget of pair", func() (bool, error) {
		err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "pair"}, pdb)
		return err == nil, client404(err)
	})
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil ||
		pdb.Spec.Selector == nil || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/instance"] != "pair" {
		t.Fatalf("PodDisruptionBudget spec %+v", pdb.Spec)
	}
	if c := metav1.GetControllerOf(pdb); c == nil || c.Kind != "Registry" || c.Name != "pair" {
		t.Fatalf("the budget is not the Registry's: %+v", pdb.OwnerReferences)
	}
	spread := deployment(t, ns, "pair").Spec.Template.Spec.TopologySpreadConstraints
	if len(spread) != 1 || spread[0].TopologyKey != corev1.LabelHostname || spread[0].MaxSkew != 1 ||
		spread[0].WhenUnsatisfiable != corev1.ScheduleAnyway || spread[0].LabelSelector.MatchLabels["app.kubernetes.io/instance"] != "pair" {
		t.Fatalf("pods of two replicas spread by %+v, want over hostnames, ScheduleAnyway", spread)
	}

	if s := deployment(t, ns, "single").Spec.Template.Spec.TopologySpreadConstraints; len(s) != 0 {
		t.Errorf("one replica got a spread: %+v", s)
	}
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "single"}, &policyv1.PodDisruptionBudget{}); !apierrors.IsNotFound(err) {
		t.Errorf("one replica got a PodDisruptionBudget (err %v)", err)
	}
	if s := deployment(t, ns, "zoned").Spec.Template.Spec.TopologySpreadConstraints; len(s) != 1 || s[0].TopologyKey != own.TopologyKey || s[0].MaxSkew != 2 {
		t.Errorf("the user's spread was replaced: %+v", s)
	}
}

// client404 hides NotFound, which eventually retries.
func client404(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
