package controllers

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/auth"
)

// namespaceTemplate is what a tokenPolicy scope template says for the
// token's namespace. It is replaced as a plain string, never run as a
// template.
const namespaceTemplate = "{{.Namespace}}"

// crossNamespace tells whether a token names a Registry of another
// namespace, which only that Registry's tokenPolicy can admit.
func crossNamespace(t *uniregv1.RegistryToken) bool { return registryOf(t).Namespace != t.Namespace }

// namespaceNotAllowed is the refusal of a token of another namespace whose
// Registry is missing or does not admit it: the same words either way.
func namespaceNotAllowed(t *uniregv1.RegistryToken) *refusal {
	return &refusal{uniregv1.ReasonNamespaceNotAllowed, fmt.Sprintf("no Registry of namespace %s that spec.registryRef names admits RegistryTokens "+
		"of namespace %s (its spec.tokenPolicy.namespaceSelector must match this namespace's labels)", registryOf(t).Namespace, t.Namespace)}
}

// policyRefusal applies reg's spec.tokenPolicy to a token with the given
// scopes (its own and its RegistryScopes'): nil when the token may be
// projected, else why not. Both controllers ask it, the token controller to
// set Ready and the auth-store controller again when it projects, so a
// tightened policy or a relabelled namespace never rides on a stale Ready.
func policyRefusal(ctx context.Context, c client.Reader, reg *uniregv1.Registry, t *uniregv1.RegistryToken, scopes []string) (*refusal, error) {
	if refused, err := admission(ctx, c, reg, t); refused != nil || err != nil {
		return refused, err
	}
	return scopeRefusal(reg, t, scopes), nil
}

// admission is the part of the policy that needs no scopes: whether reg
// admits tokens of t's namespace, and t's user. The token controller asks
// it before it reads the token's RegistryScopes, so that what they say
// (ScopeNotFound) tells nothing to a namespace the Registry does not admit.
func admission(ctx context.Context, c client.Reader, reg *uniregv1.Registry, t *uniregv1.RegistryToken) (*refusal, error) {
	if reg.Namespace == t.Namespace {
		// Users with a '/' are the tokens of other namespaces: a token of
		// the Registry's own namespace must not act as one of them (the CRD
		// refuses it; this catches objects made before that rule).
		if strings.Contains(t.Spec.User, "/") {
			return &refusal{uniregv1.ReasonUserNotAllowed, "spec.user cannot contain '/': <namespace>/<name> is the user of tokens from other namespaces"}, nil
		}
		return nil, nil
	}
	admitted, err := namespaceAdmitted(ctx, c, reg, t.Namespace)
	if err != nil || !admitted {
		return namespaceNotAllowed(t), err
	}
	if t.Spec.User != "" {
		return &refusal{uniregv1.ReasonUserNotAllowed, fmt.Sprintf("a token for a Registry of another namespace acts as %s; "+
			"leave spec.user empty", tokenUser(t))}, nil
	}
	return nil, nil
}

// scopeRefusal: every scope must be within the policy's scope templates for
// the token's namespace, when the policy has templates or the token is of
// another namespace (which only templates can grant anything).
func scopeRefusal(reg *uniregv1.Registry, t *uniregv1.RegistryToken, scopes []string) *refusal {
	policy := reg.Spec.TokenPolicy
	if policy == nil || (len(policy.Scopes) == 0 && reg.Namespace == t.Namespace) {
		return nil
	}
	bounds := policyScopes(policy, t.Namespace)
	for _, s := range scopes {
		if sc, err := auth.ParseScope(s); err != nil || !bounds.Bound(sc) {
			return &refusal{uniregv1.ReasonScopeNotAllowed, fmt.Sprintf("scope %q is not within the Registry's tokenPolicy scopes for namespace %s: %s",
				s, t.Namespace, strings.Join(bounds.Strings(), ", "))}
		}
	}
	return nil
}

// policyScopes are the policy's scope templates for one namespace. A
// template that does not parse bounds nothing.
func policyScopes(p *uniregv1.TokenPolicy, namespace string) auth.Scopes {
	var out auth.Scopes
	for _, tmpl := range p.Scopes {
		if sc, err := auth.ParseScope(strings.ReplaceAll(tmpl, namespaceTemplate, namespace)); err == nil {
			out = append(out, sc)
		}
	}
	return out
}

// namespaceAdmitted tells whether reg's tokenPolicy.namespaceSelector
// matches the labels of the Namespace ns (another than reg's). No policy,
// no selector, an invalid selector or a missing Namespace admit nothing.
func namespaceAdmitted(ctx context.Context, c client.Reader, reg *uniregv1.Registry, ns string) (bool, error) {
	p := reg.Spec.TokenPolicy
	if p == nil || p.NamespaceSelector == nil {
		return false, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(p.NamespaceSelector)
	if err != nil {
		return false, nil
	}
	n := &corev1.Namespace{}
	if err := c.Get(ctx, types.NamespacedName{Name: ns}, n); err != nil {
		if apierrors.IsForbidden(err) { // a namespaced install without the right to read Namespaces
			return false, nil
		}
		return false, client.IgnoreNotFound(err)
	}
	return sel.Matches(labels.Set(n.Labels)), nil
}

// policyRegistry is the Registry a token names, or the refusal that says
// why there is none to use: a token of the Registry's namespace is told the
// Registry is missing, one of another namespace only that it is not
// admitted (admission then decides for a Registry that exists).
func (r *RegistryTokenReconciler) policyRegistry(ctx context.Context, t *uniregv1.RegistryToken) (*uniregv1.Registry, *refusal, error) {
	reg := &uniregv1.Registry{}
	err := r.Get(ctx, registryOf(t), reg)
	switch {
	case apierrors.IsNotFound(err) && crossNamespace(t):
		return nil, namespaceNotAllowed(t), nil
	case apierrors.IsNotFound(err):
		return nil, &refusal{uniregv1.ReasonRegistryNotFound, fmt.Sprintf("Registry %s does not exist", t.Spec.RegistryRef.Name)}, nil
	case err != nil:
		return nil, nil, err
	}
	return reg, nil, nil
}
