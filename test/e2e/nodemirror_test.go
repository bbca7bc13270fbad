//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/controllers/nodemirror"
)

// The node mirror steps run only where the suite knows the node's
// containerd config_path (E2E_NODE_HOSTS_DIR) and can reach its containerd
// (E2E_NODE_CTR): make test-e2e-local sets both for the local cluster, whose
// node is this host.
const (
	mirrorRegistry = "cache"
	mirrorImage    = "docker.io/library/app:v1"
)

// 9. A Registry with docker.io as an upstream and the node mirror on: a CNCF
// Distribution on this host stands in for Docker Hub (behind a proxy that
// counts what unireg fetches). Only after NodeMirrorReady does a pod name
// docker.io/library/app:v1; it starts, pulled through unireg; with the
// upstream stopped and the node's copy removed, a new pod still starts from
// unireg's cache; disabling the mirror leaves certs.d as it was.
func (s *suite) nodeMirror(t *testing.T) {
	s.k.t = t
	if s.hostsDir == "" || os.Getenv("E2E_NODE_CTR") == "" {
		t.Skip("E2E_NODE_HOSTS_DIR and E2E_NODE_CTR are not set (make test-e2e-local sets them)")
	}
	before := readTree(t, s.hostsDir)

	up := startUpstream(t, s.k.root, s.k.nodeAddress())
	s.upstream = up
	s.mirrorDigest = up.pushApp(t)

	s.k.mustRun("", "create", "namespace", s.mirrorNS)
	reg := &uniregv1.Registry{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.mirrorNS, Name: mirrorRegistry},
		Spec: uniregv1.RegistrySpec{
			Upstreams:  &uniregv1.UpstreamsSpec{OCI: []uniregv1.OCIUpstream{{Name: "docker.io", URL: up.url}}},
			NodeMirror: &uniregv1.NodeMirrorSpec{Enabled: true, HostsDir: s.hostsDir},
		},
	}
	if err := s.k.c.Create(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	s.k.waitRegistryReady(s.mirrorNS, mirrorRegistry, 1, 5*time.Minute)
	s.waitNodeMirrorReady(t)
	svc := &corev1.Service{}
	if err := s.k.get(s.mirrorNS, mirrorRegistry, svc); err != nil {
		t.Fatal(err)
	}
	mirrorHost := fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	hosts := readFile(t, filepath.Join(s.hostsDir, "docker.io", "hosts.toml"))
	if !strings.Contains(hosts, `"http://`+mirrorHost) || !strings.Contains(hosts, `server = "`+up.url) {
		t.Fatalf("docker.io/hosts.toml does not point at %s with %s as the fallback:\n%s", mirrorHost, up.url, hosts)
	}

	// The registry's own pod restarts while the mirror points docker.io
	// (its own image's host) at it.
	old := map[string]bool{}
	for _, p := range s.k.readyPods(s.mirrorNS, mirrorRegistry) {
		old[p.Name] = true
		if err := s.k.c.Delete(context.Background(), &p); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 3*time.Minute, "a new registry pod Ready while the mirror points at it", func() (bool, string) {
		pods := s.k.readyPods(s.mirrorNS, mirrorRegistry)
		return len(pods) == 1 && !old[pods[0].Name] && pods[0].DeletionTimestamp == nil, fmt.Sprintf("%d ready pods", len(pods))
	})
	s.k.waitRegistryReady(s.mirrorNS, mirrorRegistry, 1, 3*time.Minute)
	// A Ready pod is not yet where the ClusterIP leads: until kube-proxy
	// has the new endpoint, containerd's mirror is refused and it falls
	// back to the upstream (as designed, and what the counts below would
	// call a pull that bypassed the cache). Wait until the node reaches
	// the new pod through the Service, as containerd will.
	eventually(t, time.Minute, "the Service's ClusterIP answers from the node", func() (bool, string) {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + mirrorHost + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})

	s.runMirrored(t, "app")
	if m, b := up.manifests.Load(), up.blobs.Load(); m == 0 || b == 0 {
		t.Fatalf("the upstream served unireg %d manifest and %d blob requests: the node did not pull through unireg's cache", m, b)
	}
	if n := up.fromContainerd.Load(); n != 0 {
		t.Fatalf("containerd went to the upstream itself %d times: it did not use the mirror", n)
	}

	// The upstream goes away and so does the node's copy: unireg's cache
	// alone serves the next pod.
	up.stop()
	s.deleteWorkload(t, "app")
	s.removeNodeImage(t)
	s.runMirrored(t, "app-from-cache")

	s.setNodeMirror(t, func(reg *uniregv1.Registry) { reg.Spec.NodeMirror.Enabled = false })
	eventually(t, 3*time.Minute, "certs.d back as it was", func() (bool, string) {
		after := readTree(t, s.hostsDir)
		return treeEqual(before, after), fmt.Sprintf("before %v, now %v", keys(before), keys(after))
	})
	s.deleteWorkload(t, "app-from-cache")
}

