package controllers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
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
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// RegistryTokenReconciler turns a RegistryToken into a Secret holding a
// working credential for its Registry. The raw token exists only in that
// Secret; the Registry's auth store gets its hash.
type RegistryTokenReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Reasons of the token's Ready condition.
const (
	ReasonIssued           = "Issued"
	ReasonRegistryNotFound = "RegistryNotFound"
	ReasonScopeNotFound    = "ScopeNotFound"
	ReasonSecretNotFound   = "SecretNotFound"
	ReasonExpired          = "Expired"
)

// +kubebuilder:rbac:groups=unireg.dev,resources=registrytokens,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=unireg.dev,resources=registrytokens/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=unireg.dev,resources=registrytokens/finalizers,verbs=update
// +kubebuilder:rbac:groups=unireg.dev,resources=registryscopes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch

// Reconcile issues or refreshes one token's Secret and status.
func (r *RegistryTokenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tok := &uniregv1.RegistryToken{}
	if err := r.Get(ctx, req.NamespacedName, tok); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := tok.Status.DeepCopy()
	result, err := r.reconcile(ctx, tok)
	tok.Status.ObservedGeneration = tok.Generation
	if !equality.Semantic.DeepEqual(before, &tok.Status) {
		if uerr := r.Status().Update(ctx, tok); uerr != nil && err == nil {
			err = uerr
		}
	}
	return result, err
}

func (r *RegistryTokenReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *RegistryTokenReconciler) notReady(tok *uniregv1.RegistryToken, reason, msg string) {
	was := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady)
	if was == nil || was.Reason != reason {
		r.Recorder.Event(tok, corev1.EventTypeWarning, reason, msg)
	}
	meta.SetStatusCondition(&tok.Status.Conditions, metav1.Condition{
		Type: uniregv1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: tok.Generation,
	})
}

func (r *RegistryTokenReconciler) reconcile(ctx context.Context, tok *uniregv1.RegistryToken) (ctrl.Result, error) {
	reg := &uniregv1.Registry{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: tok.Spec.RegistryRef.Name}, reg); err != nil {
		if apierrors.IsNotFound(err) {
			r.notReady(tok, ReasonRegistryNotFound, fmt.Sprintf("Registry %s does not exist", tok.Spec.RegistryRef.Name))
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if _, err := tokenScopes(ctx, r.Client, tok); err != nil {
		if apierrors.IsNotFound(err) {
			r.notReady(tok, ReasonScopeNotFound, err.Error())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	expires := r.expiry(tok)
	if expires != nil {
		tok.Status.ExpiresAt = expires
		if !r.now().Before(expires.Time) {
			r.notReady(tok, ReasonExpired, "the token expired at "+expires.UTC().Format(time.RFC3339))
			return ctrl.Result{}, nil
		}
	}
	token, err := r.tokenValue(ctx, tok)
	if err != nil {
		return ctrl.Result{}, err
	}
	if token == "" {
		r.notReady(tok, ReasonSecretNotFound, fmt.Sprintf("Secret %s has no key %q", tok.Spec.SecretRef.Name, keyToken))
		return ctrl.Result{}, nil
	}
	if err := r.writeSecret(ctx, tok, reg, token); err != nil {
		return ctrl.Result{}, err
	}
	hash := authstore.HashToken(token)
	tok.Status.SecretName = secretName(tok)
	tok.Status.TokenID = hash[len("sha256:") : len("sha256:")+12]
	was := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady)
	if was == nil || was.Status != metav1.ConditionTrue {
		r.Recorder.Event(tok, corev1.EventTypeNormal, ReasonIssued, "token issued in Secret "+tok.Status.SecretName)
	}
	meta.SetStatusCondition(&tok.Status.Conditions, metav1.Condition{
		Type: uniregv1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonIssued,
		Message: "credential in Secret " + tok.Status.SecretName, ObservedGeneration: tok.Generation,
	})
	if expires != nil {
		return ctrl.Result{RequeueAfter: expires.Sub(r.now()) + time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// expiry is spec.expiresAt, or creation plus spec.ttl.
func (r *RegistryTokenReconciler) expiry(tok *uniregv1.RegistryToken) *metav1.Time {
	switch {
	case tok.Spec.ExpiresAt != nil:
		return tok.Spec.ExpiresAt.DeepCopy()
	case tok.Spec.TTL != nil:
		t := metav1.NewTime(tok.CreationTimestamp.Add(tok.Spec.TTL.Duration))
		return &t
	}
	return nil
}

// nodeHost is the address kubelets pull from when the Registry has no
// publicURL: its Service's ClusterIP and port. Nodes resolve image hosts with
// their own resolver, not cluster DNS, so an image named by the Service's DNS
// name cannot be pulled; one named by the ClusterIP can, and the pull secret
// carries the credential for both. Empty until the Service has its IP.
func (r *RegistryTokenReconciler) nodeHost(ctx context.Context, reg *uniregv1.Registry) (string, error) {
	if reg.Spec.PublicURL != "" {
		return "", nil
	}
	svc := &corev1.Service{}
	err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: reg.Name}, svc)
	if err != nil || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return "", client.IgnoreNotFound(err)
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(servicePort(reg)))), nil
}

// ownedByRegistry tells whether a Registry controls o.
func ownedByRegistry(o client.Object) bool {
	owner := metav1.GetControllerOf(o)
	return owner != nil && owner.Kind == "Registry" && owner.APIVersion == uniregv1.GroupVersion.String()
}

func secretName(tok *uniregv1.RegistryToken) string {
	if tok.Spec.SecretName != "" {
		return tok.Spec.SecretName
	}
	return tok.Name + "-token"
}

// tokenValue is the token of spec.secretRef, or the one already issued in
// the token's Secret, or a new one.
func (r *RegistryTokenReconciler) tokenValue(ctx context.Context, tok *uniregv1.RegistryToken) (string, error) {
	if ref := tok.Spec.SecretRef; ref != nil {
		s := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: ref.Name}, s); err != nil {
			return "", client.IgnoreNotFound(err)
		}
		return string(s.Data[keyToken]), nil
	}
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: secretName(tok)}, s)
	if err == nil && len(s.Data[keyToken]) > 0 && metav1.IsControlledBy(s, tok) {
		return string(s.Data[keyToken]), nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return "", err
	}
	return authstore.NewToken()
}

