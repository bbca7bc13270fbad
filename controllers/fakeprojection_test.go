package controllers

import (
	"context"
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

// Helpers of the tests that show the auth-store controller a state the live
// controllers repair too fast for the API server to show it: tokens whose
// Ready predates what now holds (a tightened policy, a bad scope, a bad
// hash), built on a fake client.

// testScheme knows the built-in kinds and unireg's.
func testScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	return scheme
}

// staleReady makes tok the order-th token created (a minute apart), Ready
// with a Secret <name>-token that holds hash, as the token controller left
// it; it returns the token and its Secret.
func staleReady(t *testing.T, scheme *runtime.Scheme, tok *uniregv1.RegistryToken, order int, hash string) []client.Object {
	t.Helper()
	tok.UID = types.UID(tok.Name + "-uid")
	tok.CreationTimestamp = metav1.NewTime(time.Date(2030, 1, 1, 0, order, 0, 0, time.UTC))
	tok.Status = uniregv1.RegistryTokenStatus{SecretName: tok.Name + "-token", Conditions: []metav1.Condition{{
		Type: uniregv1.ConditionReady, Status: metav1.ConditionTrue, Reason: uniregv1.ReasonIssued, LastTransitionTime: metav1.Now()}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tok.Namespace, Name: tok.Name + "-token",
		Labels: map[string]string{labelRegistry: registryOf(tok).Name}, Annotations: map[string]string{annotationTokenHash: hash}}}
	if err := ctrl.SetControllerReference(tok, secret, scheme); err != nil {
		t.Fatal(err)
	}
	return []client.Object{tok, secret}
}

// fakeClient holds objs, with the status subresources and the token index
// the controllers use.
func fakeClient(scheme *runtime.Scheme, objs ...client.Object) client.Client {
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithStatusSubresource(&uniregv1.Registry{}, &uniregv1.RegistryToken{}).
		WithIndex(&uniregv1.RegistryToken{}, indexRegistryRef, registryRefKeys).Build()
}

// projectOnce runs the auth-store controller once for reg and returns the
// store it wrote, which must parse.
func projectOnce(t *testing.T, c client.Client, scheme *runtime.Scheme, events record.EventRecorder, reg *uniregv1.Registry) *authstore.File {
	t.Helper()
	r := &AuthStoreReconciler{Client: c, Scheme: scheme, Recorder: events}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(reg)}); err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: reg.Namespace, Name: authSecretName(reg)}, s); err != nil {
		t.Fatal(err)
	}
	f, err := authstore.Parse(s.Data[keyAuthStore])
	if err != nil {
		t.Fatalf("the projected store is refused by the server's parser: %v\n%s", err, s.Data[keyAuthStore])
	}
	return f
}
