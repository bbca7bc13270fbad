package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// The manager as cmd/manager builds it, against a real etcd and
// kube-apiserver (envtest, KUBEBUILDER_ASSETS: see `make unit`), running as
// the operator's ServiceAccount with exactly the rights the namespaced
// install gives it (config/namespaced): manager-role (config/rbac/role.yaml)
// through a RoleBinding in the watched namespace only, and
// metrics-auth-role cluster-wide. So these tests also prove the generated
// role is enough for the controllers' work.

const (
	watchedNS   = "team-watched"
	unwatchedNS = "team-unwatched"
	testImage   = "example.test/unireg/registry:v9.9.9"
	operatorSA  = "system:serviceaccount:unireg-system:controller-manager"
)

var (
	admin       client.Client
	adminCfg    *rest.Config
	metricsAddr string
	skipWhy     string
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		skipWhy = "KUBEBUILDER_ASSETS is not set: run `make unit` (hack/build-envtest.sh builds etcd and kube-apiserver)"
		os.Exit(m.Run())
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		panic(err)
	}
	code, err := runWithManager(cfg, m)
	env.Stop()
	if err != nil {
		panic(err)
	}
	os.Exit(code)
}

func runWithManager(cfg *rest.Config, m *testing.M) (int, error) {
	adminCfg = cfg
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	var err error
	admin, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	if err := grantOperatorRights(ctx); err != nil {
		return 0, err
	}
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	metricsAddr = fmt.Sprintf("127.0.0.1:%d", port)
	s, err := parseFlags([]string{
		"--watch-namespaces=" + watchedNS,
		"--metrics-bind-address=" + metricsAddr,
		"--health-probe-bind-address=0",
		"--registry-image=" + testImage,
	}, io.Discard)
	if err != nil {
		return 0, err
	}
	asOperator := rest.CopyConfig(cfg)
	asOperator.Impersonate = rest.ImpersonationConfig{
		UserName: operatorSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:unireg-system", "system:authenticated"},
	}
	mgr, err := newManager(asOperator, s)
	if err != nil {
		return 0, err
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	code := m.Run()
	cancel()
	return code, <-done
}

// grantOperatorRights makes the namespaces and gives the operator's
// ServiceAccount what config/namespaced gives it.
func grantOperatorRights(ctx context.Context) error {
	for _, ns := range []string{watchedNS, unwatchedNS} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
	}
	for _, file := range []string{"role.yaml", "metrics_auth_role.yaml", "metrics_reader_role.yaml"} {
		role, err := clusterRoleFile(file)
		if err != nil {
			return err
		}
		if err := admin.Create(ctx, role); err != nil {
			return err
		}
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "controller-manager", Namespace: "unireg-system"}}
	if err := admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: watchedNS, Name: "manager-rolebinding"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "manager-role"},
		Subjects:   subject,
	}); err != nil {
		return err
	}
	return admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "metrics-auth-rolebinding"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-auth-role"},
		Subjects:   subject,
	})
}

func clusterRoleFile(file string) (*rbacv1.ClusterRole, error) {
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", file))
	if err != nil {
		return nil, err
	}
	role := &rbacv1.ClusterRole{}
	if _, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(b, nil, role); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return role, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func needAPIServer(t *testing.T) {
	t.Helper()
	if admin == nil {
		t.Skip(skipWhy)
	}
}

// eventually polls cond until it holds, or fails the test after 30 s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within 30s (last: %s)", what, last)
}

func testRegistry(ns string) *uniregv1.Registry {
	return &uniregv1.Registry{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared"},
		Spec:       uniregv1.RegistrySpec{Storage: uniregv1.RegistryStorage{Filesystem: &uniregv1.FilesystemStorage{}}},
	}
}

