package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// A RegistryScope stored under an older, looser CRD can hold a scope the
// server refuses. A token using it is not Ready (InvalidScope) and is left
// out of the auth store, which still carries the other tokens: one bad
// scope must not make the pods refuse the whole store. The fake client
// stands in for the stored object today's API server would not admit.
func TestTokenWithAnInvalidRegistryScopeIsNeverProjected(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "reg", UID: "reg-uid"}}
	bad := &uniregv1.RegistryScope{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "old"},
		Spec: uniregv1.RegistryScopeSpec{Scopes: []string{"oci:repository:a\x00b:pull"}}}
	objs := []client.Object{reg, bad}
	hashes := map[string]string{}
	for i, name := range []string{"good", "uses-old"} {
		spec := tokenSpec("oci:repository:team/app:pull")
		if name == "uses-old" {
			spec.ScopeRefs = []corev1.LocalObjectReference{{Name: "old"}}
		}
		tok := &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, UID: types.UID(name + "-uid"),
			CreationTimestamp: metav1.NewTime(time.Date(2030, 1, 1, 0, i, 0, 0, time.UTC))}, Spec: spec}
		tok.Spec.RegistryRef = uniregv1.RegistryReference{Name: "reg"}
		// Ready from before the scope went bad: the projection must not trust it.
		tok.Status = uniregv1.RegistryTokenStatus{SecretName: name + "-token", Conditions: []metav1.Condition{{
			Type: uniregv1.ConditionReady, Status: metav1.ConditionTrue, Reason: uniregv1.ReasonIssued, LastTransitionTime: metav1.Now()}}}
		hashes[name] = authstore.HashToken(newToken(t))
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name + "-token",
			Annotations: map[string]string{annotationTokenHash: hashes[name]}}}
		if err := ctrl.SetControllerReference(tok, secret, scheme); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, tok, secret)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&uniregv1.Registry{}, &uniregv1.RegistryToken{}).
		WithIndex(&uniregv1.RegistryToken{}, indexRegistryRef, registryRefKeys).Build()

	tok := &uniregv1.RegistryToken{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "team", Name: "uses-old"}, tok); err != nil {
		t.Fatal(err)
	}
	var invalid *invalidScopeError
	if _, err := tokenScopes(context.Background(), c, tok); !errors.As(err, &invalid) {
		t.Fatalf("tokenScopes of a token using an invalid RegistryScope: %v, want an invalid-scope error", err)
	}

	r := &AuthStoreReconciler{Client: c, Scheme: scheme, Recorder: record.NewFakeRecorder(10)}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(reg)}); err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "team", Name: "reg-auth"}, s); err != nil {
		t.Fatal(err)
	}
	f, err := authstore.Parse(s.Data[keyAuthStore])
	if err != nil {
		t.Fatalf("the auth store written does not parse: %v", err)
	}
	if len(f.Tokens) != 1 || f.Tokens[0].Hash != hashes["good"] {
		t.Fatalf("projected %d tokens %+v, want only the good one", len(f.Tokens), f.Tokens)
	}
}