// writeSecret writes the credential in the forms clients take: an
// imagePullSecret (.dockerconfigjson), the raw token, an .npmrc and the URL.
func (r *RegistryTokenReconciler) writeSecret(ctx context.Context, tok *uniregv1.RegistryToken, reg *uniregv1.Registry, token string) error {
	base := publicURL(reg)
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("registry URL %q: %w", base, err)
	}
	user := tokenUser(tok)
	cred := map[string]string{
		"username": user, "password": token, "auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + token)),
	}
	auths := map[string]any{u.Host: cred}
	if host, err := r.nodeHost(ctx, reg); err != nil {
		return err
	} else if host != "" {
		auths[host] = cred
	}
	dockercfg, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		return err
	}
	prefix := npmPrefix(reg)
	npmrc := fmt.Sprintf("registry=%s%s/\n//%s%s/:_authToken=%s\n", base, prefix, u.Host, prefix, token)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tok.Namespace, Name: secretName(tok)}}
	_, err = controllerutil.CreateOrUpdate(ctx, r.Client, s, func() error {
		if s.CreationTimestamp.IsZero() {
			s.Type = corev1.SecretTypeDockerConfigJson
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[labelRegistry] = reg.Name
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[annotationTokenHash] = authstore.HashToken(token)
		s.Data = map[string][]byte{
			corev1.DockerConfigJsonKey: dockercfg,
			keyToken:                   []byte(token),
			keyNPMRC:                   []byte(npmrc),
			keyRegistry:                []byte(base),
		}
		return controllerutil.SetControllerReference(tok, s, r.Scheme)
	})
	return err
}

// SetupWithManager registers the controller: tokens, their Secrets, and the
// Registries and RegistryScopes they name.
func (r *RegistryTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexTokensByScope(mgr); err != nil {
		return err
	}
	tokensNaming := func(field string) handler.MapFunc {
		return func(ctx context.Context, o client.Object) []reconcile.Request {
			var list uniregv1.RegistryTokenList
			if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{field: o.GetName()}); err != nil {
				return nil
			}
			out := make([]reconcile.Request, 0, len(list.Items))
			for i := range list.Items {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
			return out
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&uniregv1.RegistryToken{}).
		Owns(&corev1.Secret{}).
		Watches(&uniregv1.Registry{}, handler.EnqueueRequestsFromMapFunc(tokensNaming(indexRegistryRef))).
		Watches(&uniregv1.RegistryScope{}, handler.EnqueueRequestsFromMapFunc(tokensNaming(indexScopeRef))).
		// A Registry's Service (same name) gets its ClusterIP: see nodeHost.
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(tokensNaming(indexRegistryRef)),
			builder.WithPredicates(predicate.NewPredicateFuncs(ownedByRegistry))).
		Named("registrytoken").
		Complete(r)
}
