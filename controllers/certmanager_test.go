package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/controllers/nodemirror"
)

// spec.tls.issuerRef against cert-manager's own Certificate CRD
// (testdata/cert-manager, v1.21.2), installed into the suite's envtest
// while the manager runs, as on a cluster that installs cert-manager after
// the operator. envtest runs no cert-manager controller: the tests issue
// the Secret as cert-manager does. The CRD is uninstalled at the end, so
// the rest of the suite (TestTLSIssuerRefWithoutCertManager) sees a cluster
// without cert-manager again, in whichever order the tests run.

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// certManagerCRD reads the vendored Certificate CRD.
func certManagerCRD(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "cert-manager", "cert-manager.io_certificates.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &unstructured.Unstructured{}
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(body), 4096).Decode(&crd.Object); err != nil {
		t.Fatal(err)
	}
	if crd.GroupVersionKind() != crdGVK || crd.GetName() != "certificates.cert-manager.io" {
		t.Fatalf("testdata holds %s %s, want the Certificate CRD", crd.GroupVersionKind(), crd.GetName())
	}
	return crd
}

// installCertManager creates the Certificate CRD and waits until it is
// served.
func installCertManager(t *testing.T) {
	t.Helper()
	create(t, certManagerCRD(t))
	eventually(t, "the Certificate CRD established", func() (bool, error) {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdGVK)
		if err := k8sClient.Get(t.Context(), types.NamespacedName{Name: "certificates.cert-manager.io"}, crd); err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		return slices.ContainsFunc(conds, func(c any) bool {
			m, _ := c.(map[string]any)
			return m["type"] == "Established" && m["status"] == "True"
		}), nil
	})
}

// uninstallCertManager deletes the CRD (and so every Certificate) and
// waits until it is gone.
func uninstallCertManager(t *testing.T) {
	t.Helper()
	if err := k8sClient.Delete(context.Background(), certManagerCRD(t)); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	eventually(t, "the Certificate CRD gone", func() (bool, error) {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdGVK)
		err := k8sClient.Get(context.Background(), types.NamespacedName{Name: "certificates.cert-manager.io"}, crd)
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
}

func certificate(ns, name string) (*unstructured.Unstructured, error) {
	c := &unstructured.Unstructured{}
	c.SetGroupVersionKind(certificateGVK)
	return c, k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, c)
}

// waitCertificate waits for the Certificate, which the operator makes with
// no event to wait for but its retry.
func waitCertificate(t *testing.T, ns, name string, ok func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	t.Helper()
	var c *unstructured.Unstructured
	eventually(t, "Certificate "+name, func() (bool, error) {
		var err error
		c, err = certificate(ns, name)
		return err == nil && ok(c), client.IgnoreNotFound(err)
	})
	return c
}

func tlsReady(t *testing.T, ns, name string) *metav1.Condition {
	t.Helper()
	return meta.FindStatusCondition(getRegistry(t, ns, name).Status.Conditions, uniregv1.ConditionTLSReady)
}

func waitTLSReady(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var c *metav1.Condition
	eventually(t, "TLSReady "+string(status)+" "+reason, func() (bool, error) {
		c = tlsReady(t, ns, name)
		return c != nil && c.Status == status && c.Reason == reason, nil
	})
	return c
}

func issuedRegistry(ns, name, secret string, issuer uniregv1.CertificateIssuerRef) *uniregv1.Registry {
	return &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: uniregv1.RegistrySpec{
		Storage: uniregv1.RegistryStorage{EmptyDir: &uniregv1.EmptyDirStorage{}},
		TLS:     &uniregv1.TLSSpec{SecretName: secret, IssuerRef: &issuer},
	}}
}

// issue writes the Secret as cert-manager's issuing controller does for
// Certificate crt: a kubernetes.io/tls pair naming ip, the annotations
// naming the Certificate and its issuer, and cert-manager's label.
func issue(t *testing.T, ns, secret, crt, ip string) {
	t.Helper()
	cert, key := selfSigned(t, ip)
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secret,
			Labels: map[string]string{"controller.cert-manager.io/fao": "true"},
			Annotations: map[string]string{
				"cert-manager.io/certificate-name": crt,
				"cert-manager.io/issuer-name":      "ca",
				"cert-manager.io/issuer-kind":      "ClusterIssuer",
				"cert-manager.io/issuer-group":     "cert-manager.io",
				"cert-manager.io/ip-sans":          ip,
			}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key, "ca.crt": cert},
	})
}

