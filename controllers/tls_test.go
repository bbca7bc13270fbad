package controllers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/controllers/nodemirror"
)

// selfSigned is a PEM certificate and key naming ips.
func selfSigned(t *testing.T, ips ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "registry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd})
}

// spec.tls: the Secret's pair is mounted and passed as the server's TLS
// flags, the probes and status.url say https, TLSReady warns while the
// certificate does not name the ClusterIP, and the node mirror points
// containerd at https with the certificate as the CA, also for the
// ClusterIP:port host pod images name.
func TestTLSReachesTheServerStatusAndNodeMirror(t *testing.T) {
	needAPIServer(t)
	ns := "mirror-c"
	cert, key := selfSigned(t, "10.255.255.1")
	tlsSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "registry-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}}
	create(t, tlsSecret)
	reg := mirroredRegistry(ns, "secure")
	reg.Spec.TLS = &uniregv1.TLSSpec{SecretName: "registry-tls"}
	create(t, reg)

	pod := deployment(t, ns, "secure").Spec.Template.Spec
	c := pod.Containers[0]
	for _, want := range []string{"--tls-cert-file=/etc/unireg/tls/tls.crt", "--tls-key-file=/etc/unireg/tls/tls.key"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %s", c.Args, want)
		}
	}
	if c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS || c.LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("probes are not HTTPS: %+v", c.ReadinessProbe.HTTPGet)
	}
	mounted := slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Name == "tls" && v.Secret != nil && v.Secret.SecretName == "registry-tls"
	}) && slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "tls" && m.ReadOnly && m.MountPath == "/etc/unireg/tls"
	})
	if !mounted {
		t.Errorf("the TLS Secret is not mounted read-only at /etc/unireg/tls: %+v", pod.Volumes)
	}

	var got *uniregv1.Registry
	eventually(t, "TLSReady CertificateMissingClusterIP and an https URL", func() (bool, error) {
		got = getRegistry(t, ns, "secure")
		c := meta.FindStatusCondition(got.Status.Conditions, uniregv1.ConditionTLSReady)
		return c != nil && c.Reason == uniregv1.ReasonCertificateMissingClusterIP && strings.HasPrefix(got.Status.URL, "https://"), nil
	})
	svc := &corev1.Service{}
	if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "secure"}, svc); err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP

	// A certificate that names the ClusterIP: the warning goes (at the
	// Registry's next reconcile: the Secret is not the operator's to watch).
	cert, key = selfSigned(t, ip)
	tlsSecret.Data = map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key}
	if err := k8sClient.Update(t.Context(), tlsSecret); err != nil {
		t.Fatal(err)
	}
	touch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"test/touch":"1"}}}`))
	if err := k8sClient.Patch(t.Context(), got, touch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "TLSReady True", func() (bool, error) {
		c := meta.FindStatusCondition(getRegistry(t, ns, "secure").Status.Conditions, uniregv1.ConditionTLSReady)
		return c != nil && c.Status == metav1.ConditionTrue, nil
	})

	mirrorDaemonSet(t, "secure-node-mirror")
	var cfg nodemirror.Config
	eventually(t, "the node mirror's https configuration", func() (bool, error) {
		cfg = mirrorConfig(t, "secure-node-mirror")
		return len(cfg.Hosts) == 3, nil
	})
	mirror := "https://" + ip + ":5000"
	for i, name := range []string{"docker.io", "ghcr.io", ip + ":5000"} {
		h := cfg.Hosts[i]
		if h.Name != name || h.Mirror != mirror || len(h.CA) == 0 {
			t.Errorf("host %d = %s mirror %s CA %d bytes; want %s by %s with the CA", i, h.Name, h.Mirror, len(h.CA), name, mirror)
		}
	}
	if !strings.Contains(string(nodemirror.Render(cfg, cfg.Hosts[0])), `ca = "/etc/containerd/certs.d/docker.io/unireg-ca.crt"`) {
		t.Errorf("hosts.toml does not name the CA:\n%s", nodemirror.Render(cfg, cfg.Hosts[0]))
	}
}

// TestTLSIssuerRefWithoutCertManager: spec.tls.issuerRef on a cluster
// without cert-manager (envtest serves no cert-manager.io kinds) says so in
// TLSReady and fails nothing else: the Deployment is still made.
func TestTLSIssuerRefWithoutCertManager(t *testing.T) {
	ns := namespace(t)
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "issued"}, Spec: uniregv1.RegistrySpec{
		TLS: &uniregv1.TLSSpec{SecretName: "issued-tls", IssuerRef: &uniregv1.CertificateIssuerRef{Name: "ca", Kind: "ClusterIssuer"}},
	}}
	create(t, reg)
	eventually(t, "TLSReady False, CertManagerNotInstalled", func() (bool, error) {
		c := meta.FindStatusCondition(getRegistry(t, ns, "issued").Status.Conditions, uniregv1.ConditionTLSReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == uniregv1.ReasonCertManagerNotInstalled &&
			strings.Contains(c.Message, "issued-tls"), nil
	})
	dep := &appsv1.Deployment{}
	eventually(t, "the Deployment made all the same", func() (bool, error) { return get(ns, "issued", dep) == nil, nil })
	if got := getRegistry(t, ns, "issued").Spec.TLS.IssuerRef.Group; got != "cert-manager.io" {
		t.Fatalf("issuerRef.group defaulted to %q, want cert-manager.io", got)
	}
}