// 10. The same with TLS: a certificate from a CA the test makes, naming the
// Service's ClusterIP; the mirror writes the CA; a pod pulls through HTTPS
// (the upstream is still stopped, so only unireg can serve it).
func (s *suite) nodeMirrorTLS(t *testing.T) {
	s.k.t = t
	if s.upstream == nil {
		t.Skip("the node mirror step did not run")
	}
	before := readTree(t, s.hostsDir)
	svc := &corev1.Service{}
	if err := s.k.get(s.mirrorNS, mirrorRegistry, svc); err != nil {
		t.Fatal(err)
	}
	mirrorHost := fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	caPEM, certPEM, keyPEM := selfSignedChain(t, svc.Spec.ClusterIP, mirrorRegistry+"."+s.mirrorNS+".svc")
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.mirrorNS, Name: "cache-tls"},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": caPEM},
	}
	if err := s.k.c.Create(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	s.setNodeMirror(t, func(reg *uniregv1.Registry) {
		reg.Spec.TLS = &uniregv1.TLSSpec{SecretName: "cache-tls"}
		reg.Spec.NodeMirror.Enabled = true
	})
	reg := s.k.waitRegistryReady(s.mirrorNS, mirrorRegistry, 1, 5*time.Minute)
	if !strings.HasPrefix(reg.Status.URL, "https://") {
		t.Fatalf("status.url = %q with TLS on", reg.Status.URL)
	}
	eventually(t, time.Minute, "TLSReady", func() (bool, string) {
		if err := s.k.get(s.mirrorNS, mirrorRegistry, reg); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionTLSReady)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", c)
	})
	s.waitNodeMirrorReady(t)
	eventually(t, 2*time.Minute, "docker.io/hosts.toml pointing at https://"+mirrorHost+" with the CA", func() (bool, string) {
		hosts, err := os.ReadFile(filepath.Join(s.hostsDir, "docker.io", "hosts.toml"))
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(hosts), `"https://`+mirrorHost) && strings.Contains(string(hosts), "ca = "), string(hosts)
	})
	if got := readFile(t, filepath.Join(s.hostsDir, "docker.io", nodemirror.CAFile)); got != string(caPEM) {
		t.Fatalf("docker.io/%s is not the Secret's CA:\n%s", nodemirror.CAFile, got)
	}

	s.removeNodeImage(t)
	s.runMirrored(t, "app-over-https")

	s.deleteWorkload(t, "app-over-https")
	// Deleting the Registry waits for the node pods to clean up (the
	// finalizer); certs.d is then as it was before this step.
	if err := s.k.c.Delete(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the Registry gone and certs.d back as it was", func() (bool, string) {
		err := s.k.get(s.mirrorNS, mirrorRegistry, &uniregv1.Registry{})
		after := readTree(t, s.hostsDir)
		return apierrors.IsNotFound(err) && treeEqual(before, after), fmt.Sprintf("get: %v; before %v, now %v", err, keys(before), keys(after))
	})
	if _, err := os.Stat(filepath.Join(s.hostsDir, "docker.io")); err == nil && before["docker.io/hosts.toml"] == "" {
		t.Fatalf("docker.io/ is left in %s", s.hostsDir)
	}
}

func (s *suite) waitNodeMirrorReady(t *testing.T) {
	t.Helper()
	eventually(t, 3*time.Minute, "NodeMirrorReady", func() (bool, string) {
		reg := &uniregv1.Registry{}
		if err := s.k.get(s.mirrorNS, mirrorRegistry, reg); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionNodeMirrorReady)
		if c == nil {
			return false, "no NodeMirrorReady condition"
		}
		return c.Status == metav1.ConditionTrue && c.ObservedGeneration == reg.Generation, c.Reason + ": " + c.Message
	})
}

