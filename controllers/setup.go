// Package controllers holds the unireg operator's controllers, one per job
// (Setup lists them).
package controllers

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// Options configure the controllers.
type Options struct {
	// DefaultImage runs Registries that do not name one.
	DefaultImage string
	// WatchNamespaces, when not empty, are the only namespaces reconciled;
	// the manager's cache must be CacheOptions of the same namespaces.
	WatchNamespaces []string
	// Now is the clock of expiry decisions; nil means time.Now (tests
	// inject their own).
	Now func() time.Time
	// Namespace is the operator's own, where node mirror DaemonSets run;
	// empty runs no node mirror controller.
	Namespace string
	// ManagerImage runs the node mirror agents (the manager's image).
	ManagerImage string
	// NodeMirrorNamespaces may enable spec.nodeMirror; none when empty.
	NodeMirrorNamespaces []string
	// NodeMirrorHostsDirs are the node directories a node mirror may
	// write; DefaultNodeMirrorHostsDirs when empty.
	NodeMirrorHostsDirs []string
	// CertificateRetry is how often a Registry whose spec.tls.issuerRef
	// certificate is not ready (or whose Secret cert-manager has not issued)
	// is looked at again, by its reconciler and by its node mirror; 30 s
	// when zero (tests take a shorter one).
	CertificateRetry time.Duration
}

// managedBy is the value of labelManagedBy on everything the operator
// makes, every Secret included: the manager's cache selects Secrets by it.
const managedBy = "unireg-operator"

// CacheOptions is the manager's cache: the watched namespaces (all when
// none), and of Secrets only those the operator labels (its token Secrets,
// auth stores and JWT keys), so a large cluster's Secrets are neither held
// in the operator's memory nor readable through its cache. A Secret it did
// not make is read from the API server when it must be (a spec.secretRef
// source, opted in by its annotation). Every Secret the operator creates
// must carry labelManagedBy=managedBy, or the operator cannot see it.
func CacheOptions(watchNamespaces []string, operatorNamespace ...string) cache.Options {
	ours := labels.SelectorFromSet(labels.Set{labelManagedBy: managedBy})
	o := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Label: ours},
	}}
	// The node mirrors' DaemonSets and ConfigMaps: only the operator's,
	// and in a namespaced install only in its own namespace.
	for _, obj := range []client.Object{&appsv1.DaemonSet{}, &corev1.ConfigMap{}} {
		by := cache.ByObject{Label: ours}
		if len(watchNamespaces) > 0 && len(operatorNamespace) > 0 && operatorNamespace[0] != "" {
			by.Namespaces = map[string]cache.Config{operatorNamespace[0]: {}}
		}
		o.ByObject[obj] = by
	}
	if len(watchNamespaces) > 0 {
		o.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range watchNamespaces {
			o.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return o
}

// sourceSecretsCache holds the metadata of the watched namespaces' Secrets,
// reduced to what finds a spec.secretRef source's token: namespace, name
// and the opt-in annotation. controller-runtime keys cache selectors by
// kind, so a metadata-only watch through the manager's cache would see only
// the labelled Secrets; this is a cache of its own, and its transform drops
// labels, other annotations (kubectl's last-applied-configuration holds a
// Secret's data) and managed fields before anything is stored.
func sourceSecretsCache(mgr ctrl.Manager, o Options) (cache.Cache, error) {
	opts := CacheOptions(o.WatchNamespaces)
	opts.ByObject = nil
	opts.HTTPClient, opts.Scheme, opts.Mapper = mgr.GetHTTPClient(), mgr.GetScheme(), mgr.GetRESTMapper()
	opts.DefaultTransform = func(in any) (any, error) {
		m, ok := in.(*metav1.PartialObjectMetadata)
		if !ok {
			return in, nil
		}
		kept := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
			Namespace: m.Namespace, Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion,
		}}
		if v, ok := m.Annotations[uniregv1.SecretRefAnnotation]; ok {
			kept.Annotations = map[string]string{uniregv1.SecretRefAnnotation: v}
		}
		return kept, nil
	}
	c, err := cache.New(mgr.GetConfig(), opts)
	if err != nil {
		return nil, err
	}
	return c, mgr.Add(c)
}

// sourceSecretMetadata is the metadata-only object of a Secret.
func sourceSecretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// operatorClient is the controllers' client: the manager's, reading from
// the cache, except where the cache cannot answer.
//
// A Secret the cache lacks is looked up on the API server: the cache holds
// only the Secrets the operator labels, and one it lacks may still be in
// the way of one to create, or be the operator's own from a version that
// did not label it (token Secrets, until the token controller relabels
// them: the auth-store controller keeps projecting them meanwhile).
//
// In a namespaced install (namespacesFromAPI) Namespaces are read from the
// API server too: they are cluster-scoped, the rights such an install
// gives (RoleBindings in the watched namespaces) do not cover them, and a
// cache of them would never fill, a read from it waiting forever. With a
// ClusterRole granting get on namespaces, tokenPolicy selectors then work
// (a label change applies at the token's next reconcile, not at once);
// without it they admit no namespace.
type operatorClient struct {
	client.Client
	api               client.Reader
	namespacesFromAPI bool
}

func (c operatorClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	switch obj.(type) {
	case *corev1.Namespace:
		if c.namespacesFromAPI {
			return c.api.Get(ctx, key, obj, opts...)
		}
	case *corev1.Secret, *corev1.ConfigMap, *appsv1.DaemonSet:
		// The cache holds only the operator's (labelled) objects of these
		// kinds; one it lacks may still be someone else's in the way.
		err := c.Client.Get(ctx, key, obj, opts...)
		if apierrors.IsNotFound(err) {
			return c.api.Get(ctx, key, obj, opts...)
		}
		return err
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// Setup registers every controller with the manager, one job each: the
// registry controller runs a Registry's workload (registry_controller.go),
// the auth-store controller writes its auth store (authstore_controller.go),
// the token controller issues tokens (registrytoken_controller.go) and the
// scope controller checks RegistryScopes (registryscope_controller.go). The
// manager's cache must be CacheOptions.
func Setup(mgr ctrl.Manager, o Options) error {
	namespaced := len(o.WatchNamespaces) > 0
	c := operatorClient{Client: mgr.GetClient(), api: mgr.GetAPIReader(), namespacesFromAPI: namespaced}
	if err := indexTokensByRegistry(mgr); err != nil {
		return err
	}
	if err := indexTokensByScope(mgr); err != nil {
		return err
	}
	if err := (&AuthStoreReconciler{
		Client: c, Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorderFor("authstore-controller"), Now: o.Now,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&RegistryReconciler{
		Client: c, Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorderFor("registry-controller"),
		DefaultImage: o.DefaultImage, Now: o.Now, APIReader: mgr.GetAPIReader(), CertificateRetry: o.CertificateRetry,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	sources, err := sourceSecretsCache(mgr, o)
	if err != nil {
		return err
	}
	if err := (&RegistryTokenReconciler{
		Client: c, APIReader: mgr.GetAPIReader(), SourceSecrets: sources, WatchNamespaceLabels: !namespaced,
		Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorderFor("registrytoken-controller"), Now: o.Now,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if o.Namespace != "" {
		if err := (&NodeMirrorReconciler{
			Client: c, Scheme: mgr.GetScheme(), Namespace: o.Namespace, Image: o.ManagerImage,
			AllowedNamespaces: o.NodeMirrorNamespaces, AllowedHostsDirs: o.NodeMirrorHostsDirs,
			CertificateRetry: o.CertificateRetry,
		}).SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return (&RegistryScopeReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("registryscope-controller")}).SetupWithManager(mgr)
}
