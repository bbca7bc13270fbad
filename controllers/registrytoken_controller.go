package controllers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
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
	// ReasonSecretNotFound: the spec.secretRef Secret opts the token in but
	// has no key "token".
	ReasonSecretNotFound = "SecretNotFound"
	ReasonExpired        = "Expired"
	// ReasonSecretRefNotAllowed: the spec.secretRef Secret does not exist or
	// does not name this token in uniregv1.SecretRefAnnotation (one reason
	// for both, so a token cannot probe which Secrets exist).
	ReasonSecretRefNotAllowed = "SecretRefNotAllowed"
	// ReasonInvalidToken: the spec.secretRef Secret's token is not shaped
	// like a unireg token.
	ReasonInvalidToken = "InvalidToken"
	// ReasonSecretConflict: spec.secretName is a Secret the operator did not
	// create for this token; it is left untouched.
	ReasonSecretConflict = "SecretConflict"
	// ReasonDuplicateToken: an earlier token of the same Registry (see
	// projectedBefore) holds the same token; the server's auth store cannot
	// hold a hash twice, so only the earlier one is projected.
	ReasonDuplicateToken = "DuplicateToken"
)

// annotationTokenSource on a token's Secret names the spec.secretRef Secret
// its token was copied from; absent, the operator generated the token. Only
// a generated token is kept when spec.secretRef goes away: a copy would
// outlive the source's opt-in.
const annotationTokenSource = "unireg.dev/token-source"

// indexSecretRef indexes RegistryTokens by the Secret of spec.secretRef,
// so a change to that Secret reaches its token at once.
const indexSecretRef = "spec.secretRef.name"

// indexTokenID indexes RegistryTokens by status.tokenID, so tokens that may
// hold the same token find each other (see earlierHolder).
const indexTokenID = "status.tokenID"

// tokenShape is the form authstore.NewToken gives tokens: the prefix and 43
// base62 characters (256 bits).
var tokenShape = regexp.MustCompile(`^` + regexp.QuoteMeta(authstore.TokenPrefix) + `[0-9A-Za-z]{43}$`)

// refusal is why a token cannot be issued: the reason and message of its
// Ready condition. Phases return it as an error.
type refusal struct{ reason, message string }

func (e *refusal) Error() string { return e.reason + ": " + e.message }

// +kubebuilder:rbac:groups=unireg.dev,resources=registrytokens,verbs=get;list;watch
// +kubebuilder:rbac:groups=unireg.dev,resources=registrytokens/status,verbs=update
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
	if registryOf(tok).Namespace != tok.Namespace {
		// Until Registry.spec.tokenPolicy is enforced, no Registry admits
		// tokens of another namespace.
		r.notReady(tok, "NamespaceNotAllowed", "the Registry's tokenPolicy does not admit tokens of this namespace")
		return ctrl.Result{}, nil
	}
	reg := &uniregv1.Registry{}
	if err := r.Get(ctx, registryOf(tok), reg); err != nil {
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
	err := r.issue(ctx, tok, reg)
	var refused *refusal
	if errors.As(err, &refused) {
		r.notReady(tok, refused.reason, refused.message)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
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

// issue finds the token's value and writes its Secret, or returns the
// refusal that keeps it from being Ready. The order matters: whose Secret
// spec.secretName is comes first (a refused Secret must not make a new token
// every reconcile), then where the token comes from, then whether an earlier
// token already holds it.
func (r *RegistryTokenReconciler) issue(ctx context.Context, tok *uniregv1.RegistryToken, reg *uniregv1.Registry) error {
	own, err := r.ownSecret(ctx, tok)
	if err != nil {
		return err
	}
	token, err := r.tokenValue(ctx, tok, own)
	if refused := (*refusal)(nil); errors.As(err, &refused) {
		if werr := r.withdraw(ctx, own); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	hash := authstore.HashToken(token)
	tok.Status.TokenID = tokenID(hash)
	earlier, err := r.earlierHolder(ctx, tok, hash)
	if err != nil {
		return err
	}
	if earlier != nil {
		return &refusal{ReasonDuplicateToken, fmt.Sprintf("RegistryToken %s/%s, created earlier, has the same token; "+
			"the auth store holds a token once, so this one is not projected (give it a token of its own)", earlier.Namespace, earlier.Name)}
	}
	if err := r.writeSecret(ctx, tok, reg, own, token); err != nil {
		return err
	}
	tok.Status.SecretName = secretName(tok)
	return nil
}

func tokenID(hash string) string { return hash[len("sha256:") : len("sha256:")+12] }

// ownSecret is the Secret spec.secretName names when the operator created it
// for this token (its controller is this RegistryToken), nil when there is
// none yet. Any other Secret of that name is a SecretConflict: it is never
// written, so a token cannot overwrite, adopt (and on deletion garbage
// collect) a Secret it was not made for.
func (r *RegistryTokenReconciler) ownSecret(ctx context.Context, tok *uniregv1.RegistryToken) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: secretName(tok)}, s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	case !metav1.IsControlledBy(s, tok):
		return nil, &refusal{ReasonSecretConflict, fmt.Sprintf("Secret %s exists and was not created for this RegistryToken; "+
			"it is left untouched (choose another spec.secretName)", s.Name)}
	}
	return s, nil
}

