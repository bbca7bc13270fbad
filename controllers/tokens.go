package controllers

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/auth"
)

// indexRegistryRef indexes RegistryTokens, of every namespace, by the
// Registry they name: the key is "<namespace>/<name>" of registryOf, so a
// Registry finds the tokens other namespaces hold for it (registryRefKey).
const indexRegistryRef = "spec.registryRef"

// labelRegistryNamespace on a token Secret is the namespace of the Registry
// named by labelRegistry: a token of another namespace feeds that
// Registry's auth store.
const labelRegistryNamespace = "unireg.dev/registry-namespace"

// indexScopeRef indexes RegistryTokens by the RegistryScopes they name.
const indexScopeRef = "spec.scopeRefs.name"

func indexTokensByRegistry(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), &uniregv1.RegistryToken{}, indexRegistryRef, registryRefKeys)
}

// registryRefKeys is the index function of indexRegistryRef.
func registryRefKeys(o client.Object) []string {
	return []string{registryRefKey(registryOf(o.(*uniregv1.RegistryToken)))}
}

// registryRefKey is the indexRegistryRef key of a Registry.
func registryRefKey(reg types.NamespacedName) string { return reg.Namespace + "/" + reg.Name }

func indexTokensByScope(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), &uniregv1.RegistryToken{}, indexScopeRef, scopeRefKeys)
}

// scopeRefKeys is the index function of indexScopeRef.
func scopeRefKeys(o client.Object) []string {
	var names []string
	for _, ref := range o.(*uniregv1.RegistryToken).Spec.ScopeRefs {
		names = append(names, ref.Name)
	}
	return names
}

// tokenUser is the user a token acts as. A token for a Registry of another
// namespace is <namespace>/<name>, whatever spec.user says (policyRefusal
// refuses one that sets it), so tenants cannot act as each other; a token of
// the Registry's own namespace is spec.user, else the object's name.
func tokenUser(t *uniregv1.RegistryToken) string {
	if crossNamespace(t) {
		return t.Namespace + "/" + t.Name
	}
	if t.Spec.User != "" {
		return t.Spec.User
	}
	return t.Name
}

// invalidScopeError: a scope of the token, or of a RegistryScope it uses,
// is one the server's parser refuses (an object stored under an older,
// looser CRD). Such a token is not Ready and never projected: the pods
// would refuse the whole auth store.
type invalidScopeError struct{ err error }

func (e *invalidScopeError) Error() string { return e.err.Error() }
func (e *invalidScopeError) Unwrap() error { return e.err }

// tokenScopes is the union of a token's scopes and its RegistryScopes'
// scopes, sorted and without duplicates. A missing RegistryScope is an
// error (NotFound); a scope the server refuses is an *invalidScopeError.
func tokenScopes(ctx context.Context, c client.Client, t *uniregv1.RegistryToken) ([]string, error) {
	seen := map[string]bool{}
	for i, s := range t.Spec.Scopes {
		if _, err := auth.ParseScope(s); err != nil {
			return nil, &invalidScopeError{fmt.Errorf("spec.scopes[%d]: %w", i, err)}
		}
		seen[s] = true
	}
	for _, ref := range t.Spec.ScopeRefs {
		var rs uniregv1.RegistryScope
		if err := c.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: ref.Name}, &rs); err != nil {
			return nil, fmt.Errorf("RegistryScope %s: %w", ref.Name, err)
		}
		if err := validScopes(&rs); err != nil {
			return nil, &invalidScopeError{fmt.Errorf("RegistryScope %s: %w", ref.Name, err)}
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
