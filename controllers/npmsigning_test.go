package controllers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// Every replica signs npm versions with one key: a P-256 key made once in
// the Secret <name>-npm-signing, controlled by the Registry, mounted into
// the pods and passed as --npm-signing-key-file; kept as it is across
// reconciles; none when npm is off.
func TestNPMSigningKeyIsOneSecretForEveryReplica(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signed"}})
	pod := deployment(t, ns, "signed").Spec.Template.Spec
	if !slices.Contains(pod.Containers[0].Args, "--npm-signing-key-file=/etc/unireg/npm-signing/npm-signing-key.pem") {
		t.Errorf("args %q lack the signing key file", pod.Containers[0].Args)
	}
	if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Secret != nil && v.Secret.SecretName == "signed-npm-signing" && *v.Secret.DefaultMode == 0o400
	}) {
		t.Errorf("the signing key Secret is not a volume: %+v", pod.Volumes)
	}
	key := func() []byte {
		s := &corev1.Secret{}
		if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "signed-npm-signing"}, s); err != nil {
			t.Fatal(err)
		}
		if c := metav1.GetControllerOf(s); c == nil || c.Kind != "Registry" || c.Name != "signed" {
			t.Fatalf("the key Secret is not the Registry's: %+v", s.OwnerReferences)
		}
		return s.Data["npm-signing-key.pem"]
	}
	first := key()
	block, _ := pem.Decode(first)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("not a PKCS #8 PEM key: %q", first[:min(len(first), 20)])
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if ec, ok := k.(*ecdsa.PrivateKey); err != nil || !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("key %T %v, want ECDSA P-256", k, err)
	}
	touch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":0}}`))
	if err := k8sClient.Patch(t.Context(), &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signed"}}, touch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the scaled Deployment", func() (bool, error) {
		return *deployment(t, ns, "signed").Spec.Replicas == 0, nil
	})
	if string(key()) != string(first) {
		t.Fatal("a reconcile replaced the signing key: every signature made before would stop verifying")
	}

	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ocionly"},
		Spec: uniregv1.RegistrySpec{NPM: uniregv1.NPMSpec{Enabled: ptr.To(false)}}})
	deployment(t, ns, "ocionly")
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "ocionly-npm-signing"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a Registry without npm got a signing key (err %v)", err)
	}
}
