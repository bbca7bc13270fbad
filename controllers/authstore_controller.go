package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/auth"
	"github.com/unireg/unireg/registry/authstore"
)

// AuthStoreReconciler writes a Registry's auth store: the Secret
// <name>-auth that its pods watch (docs/auth-store.md), projected from the
// Ready tokens of every namespace that name the Registry, and the
// Registry's TokensProjected condition and status.tokens. It reads the
// tokens, their RegistryScopes and the hashes on their Secrets; the
// registry controller runs the pods and starts them once this Secret is
// there.
type AuthStoreReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	// Now is the clock of expiry decisions; nil means time.Now.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=unireg.dev,resources=registries,verbs=get;list;watch
// +kubebuilder:rbac:groups=unireg.dev,resources=registries/status,verbs=patch
// +kubebuilder:rbac:groups=unireg.dev,resources=registrytokens,verbs=get;list;watch
// +kubebuilder:rbac:groups=unireg.dev,resources=registryscopes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile projects one Registry's auth store.
func (r *AuthStoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	reg := &uniregv1.Registry{}
	if err := r.Get(ctx, req.NamespacedName, reg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := reg.Status.DeepCopy()
	next, err := r.reconcileAuthStore(ctx, reg)
	var result ctrl.Result
	var conflict *childConflict
	switch {
	case errors.As(err, &conflict):
		// The registry controller says so on Ready and starts no pods
		// with it; the Secret in the way is not the Registry's, so its
		// deletion wakes nothing: look again in a while.
		result, err = ctrl.Result{RequeueAfter: conflictRetry}, nil
	case err != nil:
		r.setTokensProjected(reg, uniregv1.ReasonReconcileError, err.Error())
	case !next.IsZero():
		result.RequeueAfter = next.Sub(r.now()) + time.Second
	}
	if !equality.Semantic.DeepEqual(before, &reg.Status) {
		if werr := r.writeStatus(ctx, reg); werr != nil && err == nil {
			err = werr
		}
	}
	return result, err
}

func (r *AuthStoreReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// reconcileAuthStore projects every Ready, unexpired token of the Registry
// (hash, user, its scopes and its RegistryScopes' scopes, expiry) into the
// auth-store Secret, in the format of docs/auth-store.md. It returns the
// earliest expiry to come, so the token drops out on time.
//
// The pods refuse a store that does not parse as a whole and keep the
// previous one, so one bad entry would stop every revocation and new token.
// The store is therefore checked with the server's own parser before it is
// written: entries it would refuse are left out one by one (projection), and
// a store that still does not parse is not written. The TokensProjected
// condition and an event say which.
func (r *AuthStoreReconciler) reconcileAuthStore(ctx context.Context, reg *uniregv1.Registry) (time.Time, error) {
	now := r.now()
	tokens, hashes, scopes, err := r.projectionInputs(ctx, reg, now)
	if err != nil {
		return time.Time{}, err
	}
	file, leftOut, next := projection(tokens, hashes, scopes, now)
	body, err := authstore.Marshal(file)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := auth.ParseAuthStore(body); err != nil {
		r.setTokensProjected(reg, uniregv1.ReasonProjectionRefused, "the auth store built does not parse, so it was not written and the pods keep the previous one: "+err.Error())
		return next, nil
	}
	if err := r.writeSecret(ctx, reg, body, len(file.Tokens)); err != nil {
		return time.Time{}, err
	}
	reg.Status.Tokens = int32(len(file.Tokens))
	if len(leftOut) > 0 {
		r.setTokensProjected(reg, uniregv1.ReasonTokensLeftOut, "left out of the auth store: "+summarise(leftOut, 10))
	} else {
		r.setTokensProjected(reg, uniregv1.ReasonProjected, "every Ready token is in the auth store")
	}
	return next, nil
}

// projectionInputs gathers what projection needs: the tokens of every
// namespace naming reg and, for each projectable one whose RegistryScopes
// resolve and that reg's tokenPolicy admits now (policyRefusal), its scopes
// and the hashes its Secret holds. A token left without scopes is not
// projected; the token controller marks it not Ready.
func (r *AuthStoreReconciler) projectionInputs(ctx context.Context, reg *uniregv1.Registry, now time.Time) ([]uniregv1.RegistryToken, map[types.NamespacedName][]projected, map[types.NamespacedName][]string, error) {
	var list uniregv1.RegistryTokenList
	if err := r.List(ctx, &list, client.MatchingFields{indexRegistryRef: registryRefKey(client.ObjectKeyFromObject(reg))}); err != nil {
		return nil, nil, nil, err
	}
	hashes := map[types.NamespacedName][]projected{}
	scopes := map[types.NamespacedName][]string{}
	for i := range list.Items {
		t := &list.Items[i]
		if !projectable(t, now) {
			continue
		}
		s, err := tokenScopes(ctx, r.Client, t)
		if err != nil {
			continue // a missing or invalid RegistryScope
		}
		if refused, err := policyRefusal(ctx, r.Client, reg, t, s); err != nil {
			return nil, nil, nil, err
		} else if refused != nil {
			continue
		}
		h, err := projectedHashes(ctx, r.Client, t)
		if err != nil {
			return nil, nil, nil, err
		}
		key := client.ObjectKeyFromObject(t)
		scopes[key], hashes[key] = s, h
	}
	return list.Items, hashes, scopes, nil
}

// projectedHashes are the hashes a token puts in its Registry's auth store:
// the unireg.dev/token-hash annotation of its Secret and the replaced
// tokens of annotationPreviousHashes (expired ones included: the caller
// compares with its clock), when that Secret is the token's own (its
// controller); none when there is none. It is the one place the projected
// hashes are read.
func projectedHashes(ctx context.Context, c client.Reader, t *uniregv1.RegistryToken) ([]projected, error) {
	if t.Status.SecretName == "" {
		return nil, nil
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Status.SecretName}, s); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	current := s.Annotations[annotationTokenHash]
	if !metav1.IsControlledBy(s, t) || current == "" {
		return nil, nil
	}
	out := []projected{{hash: current}}
	for _, p := range previousHashes(s) {
		until := p.Until
		out = append(out, projected{hash: p.Hash, until: &until})
	}
	return out, nil
}

// writeSecret writes the store into the Secret <name>-auth, created
// controlled by reg; one of the name reg does not control is a conflict,
// never written.
func (r *AuthStoreReconciler) writeSecret(ctx context.Context, reg *uniregv1.Registry, body []byte, tokens int) error {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: authSecretName(reg)}}
	if err := r.Get(ctx, client.ObjectKeyFromObject(s), s); err == nil {
		if err := mustControl(reg, s, "Secret"); err != nil {
			return err
		}
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	op, err := controllerutil.CreateOrUpdate(ctx, r.Client, s, func() error {
		s.Labels = commonLabels(reg)
		s.Data = map[string][]byte{keyAuthStore: body}
		return controllerutil.SetControllerReference(reg, s, r.Scheme)
	})
	if apierrors.IsAlreadyExists(err) { // there, but not in the cache of what the operator made
		return &childConflict{kind: "Secret", name: s.Name}
	}
	if err != nil {
		return err
	}
	if op != controllerutil.OperationResultNone {
		log.FromContext(ctx).Info("auth store projected", "tokens", tokens, "operation", op)
	}
	return nil
}