// mountsTLS tells whether the Registry's Deployment serves TLS from
// Secret secret: the volume, its read-only mount and the server's flags.
func mountsTLS(t *testing.T, ns, name, secret string) bool {
	t.Helper()
	pod := deployment(t, ns, name).Spec.Template.Spec
	c := pod.Containers[0]
	return slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Name == "tls" && v.Secret != nil && v.Secret.SecretName == secret
	}) && slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "tls" && m.ReadOnly && m.MountPath == tlsMount
	}) && slices.Contains(c.Args, "--tls-cert-file="+tlsMount+"/tls.crt") && slices.Contains(c.Args, "--tls-key-file="+tlsMount+"/tls.key")
}

func TestCertManagerCertificate(t *testing.T) {
	needAPIServer(t)
	if _, err := certificate("default", "x"); !meta.IsNoMatchError(err) {
		t.Fatalf("cert-manager's Certificate kind is already served (%v): the suite must start without it", err)
	}
	// Made before cert-manager is installed: the retry must find the kind
	// that the manager's RESTMapper did not know when it started.
	early := namespace(t)
	create(t, issuedRegistry(early, "cm", "cm-cert", uniregv1.CertificateIssuerRef{Name: "ca", Kind: "ClusterIssuer"}))
	waitTLSReady(t, early, "cm", metav1.ConditionFalse, uniregv1.ReasonCertManagerNotInstalled)

	installCertManager(t)
	installed := true
	defer func() {
		if installed {
			uninstallCertManager(t)
		}
	}()

	t.Run("CertificateForTheServiceThenTheIssuedSecretServes", func(t *testing.T) { certificateThenIssuedSecret(t, early) })
	t.Run("IssuerRefChangeUpdatesTheCertificate", func(t *testing.T) { issuerRefChange(t, early) })
	t.Run("SecretNotIssuedForTheCertificateIsNeitherUsedNorOverwritten", secretNotIssued)
	t.Run("SomeoneElsesCertificateIsAConflict", foreignCertificate)
	t.Run("NodeMirrorTrustsOnlyTheIssuedSecret", mirrorTrustsOnlyIssued)
	t.Run("LongNamesLeaveOutTheCommonName", longNames)

	// cert-manager uninstalled while the operator runs: the manager's
	// RESTMapper still knows the kind, and the API server answers 404.
	uninstallCertManager(t)
	installed = false
	t.Run("UninstalledAgainIsNotInstalled", uninstalled)
}

// certificateThenIssuedSecret: the Certificate <name>-tls for the Service's
// names and ClusterIP, with the issuerRef, controlled by the Registry;
// TLSReady waits for the Secret, which the pods mount meanwhile (they
// start when it is issued, and never serve plain HTTP), then is True.
func certificateThenIssuedSecret(t *testing.T, ns string) {
	crt := waitCertificate(t, ns, "cm-tls", func(*unstructured.Unstructured) bool { return true })
	svc := &corev1.Service{}
	if err := get(ns, "cm", svc); err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP
	if ip == "" {
		t.Fatal("the Service has no ClusterIP")
	}
	spec, _, _ := unstructured.NestedMap(crt.Object, "spec")
	want := map[string]any{
		"secretName":  "cm-cert",
		"commonName":  "cm." + ns + ".svc",
		"dnsNames":    []any{"cm", "cm." + ns, "cm." + ns + ".svc", "cm." + ns + ".svc.cluster.local"},
		"ipAddresses": []any{ip},
		"issuerRef":   map[string]any{"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
	}
	if !equalJSON(spec, want) {
		t.Errorf("Certificate spec = %v, want %v", spec, want)
	}
	reg := getRegistry(t, ns, "cm")
	owner := metav1.GetControllerOf(crt)
	if owner == nil || owner.UID != reg.UID || owner.Kind != "Registry" || owner.BlockOwnerDeletion == nil || !*owner.BlockOwnerDeletion {
		t.Errorf("Certificate controller = %+v, want the Registry %s blocking its deletion (the garbage collector then deletes the Certificate with it)", owner, reg.UID)
	}
	if crt.GetLabels()[labelManagedBy] != managedBy {
		t.Errorf("Certificate labels = %v, want %s=%s", crt.GetLabels(), labelManagedBy, managedBy)
	}
	waitTLSReady(t, ns, "cm", metav1.ConditionFalse, uniregv1.ReasonSecretNotFound)
	if !mountsTLS(t, ns, "cm", "cm-cert") {
		t.Errorf("the Deployment does not serve TLS from cm-cert while it is being issued: %+v", deployment(t, ns, "cm").Spec.Template.Spec)
	}

	issue(t, ns, "cm-cert", "cm-tls", ip)
	// Nothing wakes the Registry (the Secret is cert-manager's): the retry.
	waitTLSReady(t, ns, "cm", metav1.ConditionTrue, uniregv1.ReasonCertificateNamesClusterIP)
	if !mountsTLS(t, ns, "cm", "cm-cert") {
		t.Errorf("the Deployment does not serve TLS from the issued cm-cert")
	}
	if got := getRegistry(t, ns, "cm").Status.URL; !strings.HasPrefix(got, "https://") {
		t.Errorf("status.url = %s, want https", got)
	}
	// cert-manager's Secret is left as cert-manager wrote it.
	sec := &corev1.Secret{}
	if err := get(ns, "cm-cert", sec); err != nil {
		t.Fatal(err)
	}
	if len(sec.OwnerReferences) != 0 || sec.Labels[labelManagedBy] != "" {
		t.Errorf("the operator took cert-manager's Secret: owners %v labels %v", sec.OwnerReferences, sec.Labels)
	}
}

// issuerRefChange: a new issuerRef reaches the Certificate, which stays the
// Registry's.
func issuerRefChange(t *testing.T, ns string) {
	reg := &uniregv1.Registry{}
	update(t, ns, "cm", reg, func() {
		reg.Spec.TLS.IssuerRef = &uniregv1.CertificateIssuerRef{Name: "team-ca", Kind: "Issuer", Group: "cert-manager.io"}
	})
	crt := waitCertificate(t, ns, "cm-tls", func(c *unstructured.Unstructured) bool {
		name, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "name")
		return name == "team-ca"
	})
	issuer, _, _ := unstructured.NestedMap(crt.Object, "spec", "issuerRef")
	if want := map[string]any{"name": "team-ca", "kind": "Issuer", "group": "cert-manager.io"}; !equalJSON(issuer, want) {
		t.Errorf("issuerRef = %v, want %v", issuer, want)
	}
	if !metav1.IsControlledBy(crt, reg) {
		t.Errorf("the updated Certificate is not controlled by the Registry: %v", crt.GetOwnerReferences())
	}
}

