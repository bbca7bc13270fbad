package controllers

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// A RegistryScope stored under an older, looser CRD can hold a scope the
// server refuses. A token using it is not Ready (InvalidScope) and is left
// out of the auth store, which still carries the other tokens: one bad
// scope must not make the pods refuse the whole store. The fake client
// stands in for the stored object today's API server would not admit.
func TestTokenWithAnInvalidRegistryScopeIsNeverProjected(t *testing.T) {
	scheme := testScheme()
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
		tok := &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name}, Spec: spec}
		tok.Spec.RegistryRef = uniregv1.RegistryReference{Name: "reg"}
		// Ready from before the scope went bad: the projection must not trust it.
		hashes[name] = authstore.HashToken(newToken(t))
		objs = append(objs, staleReady(t, scheme, tok, i, hashes[name])...)
	}
	c := fakeClient(scheme, objs...)

	tok := &uniregv1.RegistryToken{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: "team", Name: "uses-old"}, tok); err != nil {
		t.Fatal(err)
	}
	var invalid *invalidScopeError
	if _, err := tokenScopes(context.Background(), c, tok); !errors.As(err, &invalid) {
		t.Fatalf("tokenScopes of a token using an invalid RegistryScope: %v, want an invalid-scope error", err)
	}

	f := projectOnce(t, c, scheme, record.NewFakeRecorder(10), reg)
	if len(f.Tokens) != 1 || f.Tokens[0].Hash != hashes["good"] {
		t.Fatalf("projected %d tokens %+v, want only the good one", len(f.Tokens), f.Tokens)
	}
}
