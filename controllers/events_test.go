package controllers

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// warningEvents sums the counts of an object's warning events of a reason.
func warningEvents(t *testing.T, ns, object, reason string) int32 {
	t.Helper()
	events := &corev1.EventList{}
	if err := k8sClient.List(context.Background(), events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var n int32
	for _, e := range events.Items {
		if e.InvolvedObject.Name == object && e.Reason == reason && e.Type == corev1.EventTypeWarning {
			n += max(e.Count, 1)
		}
	}
	return n
}

// A reconcile that fails says so in an event, once per distinct failure,
// not once per retry; status.observedGeneration stays behind.
func TestReconcileErrorIsAWarningEventOnce(t *testing.T) {
	ns := namespace(t)
	// The CRD takes any toleration operator; the Deployment's validation
	// refuses this one, so every reconcile fails at the Deployment.
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}, Spec: uniregv1.RegistrySpec{
		PodTemplate: uniregv1.PodTemplateOverrides{Tolerations: []corev1.Toleration{{Key: "k", Operator: "Sometimes"}}},
	}})
	eventually(t, "Ready False with ReconcileError", func() (bool, error) {
		c, err := registryReady(ns, "reg")
		return c != nil && c.Reason == "ReconcileError", err
	})
	waitEvent(t, ns, "reg", "ReconcileError")
	time.Sleep(3 * time.Second) // retries with backoff meanwhile, each failing alike
	if n := warningEvents(t, ns, "reg", "ReconcileError"); n != 1 {
		t.Errorf("%d ReconcileError events for one unchanged failure; want 1", n)
	}
	reg := &uniregv1.Registry{}
	if err := get(ns, "reg", reg); err != nil {
		t.Fatal(err)
	}
	if reg.Status.ObservedGeneration == reg.Generation {
		t.Errorf("observedGeneration = %d after a failed reconcile; want it behind generation %d", reg.Status.ObservedGeneration, reg.Generation)
	}
	if c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v; want False", c)
	}
}