// secretNotIssued: a Secret of spec.tls.secretName that cert-manager did
// not issue for <name>-tls (another application's) is neither handed to
// cert-manager, which would overwrite it, nor served.
func secretNotIssued(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
	}{
		{"NoAnnotation", nil},
		{"AnotherCertificates", map[string]string{"cert-manager.io/certificate-name": "billing-tls"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := namespace(t)
			cert, key := selfSigned(t, "10.0.0.1")
			create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared", Annotations: tc.annotations},
				Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}})
			create(t, issuedRegistry(ns, "app", "shared", uniregv1.CertificateIssuerRef{Name: "ca", Kind: "ClusterIssuer"}))
			c := waitTLSReady(t, ns, "app", metav1.ConditionFalse, uniregv1.ReasonSecretNotIssued)
			if !strings.Contains(c.Message, "shared") || !strings.Contains(c.Message, "app-tls") {
				t.Errorf("TLSReady message %q names neither the Secret nor the Certificate", c.Message)
			}
			// The Registry has been reconciled past its Deployment by now,
			// had the operator gone on to it.
			waitConflict(t, ns, "app", "Secret shared")
			if _, err := certificate(ns, "app-tls"); !apierrors.IsNotFound(err) {
				t.Errorf("a Certificate writing the foreign Secret was made (err %v)", err)
			}
			dep := &corev1.PodSpec{}
			if d := deploymentIfAny(t, ns, "app"); d != nil {
				dep = &d.Spec.Template.Spec
			}
			for _, v := range dep.Volumes {
				if v.Secret != nil && v.Secret.SecretName == "shared" {
					t.Errorf("the Deployment mounts the foreign Secret: %+v", v)
				}
			}
		})
	}
}

// mirrorTrustsOnlyIssued: with issuerRef, the node mirror never hands the
// nodes the ca.crt of a Secret cert-manager did not issue for the
// Registry's Certificate; once the Secret is the issued one, it does.
func mirrorTrustsOnlyIssued(t *testing.T) {
	ns, name := "mirror-b", "foreignca"
	cert, key := selfSigned(t, "10.0.0.1")
	foreignCA, _ := selfSigned(t, "10.9.9.9")
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign-ca"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key, "ca.crt": foreignCA}}
	create(t, sec)
	reg := issuedRegistry(ns, name, "foreign-ca", uniregv1.CertificateIssuerRef{Name: "ca", Kind: "ClusterIssuer"})
	reg.Spec.Upstreams = mirroredRegistry(ns, name).Spec.Upstreams
	reg.Spec.NodeMirror = &uniregv1.NodeMirrorSpec{Enabled: true}
	create(t, reg)
	got := waitNodeMirror(t, ns, name, uniregv1.ReasonSecretNotIssued)
	if c := meta.FindStatusCondition(got.Status.Conditions, uniregv1.ConditionNodeMirrorReady); !strings.Contains(c.Message, "foreign-ca") {
		t.Errorf("NodeMirrorReady message %q does not name the Secret", c.Message)
	}
	cm := &corev1.ConfigMap{}
	err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: operatorNamespace, Name: name + "-node-mirror"}, cm)
	if err == nil && hasCA(mirrorConfig(t, name+"-node-mirror"), foreignCA) {
		t.Fatal("the node mirror hands the nodes the foreign Secret's CA")
	} else if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	// cert-manager issues it: the annotation names the Certificate.
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "foreign-ca"}, sec); err != nil {
		t.Fatal(err)
	}
	sec.Annotations = map[string]string{"cert-manager.io/certificate-name": name + "-tls"}
	if err := k8sClient.Update(t.Context(), sec); err != nil {
		t.Fatal(err)
	}
	mirrorDaemonSet(t, name+"-node-mirror")
	eventually(t, "the issued Secret's CA in the node mirror", func() (bool, error) {
		return hasCA(mirrorConfig(t, name+"-node-mirror"), foreignCA), nil
	})
}

