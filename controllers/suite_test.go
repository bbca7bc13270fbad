package controllers

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// The suite runs the controllers against a real etcd and kube-apiserver
// (envtest; hack/build-envtest.sh builds them from source and `make test`
// sets KUBEBUILDER_ASSETS).

var (
	k8sClient client.Client
	// mgrCache is what the controllers read through: the manager's cache.
	mgrCache client.Reader
	clock    = &fakeClock{t: time.Now()} // moved by the expiry test
	skipWhy  string
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// operatorNamespace is the operator's namespace in the suite, where node
// mirror DaemonSets go; mirrorNamespaces may enable a node mirror.
const operatorNamespace = "unireg-system"

var mirrorNamespaces = []string{"mirror-a", "mirror-b", "mirror-c"}

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		skipWhy = "KUBEBUILDER_ASSETS is not set: run `make test` (hack/build-envtest.sh builds etcd and kube-apiserver)"
		os.Exit(m.Run())
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		panic(err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: CacheOptions(nil)})
	if err != nil {
		panic(err)
	}
	mgrCache = mgr.GetCache()
	if err := Setup(mgr, Options{DefaultImage: "unireg/registry:test", Now: clock.Now,
		Namespace: operatorNamespace, ManagerImage: "unireg/manager:test", NodeMirrorNamespaces: mirrorNamespaces,
		CertificateRetry: time.Second}); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		if err := mgr.Start(ctx); err != nil {
			panic(err)
		}
	}()
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		panic(err)
	}
	for _, ns := range append([]string{operatorNamespace}, mirrorNamespaces...) {
		if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			panic(err)
		}
	}
	code := m.Run()
	cancel()
	env.Stop()
	os.Exit(code)
}

func needAPIServer(t *testing.T) {
	t.Helper()
	if k8sClient == nil {
		t.Skip(skipWhy)
	}
}

// eventually polls cond until it holds or fails the test after 20 s.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok && err == nil {
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within 20s (last error: %v)", what, lastErr)
}