// TestWatchNamespacesReconcilesOnlyThose: with --watch-namespaces, a
// Registry of a watched namespace gets its Deployment, volume, token and
// auth store (with only the namespaced rights), and is updated when its
// spec changes; a Registry of any other namespace is left alone.
func TestWatchNamespacesReconcilesOnlyThose(t *testing.T) {
	needAPIServer(t)
	ctx := context.Background()
	// The unwatched one first: by the time the watched one is done, the
	// manager had every chance to touch it.
	if err := admin.Create(ctx, testRegistry(unwatchedNS)); err != nil {
		t.Fatal(err)
	}
	reg := testRegistry(watchedNS)
	if err := admin.Create(ctx, reg); err != nil {
		t.Fatal(err)
	}
	tok := &uniregv1.RegistryToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: watchedNS, Name: "ci"},
		Spec: uniregv1.RegistryTokenSpec{
			User:   "ci",
			Scopes: []string{"oci:repository:" + watchedNS + "/*:pull"},
		},
	}
	tok.Spec.RegistryRef.Name = reg.Name
	if err := admin.Create(ctx, tok); err != nil {
		t.Fatal(err)
	}

	eventually(t, "the watched Registry's Deployment, with the --registry-image", func() (bool, string) {
		d := &appsv1.Deployment{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: watchedNS, Name: reg.Name}, d); err != nil {
			return false, err.Error()
		}
		got := d.Spec.Template.Spec.Containers[0].Image
		return got == testImage, "image " + got
	})
	for _, name := range []string{reg.Name + "-data"} {
		if err := admin.Get(ctx, client.ObjectKey{Namespace: watchedNS, Name: name}, &corev1.PersistentVolumeClaim{}); err != nil {
			t.Errorf("claim %s: %v", name, err)
		}
	}
	eventually(t, "the token Ready and projected into the auth store", func() (bool, string) {
		got := &uniregv1.RegistryToken{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(tok), got); err != nil {
			return false, err.Error()
		}
		if !meta.IsStatusConditionTrue(got.Status.Conditions, uniregv1.ConditionReady) {
			return false, fmt.Sprintf("token conditions %+v", got.Status.Conditions)
		}
		r := &uniregv1.Registry{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(reg), r); err != nil {
			return false, err.Error()
		}
		if c := meta.FindStatusCondition(r.Status.Conditions, uniregv1.ConditionReady); c != nil && c.Reason == "ReconcileError" {
			return false, "registry: " + c.Message
		}
		return r.Status.Tokens == 1, fmt.Sprintf("registry status %+v", r.Status)
	})

	// An update goes through too (the rights include update).
	if err := admin.Get(ctx, client.ObjectKeyFromObject(reg), reg); err != nil {
		t.Fatal(err)
	}
	reg.Spec.Replicas = ptr.To[int32](0)
	if err := admin.Update(ctx, reg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Deployment scaled to 0", func() (bool, string) {
		d := &appsv1.Deployment{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: watchedNS, Name: reg.Name}, d); err != nil {
			return false, err.Error()
		}
		return d.Spec.Replicas != nil && *d.Spec.Replicas == 0, fmt.Sprintf("replicas %v", d.Spec.Replicas)
	})

	// The other namespace: nothing made, no status written.
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &corev1.Secret{}} {
		name := reg.Name
		if _, ok := obj.(*corev1.Secret); ok {
			name += "-jwt"
		}
		err := admin.Get(ctx, client.ObjectKey{Namespace: unwatchedNS, Name: name}, obj)
		if !apierrors.IsNotFound(err) {
			t.Errorf("%T %s/%s in the unwatched namespace: %v, want not found", obj, unwatchedNS, name, err)
		}
	}
	other := &uniregv1.Registry{}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: unwatchedNS, Name: reg.Name}, other); err != nil {
		t.Fatal(err)
	}
	if len(other.Status.Conditions) != 0 || other.Status.ObservedGeneration != 0 {
		t.Errorf("the unwatched Registry's status was written: %+v", other.Status)
	}
}

// scrape GETs /metrics over HTTPS (the manager's certificate is self-signed)
// with the bearer token, if any.
func scrape(t *testing.T, token string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a self-signed test certificate
	}}
	var status int
	var body string
	eventually(t, "the metrics server answering", func() (bool, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		status, body = resp.StatusCode, string(b)
		return true, ""
	})
	return status, body
}

// tokenOf a new ServiceAccount of the watched namespace.
func tokenOf(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: watchedNS, Name: name}}
	if err := admin.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(watchedNS).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// TestMetricsRefuseUnauthenticatedScrape: /metrics is HTTPS; without a
