package controllers

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// indexRegistryRef indexes RegistryTokens by the Registry they name.
const indexRegistryRef = "spec.registryRef.name"

// indexScopeRef indexes RegistryTokens by the RegistryScopes they name.
const indexScopeRef = "spec.scopeRefs.name"

func indexTokensByRegistry(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), &uniregv1.RegistryToken{}, indexRegistryRef,
		func(o client.Object) []string { return []string{o.(*uniregv1.RegistryToken).Spec.RegistryRef.Name} })
}

func indexTokensByScope(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), &uniregv1.RegistryToken{}, indexScopeRef,
		func(o client.Object) []string {
			var names []string
			for _, ref := range o.(*uniregv1.RegistryToken).Spec.ScopeRefs {
				names = append(names, ref.Name)
			}
			return names
		})
}

// tokenUser is the user a token acts as: spec.user, else the object's name.
func tokenUser(t *uniregv1.RegistryToken) string {
	if t.Spec.User != "" {
		return t.Spec.User
	}
	return t.Name
}

// tokenScopes is the union of a token's scopes and its RegistryScopes'
// scopes, sorted and without duplicates. A missing RegistryScope is an error.
func tokenScopes(ctx context.Context, c client.Client, t *uniregv1.RegistryToken) ([]string, error) {
	seen := map[string]bool{}
	for _, s := range t.Spec.Scopes {
		seen[s] = true
	}
	for _, ref := range t.Spec.ScopeRefs {
		var rs uniregv1.RegistryScope
		if err := c.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: ref.Name}, &rs); err != nil {
			return nil, fmt.Errorf("RegistryScope %s: %w", ref.Name, err)
		}
		for _, s := range rs.Spec.Scopes {
			seen[s] = true
		}
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}
