// Command manager runs the unireg operator: controllers for Registry,
// RegistryToken and RegistryScope (API group unireg.dev/v1alpha1). Its
// subcommands node-mirror and node-mirror-probe are the node mirror's agent
// and readiness probe (nodemirror.go), so the DaemonSet needs no image of
// its own.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/controllers"
)

// version is set at link time (make images: -X main.version=...).
var version = "dev"

// defaultRegistryImage is the registry image of the operator's own release,
// never a moving tag: upgrading the operator is what moves the Registries
// that do not name an image, not a push of "latest" somewhere.
func defaultRegistryImage() string { return "docker.io/unireg/registry:" + version }

func defaultManagerImage() string { return "docker.io/unireg/manager:" + version }

// settings are the manager's command line.
type settings struct {
	metricsAddr, probeAddr, registryImage string
	// metricsSecure serves metrics over HTTPS, to callers the API server
	// authenticates (TokenReview) and authorises for GET /metrics
	// (SubjectAccessReview); false serves plain HTTP to anyone.
	metricsSecure bool
	// enableHTTP2 on the metrics server; off by default (HTTP/2 rapid
	// reset, CVE-2023-44487), as kubebuilder projects do.
	enableHTTP2 bool
	leaderElect bool
	// watchNamespaces, when not empty, are the only namespaces watched and
	// reconciled (a namespaced install, see docs/operator.md).
	watchNamespaces []string
	// namespace is the operator's own (POD_NAMESPACE), where node mirror
	// DaemonSets run; empty runs no node mirror.
	namespace    string
	managerImage string
	// nodeMirrorNamespaces may enable spec.nodeMirror; nodeMirrorHostsDirs
	// are the node directories a node mirror may write.
	nodeMirrorNamespaces, nodeMirrorHostsDirs []string
	zap                                       zap.Options
}

func parseFlags(args []string, stderr io.Writer) (*settings, error) {
	s := &settings{}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var watch string
	fs.StringVar(&s.metricsAddr, "metrics-bind-address", ":8443", "address the metrics endpoint binds to; 0 disables it")
	fs.BoolVar(&s.metricsSecure, "metrics-secure", true, "serve metrics over HTTPS to authenticated and authorised callers only; false serves plain HTTP to anyone")
	fs.BoolVar(&s.enableHTTP2, "enable-http2", false, "allow HTTP/2 on the metrics server")
	fs.StringVar(&s.probeAddr, "health-probe-bind-address", ":8081", "address the health probes bind to")
	fs.BoolVar(&s.leaderElect, "leader-elect", false, "elect a leader, so that only one manager of several replicas is active")
	fs.StringVar(&s.registryImage, "registry-image", defaultRegistryImage(), "image of Registries that do not name one (default: the registry of this operator's version)")
	fs.StringVar(&watch, "watch-namespaces", "", "comma-separated namespaces to watch and reconcile; empty watches every namespace")
	var mirrorNamespaces, mirrorDirs string
	fs.StringVar(&s.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the operator's own namespace, where node mirror DaemonSets run (default $POD_NAMESPACE; empty: no node mirror)")
	fs.StringVar(&s.managerImage, "manager-image", defaultManagerImage(), "image of the node mirror agents: this manager's own")
	fs.StringVar(&mirrorNamespaces, "node-mirror-namespaces", "", "comma-separated namespaces whose Registries may enable spec.nodeMirror (default none: a node mirror decides what every pod of the cluster runs)")
	fs.StringVar(&mirrorDirs, "node-mirror-hosts-dirs", strings.Join(controllers.DefaultNodeMirrorHostsDirs, ","), "comma-separated node directories a node mirror may write (containerd's config_path)")
	s.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if s.watchNamespaces, err = namespaceList("watch-namespaces", watch); err != nil {
		return nil, err
	}
	if s.nodeMirrorNamespaces, err = namespaceList("node-mirror-namespaces", mirrorNamespaces); err != nil {
		return nil, err
	}
	for _, dir := range strings.Split(mirrorDirs, ",") {
		if dir = strings.TrimSpace(dir); dir == "" {
			continue
		}
		if !path.IsAbs(dir) || path.Clean(dir) != dir || dir == "/" {
			return nil, fmt.Errorf("--node-mirror-hosts-dirs: %q is not a clean absolute directory", dir)
		}
		s.nodeMirrorHostsDirs = append(s.nodeMirrorHostsDirs, dir)
	}
	if s.registryImage == "" {
		return nil, errors.New("--registry-image must not be empty")
	}
	return s, nil
}

// namespaceList parses the comma-separated namespaces of flag name.
func namespaceList(name, value string) ([]string, error) {
	var out []string
	for _, ns := range strings.Split(value, ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--%s: %q is not a namespace name: %s", name, ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	return out, nil
}

// managerOptions turns settings into the manager's options.
func managerOptions(s *settings, scheme *runtime.Scheme) ctrl.Options {
	metrics := metricsserver.Options{BindAddress: s.metricsAddr, SecureServing: s.metricsSecure}
	if s.metricsSecure {
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if !s.enableHTTP2 {
		metrics.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metrics,
		HealthProbeBindAddress: s.probeAddr,
		LeaderElection:         s.leaderElect,
		LeaderElectionID:       "manager.unireg.dev",
		// The watched namespaces, and of Secrets only the operator's own.
		Cache: controllers.CacheOptions(s.watchNamespaces, s.namespace),
	}
}

// newManager builds the manager with every controller registered.
func newManager(cfg *rest.Config, s *settings) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	mgr, err := ctrl.NewManager(cfg, managerOptions(s, scheme))
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.Setup(mgr, controllers.Options{DefaultImage: s.registryImage, WatchNamespaces: s.watchNamespaces,
		Namespace: s.namespace, ManagerImage: s.managerImage, NodeMirrorNamespaces: s.nodeMirrorNamespaces, NodeMirrorHostsDirs: s.nodeMirrorHostsDirs}); err != nil {
		return nil, fmt.Errorf("set up controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

func main() {
	if code, ok := runSubcommand(os.Args[1:], os.Stdout, os.Stderr); ok {
		os.Exit(code)
	}
	s, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&s.zap)))
	log := ctrl.Log.WithName("setup")
	mgr, err := newManager(ctrl.GetConfigOrDie(), s)
	if err != nil {
		log.Error(err, "start")
		os.Exit(1)
	}
	log.Info("starting manager", "version", version, "registryImage", s.registryImage,
		"watchNamespaces", s.watchNamespaces, "metricsSecure", s.metricsSecure)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "run manager")
		os.Exit(1)
	}
}