// tokenValue is the token of spec.secretRef, or the one the operator
// generated before (in own), or a new one.
func (r *RegistryTokenReconciler) tokenValue(ctx context.Context, tok *uniregv1.RegistryToken, own *corev1.Secret) (string, error) {
	if tok.Spec.SecretRef != nil {
		return r.sourceToken(ctx, tok)
	}
	if own != nil && len(own.Data[keyToken]) > 0 && own.Annotations[annotationTokenSource] == "" {
		return string(own.Data[keyToken]), nil
	}
	return authstore.NewToken()
}

// sourceToken reads key "token" of the spec.secretRef Secret, only when that
// Secret names this token in uniregv1.SecretRefAnnotation and the value is a
// unireg token: the operator reads any Secret with its own rights, so without
// the opt-in a RegistryToken would copy any Secret for whoever made it.
func (r *RegistryTokenReconciler) sourceToken(ctx context.Context, tok *uniregv1.RegistryToken) (string, error) {
	name := tok.Spec.SecretRef.Name
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: name}, s)
	if err != nil && !apierrors.IsNotFound(err) {
		return "", err
	}
	if err != nil || s.Annotations[uniregv1.SecretRefAnnotation] != tok.Name {
		return "", &refusal{ReasonSecretRefNotAllowed, fmt.Sprintf("Secret %s does not exist or does not allow this token to use it "+
			"(it needs the annotation %s: %s)", name, uniregv1.SecretRefAnnotation, tok.Name)}
	}
	token, ok := s.Data[keyToken]
	if !ok || len(token) == 0 {
		return "", &refusal{ReasonSecretNotFound, fmt.Sprintf("Secret %s has no key %q", name, keyToken)}
	}
	if !tokenShape.Match(token) {
		return "", &refusal{ReasonInvalidToken, fmt.Sprintf("key %q of Secret %s is not a unireg token (%s and 43 letters or digits)",
			keyToken, name, authstore.TokenPrefix)}
	}
	return string(token), nil
}

// withdraw takes the credential out of the token's own Secret when the token
// it copied may no longer be used, so the copy does not outlive the source's
// opt-in. The Secret stays (a dockerconfigjson Secret needs its key) and
// keeps what pods mount from it valid JSON.
func (r *RegistryTokenReconciler) withdraw(ctx context.Context, own *corev1.Secret) error {
	if own == nil || own.Annotations[annotationTokenSource] == "" {
		return nil
	}
	own.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}
	delete(own.Annotations, annotationTokenHash)
	delete(own.Annotations, annotationTokenSource)
	return r.Update(ctx, own)
}

// earlierHolder is the Ready token of the same Registry, created before tok
// (projectedBefore), that holds the token whose hash is given: then tok is a
// duplicate. Candidates share the token ID (a prefix of the hash), and the
// full hashes decide.
func (r *RegistryTokenReconciler) earlierHolder(ctx context.Context, tok *uniregv1.RegistryToken, hash string) (*uniregv1.RegistryToken, error) {
	var list uniregv1.RegistryTokenList
	if err := r.List(ctx, &list, client.MatchingFields{indexTokenID: tokenID(hash)}); err != nil {
		return nil, err
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == tok.UID || registryOf(other) != registryOf(tok) || !projectedBefore(other, tok) ||
			!meta.IsStatusConditionTrue(other.Status.Conditions, uniregv1.ConditionReady) {
			continue
		}
		h, err := projectedHash(ctx, r.Client, other)
		if err != nil {
			return nil, err
		}
		if h == hash {
			return other, nil
		}
	}
	return nil, nil
}

