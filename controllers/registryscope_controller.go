package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/auth"
)

// RegistryScopeReconciler keeps a RegistryScope's status: whether the
// server would accept its scopes, and how many tokens use it. Its scopes
// reach the auth stores through the auth-store controller.
type RegistryScopeReconciler struct {
	client.Client
	Recorder record.EventRecorder
}

// +kubebuilder:rbac:groups=unireg.dev,resources=registryscopes/status,verbs=update

// Reconcile checks the scopes with the server's parser and counts the
// tokens that name the scope set.
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
	r.setReady(rs, validScopes(rs))
	rs.Status.ObservedGeneration = rs.Generation
	if equality.Semantic.DeepEqual(before, &rs.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.Status().Update(ctx, rs)
}

// setReady sets Ready: True when err is nil (the server accepts every
// scope), else False with InvalidScope and a warning event when that is new.
func (r *RegistryScopeReconciler) setReady(rs *uniregv1.RegistryScope, err error) {
	if err == nil {
		meta.SetStatusCondition(&rs.Status.Conditions, metav1.Condition{
			Type: uniregv1.ConditionReady, Status: metav1.ConditionTrue, Reason: uniregv1.ReasonValidScopes,
			Message: "the registry accepts every scope", ObservedGeneration: rs.Generation,
		})
		return
	}
	msg := err.Error()
	if was := meta.FindStatusCondition(rs.Status.Conditions, uniregv1.ConditionReady); was == nil || was.Reason != uniregv1.ReasonInvalidScope || was.Message != msg {
		r.Recorder.Event(rs, corev1.EventTypeWarning, uniregv1.ReasonInvalidScope, msg)
	}
	meta.SetStatusCondition(&rs.Status.Conditions, metav1.Condition{
		Type: uniregv1.ConditionReady, Status: metav1.ConditionFalse, Reason: uniregv1.ReasonInvalidScope,
		Message: msg, ObservedGeneration: rs.Generation,
	})
}

// validScopes is nil when the server's scope parser (the one its auth
// store and --anonymous go through) accepts every scope of rs, else the
// error of the first it refuses. Admission checks the same grammar with a
// pattern, but a RegistryScope stored under an older, looser CRD was not
// checked by today's: a token using an invalid RegistryScope must not be
// projected, as the server would refuse the whole auth store for it.
func validScopes(rs *uniregv1.RegistryScope) error {
	for i, s := range rs.Spec.Scopes {
		if _, err := auth.ParseScope(s); err != nil {
			return fmt.Errorf("spec.scopes[%d]: %w", i, err)
		}
	}
	return nil
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
