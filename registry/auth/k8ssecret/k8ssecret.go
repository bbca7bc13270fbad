// Package k8ssecret feeds an auth.TokenStore from a Kubernetes Secret
// watched through the API server: a change (a token revoked by the
// operator) applies within seconds in every replica, instead of after the
// kubelet's sync of a mounted Secret (about a minute). The server needs only
// get, list and watch on that one Secret.
package k8ssecret

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
)

// Key is the Secret key holding the auth store (docs/auth-store.md).
const Key = authstore.SecretKey

// Config returns the in-cluster configuration, or the one of KUBECONFIG
// outside a cluster.
func Config() (*rest.Config, error) {
	if cfg, err := rest.InClusterConfig(); err == nil {
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
}

// Watch applies the Secret namespace/name to store now and on every change,
// until ctx ends. It returns once the first version was applied (or the
// Secret was found missing), or with the error that prevented it.
func Watch(ctx context.Context, cfg *rest.Config, namespace, name string, store *auth.TokenStore, log *slog.Logger) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	lw := cache.NewListWatchFromClient(cs.CoreV1().RESTClient(), "secrets", namespace,
		fields.OneTermEqualSelector("metadata.name", name))
	apply := func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		raw, ok := s.Data[Key]
		if !ok {
			store.Apply(nil) // refused: keeps the previous tokens, shows in readiness
			return
		}
		if err := store.Apply(raw); err == nil {
			log.Info("auth store applied from Secret", "secret", namespace+"/"+name, "resourceVersion", s.ResourceVersion, "tokens", store.Len())
		}
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.Secret{},
		ResyncPeriod:  10 * time.Minute,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    apply,
			UpdateFunc: func(_, obj any) { apply(obj) },
			// A deleted Secret keeps the last tokens: deleting it is more
			// likely an accident than a wish to lock everyone out.
		},
	})
	go informer.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return fmt.Errorf("watch Secret %s/%s: %w", namespace, name, ctx.Err())
	}
	return nil
}