func hasCA(cfg nodemirror.Config, ca []byte) bool {
	return slices.ContainsFunc(cfg.Hosts, func(h nodemirror.Host) bool { return bytes.Equal(h.CA, ca) })
}

// foreignCertificate: a Certificate <name>-tls the Registry does not
// control is someone else's: not modified, a ChildConflict.
func foreignCertificate(t *testing.T) {
	ns := namespace(t)
	theirs := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"secretName": "theirs",
			"dnsNames":   []any{"billing.example.com"},
			"issuerRef":  map[string]any{"name": "billing-ca", "kind": "Issuer"},
		},
	}}
	theirs.SetGroupVersionKind(certificateGVK)
	theirs.SetNamespace(ns)
	theirs.SetName("web-tls")
	create(t, theirs)
	before, err := certificate(ns, "web-tls")
	if err != nil {
		t.Fatal(err)
	}
	create(t, issuedRegistry(ns, "web", "web-cert", uniregv1.CertificateIssuerRef{Name: "ca", Kind: "ClusterIssuer"}))
	waitConflict(t, ns, "web", "Certificate web-tls")
	after, err := certificate(ns, "web-tls")
	if err != nil {
		t.Fatal(err)
	}
	if after.GetResourceVersion() != before.GetResourceVersion() || len(after.GetOwnerReferences()) != 0 {
		t.Errorf("someone else's Certificate was written: resourceVersion %s -> %s, owners %v",
			before.GetResourceVersion(), after.GetResourceVersion(), after.GetOwnerReferences())
	}
}

// longNames: cert-manager's webhook refuses a commonName over 64
// characters (internal/apis/certmanager/validation/certificate.go), which
// <name>.<namespace>.svc soon is; the DNS names carry the Service's names
// all the same, and clients ignore the common name when SANs are set.
func longNames(t *testing.T) {
	ns := namespace(t)
	name := "a-registry-whose-name-is-quite-long-for-a-common-name-x"
	create(t, issuedRegistry(ns, name, "long-cert", uniregv1.CertificateIssuerRef{Name: "ca", Kind: "ClusterIssuer"}))
	crt := waitCertificate(t, ns, name+"-tls", func(*unstructured.Unstructured) bool { return true })
	if len(name+"."+ns+".svc") <= 64 {
		t.Fatalf("the test's names are too short to test this")
	}
	if cn, ok, _ := unstructured.NestedString(crt.Object, "spec", "commonName"); ok {
		t.Errorf("commonName %q (%d characters) is longer than cert-manager's 64", cn, len(cn))
	}
	dns, _, _ := unstructured.NestedStringSlice(crt.Object, "spec", "dnsNames")
	if !slices.Contains(dns, name+"."+ns+".svc") {
		t.Errorf("dnsNames %v lack %s.%s.svc", dns, name, ns)
	}
}

// uninstalled: with cert-manager gone after the manager knew its kind, a
// Registry with issuerRef says CertManagerNotInstalled and still gets its
// Deployment.
func uninstalled(t *testing.T) {
	ns := namespace(t)
	create(t, issuedRegistry(ns, "late", "late-cert", uniregv1.CertificateIssuerRef{Name: "ca", Kind: "ClusterIssuer"}))
	c := waitTLSReady(t, ns, "late", metav1.ConditionFalse, uniregv1.ReasonCertManagerNotInstalled)
	if !strings.Contains(c.Message, "late-cert") {
		t.Errorf("TLSReady message %q does not name the Secret to provide instead", c.Message)
	}
	deployment(t, ns, "late")
	if r, err := registryReady(ns, "late"); err != nil || r == nil || r.Reason == uniregv1.ReasonReconcileError {
		t.Errorf("Ready = %+v (%v), want no reconcile error", r, err)
	}
}

func deploymentIfAny(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := get(ns, name, d); err != nil {
		if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return nil
	}
	return d
}

// equalJSON compares decoded JSON values.
func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