// token it is 401, with a token of someone not granted metrics-reader 403,
// and with metrics-reader (config/rbac/metrics_reader_role.yaml) the
// metrics.
func TestMetricsRefuseUnauthenticatedScrape(t *testing.T) {
	needAPIServer(t)
	if status, body := scrape(t, ""); status != http.StatusUnauthorized {
		t.Fatalf("scrape without a token: %d %q, want 401", status, body)
	}
	// controller-runtime's filter answers a token the API server does not
	// know with 500 "Authentication failed": refused all the same.
	if status, body := scrape(t, "not-a-token"); status != http.StatusUnauthorized && status != http.StatusInternalServerError {
		t.Fatalf("scrape with a bad token: %d %q, want it refused", status, body)
	}
	stranger := tokenOf(t, "stranger")
	if status, body := scrape(t, stranger); status != http.StatusForbidden {
		t.Fatalf("scrape by a ServiceAccount without metrics-reader: %d %q, want 403", status, body)
	}
	reader := tokenOf(t, "prometheus")
	if err := admin.Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: watchedNS}},
	}); err != nil {
		t.Fatal(err)
	}
	var status int
	var body string
	eventually(t, "the metrics-reader's scrape answered", func() (bool, string) {
		status, body = scrape(t, reader)
		return status == http.StatusOK, fmt.Sprint(status, " ", body)
	})
	if !strings.Contains(body, "controller_runtime_reconcile_total") {
		t.Errorf("the metrics lack controller_runtime_reconcile_total:\n%.500s", body)
	}
}

// TestDefaultRegistryImageIsTheOperatorsVersion: a Registry that names no
// image runs the registry of the operator's own release, never latest.
func TestDefaultRegistryImageIsTheOperatorsVersion(t *testing.T) {
	old := version
	defer func() { version = old }()
	version = "v1.2.3"
	s, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := "docker.io/unireg/registry:v1.2.3"; s.registryImage != want {
		t.Errorf("default --registry-image %q, want %q", s.registryImage, want)
	}
	if !s.metricsSecure || s.metricsAddr != ":8443" {
		t.Errorf("metrics default to %q secure=%v, want :8443 over HTTPS", s.metricsAddr, s.metricsSecure)
	}
}

func TestWatchNamespacesFlag(t *testing.T) {
	s, err := parseFlags([]string{"--watch-namespaces", "a, b,,c"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.watchNamespaces, ","); got != "a,b,c" {
		t.Errorf("watchNamespaces %q, want a,b,c", got)
	}
	opts := managerOptions(s, runtime.NewScheme())
	if len(opts.Cache.DefaultNamespaces) != 3 {
		t.Errorf("cache namespaces %v, want a, b and c", opts.Cache.DefaultNamespaces)
	}
	if _, err := parseFlags([]string{"--watch-namespaces", "Not_A_Namespace"}, io.Discard); err == nil {
		t.Error("--watch-namespaces accepted an invalid namespace name")
	}
	s, err = parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if opts := managerOptions(s, runtime.NewScheme()); opts.Cache.DefaultNamespaces != nil {
		t.Errorf("without --watch-namespaces the cache is limited to %v", opts.Cache.DefaultNamespaces)
	}
}

// The node mirror's flags: the namespaces and host directories an
// administrator allows, checked; none allowed by default.
func TestManagerNodeMirrorAllowlistFlags(t *testing.T) {
	s, err := parseFlags([]string{"--namespace=unireg-system", "--node-mirror-namespaces=registries, infra", "--node-mirror-hosts-dirs=/etc/containerd/certs.d,/var/lib/k3s/certs.d"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.namespace != "unireg-system" || strings.Join(s.nodeMirrorNamespaces, ",") != "registries,infra" ||
		strings.Join(s.nodeMirrorHostsDirs, ",") != "/etc/containerd/certs.d,/var/lib/k3s/certs.d" || s.managerImage == "" {
		t.Fatalf("settings %+v", s)
	}
	if s, err := parseFlags(nil, io.Discard); err != nil || len(s.nodeMirrorNamespaces) != 0 || strings.Join(s.nodeMirrorHostsDirs, ",") != "/etc/containerd/certs.d" {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	for _, bad := range []string{"--node-mirror-namespaces=Bad_NS", "--node-mirror-hosts-dirs=relative/dir", "--node-mirror-hosts-dirs=/etc/../root", "--node-mirror-hosts-dirs=/"} {
		if _, err := parseFlags([]string{bad}, io.Discard); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
