package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// cert-manager is optional: the operator does not import it, and speaks to
// its Certificate kind as unstructured objects, only for Registries that
// set spec.tls.issuerRef.
var certificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// certManagerCertificateName is the annotation cert-manager puts on the
// Secrets a Certificate issues.
const certManagerCertificateName = "cert-manager.io/certificate-name"

// maxCommonName is the longest common name cert-manager accepts.
const maxCommonName = 64

// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;create;patch

// certificateName is the Certificate a Registry with spec.tls.issuerRef gets.
func certificateName(reg *uniregv1.Registry) string { return reg.Name + "-tls" }

// reconcileCertificate makes, for spec.tls.issuerRef, a cert-manager
// Certificate <name>-tls writing spec.tls.secretName for the Service's DNS
// names and ClusterIP. It returns a TLSReady reason and message when that
// cannot be done (cert-manager missing, the Secret someone else's), which
// the caller reports instead of checking the certificate; an error is a
// failure to retry (a Certificate of the name that is not the Registry's
// is a child conflict).
func (r *RegistryReconciler) reconcileCertificate(ctx context.Context, reg *uniregv1.Registry, svc *corev1.Service) (reason, msg string, err error) {
	t := reg.Spec.TLS
	if t == nil || t.IssuerRef == nil {
		return "", "", nil
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return uniregv1.ReasonWaitingForService, "waiting for the Service's ClusterIP, which the certificate must name", nil
	}
	notInstalled := "spec.tls.issuerRef needs cert-manager (the cert-manager.io/v1 Certificate kind is not served): install it, or drop issuerRef and put a certificate in Secret " + t.SecretName
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(certificateGVK)
	switch err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: certificateName(reg)}, live); {
	case meta.IsNoMatchError(err):
		return uniregv1.ReasonCertManagerNotInstalled, notInstalled, nil
	case err == nil:
		if err := mustControl(reg, live, "Certificate"); err != nil {
			return "", "", err
		}
	case apierrors.IsNotFound(err):
	default:
		return "", "", err
	}
	// cert-manager overwrites the Secret it is told to write: never point
	// it at a Secret it did not issue for this Certificate (another
	// application's, in the same namespace).
	sec := &corev1.Secret{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: t.SecretName}, sec); {
	case err == nil:
		if !issuedForRegistry(reg, sec) {
			return uniregv1.ReasonSecretNotIssued, fmt.Sprintf("Secret %s exists and was not issued for Certificate %s: it is left alone; name a new Secret in spec.tls.secretName, or delete it", t.SecretName, certificateName(reg)), nil
		}
	case apierrors.IsNotFound(err):
	default:
		return "", "", err
	}
	issuer := t.IssuerRef
	kind, group := issuer.Kind, issuer.Group
	if kind == "" {
		kind = "Issuer"
	}
	if group == "" {
		group = "cert-manager.io"
	}
	svcName := reg.Name + "." + reg.Namespace + ".svc"
	spec := map[string]any{
		"secretName":  t.SecretName,
		"dnsNames":    []any{reg.Name, reg.Name + "." + reg.Namespace, svcName, svcName + ".cluster.local"},
		"ipAddresses": []any{svc.Spec.ClusterIP},
		"issuerRef":   map[string]any{"name": issuer.Name, "kind": kind, "group": group},
	}
	// cert-manager's webhook refuses a common name over 64 characters;
	// clients ignore it when the certificate has SANs, as this one does.
	if len(svcName) <= maxCommonName {
		spec["commonName"] = svcName
	}
	want := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	want.SetGroupVersionKind(certificateGVK)
	want.SetNamespace(reg.Namespace)
	want.SetName(certificateName(reg))
	want.SetLabels(commonLabels(reg))
	want.SetOwnerReferences([]metav1.OwnerReference{*metav1.NewControllerRef(reg, uniregv1.GroupVersion.WithKind("Registry"))})
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(want), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		// A kind removed after the manager's RESTMapper learnt it
		// answers 404 rather than no match: an apply of a served kind
		// never does.
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return uniregv1.ReasonCertManagerNotInstalled, notInstalled, nil
		}
		return "", "", fmt.Errorf("apply Certificate %s: %w", certificateName(reg), err)
	}
	return "", "", nil
}

// issuedForRegistry reports whether the Registry may serve sec: always for
// a Secret it is given (spec.tls without issuerRef), and with issuerRef only
// when cert-manager issued it for the Registry's own Certificate.
func issuedForRegistry(reg *uniregv1.Registry, sec *corev1.Secret) bool {
	t := reg.Spec.TLS
	return t == nil || t.IssuerRef == nil || sec.Annotations[certManagerCertificateName] == certificateName(reg)
}