// registryOf is the Registry a token is for.
func registryOf(t *uniregv1.RegistryToken) types.NamespacedName {
	ns := t.Spec.RegistryRef.Namespace
	if ns == "" {
		ns = t.Namespace
	}
	return types.NamespacedName{Namespace: ns, Name: t.Spec.RegistryRef.Name}
}

// projectedBefore orders the tokens of a Registry: by creation, then
// namespace and name. When two hold the same token the earlier one is
// projected and the later one is a DuplicateToken, whatever order they are
// reconciled in.
func projectedBefore(a, b *uniregv1.RegistryToken) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// projectedHash is the hash a token puts in its Registry's auth store: the
// unireg.dev/token-hash annotation of its Secret, when that Secret is the
// token's own (its controller); "" when there is none.
func projectedHash(ctx context.Context, c client.Reader, t *uniregv1.RegistryToken) (string, error) {
	if t.Status.SecretName == "" {
		return "", nil
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: t.Namespace, Name: t.Status.SecretName}, s); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(s, t) {
		return "", nil
	}
	return s.Annotations[annotationTokenHash], nil
}

// writeSecret writes the credential in the forms clients take: an
// imagePullSecret (.dockerconfigjson), the raw token, an .npmrc and the URL.
// It creates the Secret, controlled by tok, or updates own, the one it
// created before; it writes nothing else (see ownSecret).
func (r *RegistryTokenReconciler) writeSecret(ctx context.Context, tok *uniregv1.RegistryToken, reg *uniregv1.Registry, own *corev1.Secret, token string) error {
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
	s := own
	if s == nil {
		s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tok.Namespace, Name: secretName(tok)}, Type: corev1.SecretTypeDockerConfigJson}
		if err := ctrl.SetControllerReference(tok, s, r.Scheme); err != nil {
			return err
		}
	}
	before := s.DeepCopy()
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[labelRegistry] = reg.Name
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[annotationTokenHash] = authstore.HashToken(token)
	if ref := tok.Spec.SecretRef; ref != nil {
		s.Annotations[annotationTokenSource] = ref.Name
	} else {
		delete(s.Annotations, annotationTokenSource)
	}
	s.Data = map[string][]byte{
		corev1.DockerConfigJsonKey: dockercfg,
		keyToken:                   []byte(token),
		keyNPMRC:                   []byte(npmrc),
		keyRegistry:                []byte(base),
	}
	if own == nil {
		return r.Create(ctx, s)
	}
	if equality.Semantic.DeepEqual(before, s) {
		return nil
	}
	// The resourceVersion of the read: a Secret changed meanwhile (another
	// owner, say) is a conflict and a new reconcile, never overwritten.
	return r.Update(ctx, s)
}

// SetupWithManager registers the controller: tokens, their Secrets, the
// Registries and RegistryScopes they name, the Secrets of their
// spec.secretRef, and the tokens that may hold the same token.
func (r *RegistryTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexTokensByScope(mgr); err != nil {
		return err
	}
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(context.Background(), &uniregv1.RegistryToken{}, indexSecretRef, func(o client.Object) []string {
		if ref := o.(*uniregv1.RegistryToken).Spec.SecretRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(context.Background(), &uniregv1.RegistryToken{}, indexTokenID, func(o client.Object) []string {
		if id := o.(*uniregv1.RegistryToken).Status.TokenID; id != "" {
			return []string{id}
		}
		return nil
	}); err != nil {
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
		// A spec.secretRef Secret changed, lost its opt-in, or went: its
		// token re-reads it now, not at the next resync. Only the Secret's
		// name is used here.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(tokensNaming(indexSecretRef))).
		// A token holding some token ID changed (became Ready, expired,
		// went): the others with that ID decide again who is the duplicate.
		// Updates map both the old and the new object.
		Watches(&uniregv1.RegistryToken{}, handler.EnqueueRequestsFromMapFunc(r.tokensSharingID)).
		// A Registry's Service (same name) gets its ClusterIP: see nodeHost.
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(tokensNaming(indexRegistryRef)),
			builder.WithPredicates(predicate.NewPredicateFuncs(ownedByRegistry))).
		Named("registrytoken").
		Complete(r)
}

// tokensSharingID maps a token to the other tokens with its token ID.
func (r *RegistryTokenReconciler) tokensSharingID(ctx context.Context, o client.Object) []reconcile.Request {
	id := o.(*uniregv1.RegistryToken).Status.TokenID
	if id == "" {
		return nil
	}
	var list uniregv1.RegistryTokenList
	if err := r.List(ctx, &list, client.MatchingFields{indexTokenID: id}); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if list.Items[i].UID != o.GetUID() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}
