package controllers

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// The API server's pattern keeps scopes the server refuses out of new
// RegistryScopes (TestScopesTheServerRefusesAreRejectedAtAdmission), but
// one stored under an older CRD (before the NUL rule, say) was never
// checked by it: the controller checks with the server's parser itself.
// The fake client stands in for such a stored object, which today's API
// server would not let a test create.
func TestRegistryScopeIsCheckedWithTheServersParser(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	stored := func(name string, scopes ...string) *uniregv1.RegistryScope {
		return &uniregv1.RegistryScope{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, Generation: 3},
			Spec: uniregv1.RegistryScopeSpec{Scopes: scopes}}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(stored("old", "npm:package:@team/*:write", "oci:repository:a\x00b:pull"), stored("good", "oci:repository:team/*:push", "*")).
		WithStatusSubresource(&uniregv1.RegistryScope{}).
		WithIndex(&uniregv1.RegistryToken{}, indexScopeRef, func(client.Object) []string { return nil }).
		Build()
	events := record.NewFakeRecorder(10)
	r := &RegistryScopeReconciler{Client: c, Recorder: events}
	reconcileTwice := func(name string) *uniregv1.RegistryScope {
		t.Helper()
		for range 2 { // the second run must not repeat the event
			if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "team", Name: name}}); err != nil {
				t.Fatal(err)
			}
		}
		rs := &uniregv1.RegistryScope{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: name}, rs); err != nil {
			t.Fatal(err)
		}
		return rs
	}

	rs := reconcileTwice("old")
	ready := meta.FindStatusCondition(rs.Status.Conditions, uniregv1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != uniregv1.ReasonInvalidScope || !strings.Contains(ready.Message, "spec.scopes[1]") {
		t.Errorf("Ready = %+v; want False, InvalidScope, naming spec.scopes[1]", ready)
	}
	if rs.Status.ObservedGeneration != 3 {
		t.Errorf("observedGeneration = %d, want 3", rs.Status.ObservedGeneration)
	}
	if len(events.Events) != 1 || !strings.Contains(<-events.Events, "Warning "+uniregv1.ReasonInvalidScope) {
		t.Errorf("want exactly one InvalidScope warning event")
	}
	if err := validScopes(rs); err == nil {
		t.Error("validScopes accepts the scope the server refuses")
	}

	rs = reconcileTwice("good")
	if ready := meta.FindStatusCondition(rs.Status.Conditions, uniregv1.ConditionReady); ready == nil || ready.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v; want True", ready)
	}
	if len(events.Events) != 0 {
		t.Errorf("an event for a valid RegistryScope: %s", <-events.Events)
	}
}