func (s *suite) setNodeMirror(t *testing.T, change func(*uniregv1.Registry)) {
	t.Helper()
	reg := &uniregv1.Registry{}
	eventually(t, time.Minute, "the Registry updated", func() (bool, string) {
		if err := s.k.get(s.mirrorNS, mirrorRegistry, reg); err != nil {
			return false, err.Error()
		}
		change(reg)
		if err := s.k.c.Update(context.Background(), reg); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// runMirrored runs a Deployment of docker.io/library/app:v1 (always
// pulled) and checks it runs the upstream's image.
func (s *suite) runMirrored(t *testing.T, name string) {
	t.Helper()
	s.createWorkloadIn(t, s.mirrorNS, name, mirrorImage, "")
	s.k.waitDeploymentRolledOut(s.mirrorNS, name, 3*time.Minute)
	var list corev1.PodList
	if err := s.k.c.List(context.Background(), &list, client.InNamespace(s.mirrorNS), client.MatchingLabels{"app": name}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || !strings.HasSuffix(list.Items[0].Status.ContainerStatuses[0].ImageID, s.mirrorDigest) {
		t.Fatalf("%s does not run %s@%s", name, mirrorImage, s.mirrorDigest)
	}
}

func (s *suite) deleteWorkload(t *testing.T, name string) {
	t.Helper()
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: s.mirrorNS, Name: name}}
	if err := s.k.c.Delete(context.Background(), d, client.PropagationPolicy(metav1.DeletePropagationForeground)); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the pods of "+name+" gone", func() (bool, string) {
		var list corev1.PodList
		if err := s.k.c.List(context.Background(), &list, client.InNamespace(s.mirrorNS), client.MatchingLabels{"app": name}); err != nil {
			return false, err.Error()
		}
		return len(list.Items) == 0, fmt.Sprintf("%d pods", len(list.Items))
	})
}

// removeNodeImage deletes every image record of docker.io/library/app from
// the node's containerd, and its content with them.
func (s *suite) removeNodeImage(t *testing.T) {
	t.Helper()
	ctr := strings.Fields(os.Getenv("E2E_NODE_CTR"))
	run := func(args ...string) string {
		all := append(append([]string{}, ctr[1:]...), append([]string{"-n", "k8s.io"}, args...)...)
		out, err := exec.Command(ctr[0], all...).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var refs []string
	for _, ref := range strings.Fields(run("images", "ls", "-q")) {
		if strings.HasPrefix(ref, "docker.io/library/app:") || strings.HasPrefix(ref, "docker.io/library/app@") {
			refs = append(refs, ref)
		}
	}
	if len(refs) == 0 {
		t.Fatalf("the node has no image docker.io/library/app to remove")
	}
	run(append([]string{"images", "rm", "--sync"}, refs...)...)
	for _, ref := range strings.Fields(run("images", "ls", "-q")) {
		if strings.HasPrefix(ref, "docker.io/library/app") {
			t.Fatalf("the node still has %s", ref)
		}
	}
}

// upstream is a CNCF Distribution on loopback behind a counting proxy on
// every interface, which pods reach at the node's address.
type upstream struct {
	url, direct      string       // the proxy (what unireg is given), Distribution itself
	manifests, blobs atomic.Int64 // what unireg asked for
	fromContainerd   atomic.Int64 // containerd's fallback to the upstream itself
	stop             func()
}

func startUpstream(t, owner *testing.T, hostIP string) *upstream {
	t.Helper()
	bin := tool(t, "E2E_DISTRIBUTION", "bin/distribution")
	dir := owner.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %q\nhttp:\n  addr: 127.0.0.1:%d\n  secret: e2e\n", filepath.Join(dir, "storage"), port)
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600)
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	logf, _ := os.Create(filepath.Join(dir, "distribution.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	u := &upstream{direct: fmt.Sprintf("http://127.0.0.1:%d", port)}
	eventually(t, time.Minute, "CNCF Distribution live", func() (bool, string) {
		resp, err := httpClient.Get(u.direct + "/v2/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	target, _ := url.Parse(u.direct)
	proxy := httputil.NewSingleHostReverseProxy(target)
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.UserAgent(), "containerd"):
			u.fromContainerd.Add(1)
		case strings.HasPrefix(r.URL.Path, "/v2/library/app/manifests/"):
			u.manifests.Add(1)
		case strings.HasPrefix(r.URL.Path, "/v2/library/app/blobs/"):
			u.blobs.Add(1)
		}
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	u.url = fmt.Sprintf("http://%s:%d", hostIP, ln.Addr().(*net.TCPAddr).Port)
	stopped := false
	u.stop = func() {
		if !stopped {
			stopped = true
			srv.Close()
			cmd.Process.Kill()
			cmd.Wait()
			logf.Close()
		}
	}
	owner.Cleanup(u.stop)
	return u
}

// pushApp pushes library/app:v1 to the upstream: the pause binary as /app,
// so its layer is not the workload's, and returns its digest.
func (u *upstream) pushApp(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "app-layout")
	digest := pauseImageLayout(t, "app", "app", dir)
	ref := strings.TrimPrefix(u.direct, "http://") + "/library/app:v1"
	if out, err := crane(t, t.TempDir(), "push", dir, ref); err != nil {
		t.Fatalf("crane push %s: %v\n%s", ref, err, out)
	}
	return digest
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// readTree is every regular file under dir, by relative path, with its
// content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func treeEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// selfSignedChain makes a CA and a server certificate it signs for ip and
// dnsName, as PEM.
func selfSignedChain(t *testing.T, ip, dnsName string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unireg e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{dnsName}, IPAddresses: []net.IP{net.ParseIP(ip)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}