// setTokensProjected sets the TokensProjected condition: True only for
// ReasonProjected, with a warning event when a failure is new.
func (r *AuthStoreReconciler) setTokensProjected(reg *uniregv1.Registry, reason, msg string) {
	if reason == uniregv1.ReasonProjected {
		setCondition(reg, uniregv1.ConditionTokensProjected, metav1.ConditionTrue, reason, msg)
		return
	}
	if was := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionTokensProjected); was == nil || was.Reason != reason || was.Message != msg {
		r.Recorder.Event(reg, corev1.EventTypeWarning, reason, msg)
	}
	setCondition(reg, uniregv1.ConditionTokensProjected, metav1.ConditionFalse, reason, msg)
}

// writeStatus applies the auth-store controller's fields of reg's status:
// TokensProjected and tokens (see applyStatus).
func (r *AuthStoreReconciler) writeStatus(ctx context.Context, reg *uniregv1.Registry) error {
	conds, err := conditionsOf(reg.Status.Conditions, func(typ string) bool { return typ == uniregv1.ConditionTokensProjected })
	if err != nil {
		return err
	}
	return applyStatus(ctx, r.Client, reg, authStoreFieldOwner, map[string]any{"conditions": conds, "tokens": reg.Status.Tokens})
}

func summarise(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:max], "; "), len(items)-max)
}

// SetupWithManager registers the controller: a Registry's spec (its
// tokenPolicy), its auth-store Secret, and what feeds the store: the tokens
// naming it, their Secrets, and the RegistryScopes they use.
func (r *AuthStoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		// Status changes (its own and the registry controller's) change
		// nothing here.
		For(&uniregv1.Registry{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&corev1.Secret{}).
		Watches(&uniregv1.RegistryToken{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: registryOf(o.(*uniregv1.RegistryToken))}}
		})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(registryOfTokenSecret)).
		Watches(&uniregv1.RegistryScope{}, handler.EnqueueRequestsFromMapFunc(r.registriesUsingScope)).
		Named("authstore").
		Complete(r)
}

// registryOfTokenSecret maps a token's Secret to the Registry, of any
// namespace, whose auth store it feeds (its labels).
func registryOfTokenSecret(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[labelRegistry]
	if name == "" {
		return nil
	}
	ns := o.GetLabels()[labelRegistryNamespace] // a token of another namespace
	if ns == "" {
		ns = o.GetNamespace()
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}

// registriesUsingScope maps a RegistryScope to the Registries, of any
// namespace, of the tokens of its namespace that use it: only their auth
// stores hold its scopes.
func (r *AuthStoreReconciler) registriesUsingScope(ctx context.Context, o client.Object) []reconcile.Request {
	var tokens uniregv1.RegistryTokenList
	if err := r.List(ctx, &tokens, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexScopeRef: o.GetName()}); err != nil {
		return nil
	}
	seen := map[types.NamespacedName]bool{}
	var out []reconcile.Request
	for i := range tokens.Items {
		if reg := registryOf(&tokens.Items[i]); !seen[reg] {
			seen[reg] = true
			out = append(out, reconcile.Request{NamespacedName: reg})
		}
	}
	return out
}
