package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// RegistryScopeReconciler keeps a RegistryScope's status: how many tokens
// use it. Its scopes reach the auth stores through the registry controller.
type RegistryScopeReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=unireg.dev,resources=registryscopes/status,verbs=update

// Reconcile counts the tokens that name the scope set.
func (r *RegistryScopeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rs := &uniregv1.RegistryScope{}
	if err := r.Get(ctx, req.NamespacedName, rs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var tokens uniregv1.RegistryTokenList
	if err := r.List(ctx, &tokens, client.InNamespace(rs.Namespace), client.MatchingFields{indexScopeRef: rs.Name}); err != nil {
		return ctrl.Result{}, err
	}
	before := rs.Status.DeepCopy()
	rs.Status.Tokens = int32(len(tokens.Items))
	meta.SetStatusCondition(&rs.Status.Conditions, metav1.Condition{
		Type: uniregv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Valid",
		Message: "scopes accepted", ObservedGeneration: rs.Generation,
	})
	if equality.Semantic.DeepEqual(before, &rs.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.Status().Update(ctx, rs)
}

// SetupWithManager registers the controller; token changes recount.
func (r *RegistryScopeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&uniregv1.RegistryScope{}).
		Watches(&uniregv1.RegistryToken{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			t := o.(*uniregv1.RegistryToken)
			out := make([]reconcile.Request, 0, len(t.Spec.ScopeRefs))
			for _, ref := range t.Spec.ScopeRefs {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Namespace: t.Namespace, Name: ref.Name}})
			}
			return out
		})).
		Named("registryscope").
		Complete(r)
}
