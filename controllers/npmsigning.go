package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// The npm registry signatures' key (docs/npm.md "Registry signatures"):
// one ECDSA P-256 key a Registry, made once in the Secret <name>-npm-signing
// and mounted into every replica, so all of them sign with the same key
// and npm audit signatures verifies whichever answered. The operator never
// replaces it; a rotation is the server's file format (the new key first,
// the old public key with its Expires: after it) written into the Secret by
// hand, then a restart of the pods.

const (
	npmSigningMount = "/etc/unireg/npm-signing"
	keyNPMSigning   = "npm-signing-key.pem"
)

func npmSigningSecretName(r *uniregv1.Registry) string { return r.Name + "-npm-signing" }

// reconcileNPMSigningKey creates the signing key Secret once, when npm is
// served; one of the name that is not the Registry's is a conflict.
func (r *RegistryReconciler) reconcileNPMSigningKey(ctx context.Context, reg *uniregv1.Registry) error {
	if !enabled(reg.Spec.NPM.Enabled) {
		return nil
	}
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: npmSigningSecretName(reg)}, s)
	if err == nil {
		return mustControl(reg, s, "Secret")
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	key, err := newNPMSigningKey()
	if err != nil {
		return err
	}
	s = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: npmSigningSecretName(reg), Labels: commonLabels(reg)},
		Data:       map[string][]byte{keyNPMSigning: key},
	}
	if err := controllerutil.SetControllerReference(reg, s, r.Scheme); err != nil {
		return err
	}
	return createOnly(ctx, r.Client, s, "Secret")
}

// newNPMSigningKey is a new P-256 private key, PKCS #8 PEM.
func newNPMSigningKey() ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
