package controllers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
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
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// RegistryTokenReconciler turns a RegistryToken into a Secret holding a
// working credential for its Registry. The raw token exists only in that
// Secret; the Registry's auth store gets its hash.
type RegistryTokenReconciler struct {
	client.Client
	// APIReader reads from the API server, not the cache: spec.secretRef
	// source Secrets are the user's, unlabelled, and not in the manager's
	// cache (CacheOptions); it also finds a spec.secretName Secret the
	// cache does not hold. Required.
	APIReader client.Reader
	// SourceSecrets is a cache of the metadata of Secrets (name and the
	// opt-in annotation only, see sourceSecretsCache), so a change to a
	// spec.secretRef source reaches its token at once.
	SourceSecrets cache.Cache
	// WatchNamespaceLabels re-reconciles a Namespace's tokens when its
	// labels change; off in a namespaced install (see namespacesFromAPI).
	WatchNamespaceLabels bool
	Scheme               *runtime.Scheme
	Recorder             record.EventRecorder
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

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
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// Reconcile issues or refreshes one token's Secret and status.
func (r *RegistryTokenReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	tok := &uniregv1.RegistryToken{}
	if err := r.Get(ctx, req.NamespacedName, tok); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := tok.Status.DeepCopy()
	result, err := r.reconcile(ctx, tok)
	if err == nil {
		tok.Status.ObservedGeneration = tok.Generation
	}
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

// setIssued sets Ready True: the credential is in the token's Secret, with
// an event when the token becomes Ready.
func (r *RegistryTokenReconciler) setIssued(tok *uniregv1.RegistryToken) {
	if was := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady); was == nil || was.Status != metav1.ConditionTrue {
		r.Recorder.Event(tok, corev1.EventTypeNormal, uniregv1.ReasonIssued, "token issued in Secret "+tok.Status.SecretName)
	}
	meta.SetStatusCondition(&tok.Status.Conditions, metav1.Condition{
		Type: uniregv1.ConditionReady, Status: metav1.ConditionTrue, Reason: uniregv1.ReasonIssued,
		Message: "credential in Secret " + tok.Status.SecretName, ObservedGeneration: tok.Generation,
	})
}

// notReady sets Ready False with the reason of a refusal, with a warning
// event when the reason is new.
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
	reg, refused, err := r.policyRegistry(ctx, tok)
	if err != nil {
		return ctrl.Result{}, err
	}
	if refused != nil {
		r.notReady(tok, refused.reason, refused.message)
		return ctrl.Result{}, nil
	}
	if refused, err = admission(ctx, r.Client, reg, tok); err != nil {
		return ctrl.Result{}, err
	}
	if refused != nil {
		r.notReady(tok, refused.reason, refused.message)
		return ctrl.Result{}, nil
	}
	scopes, err := tokenScopes(ctx, r.Client, tok)
	var invalid *invalidScopeError
	switch {
	case errors.As(err, &invalid):
		r.notReady(tok, uniregv1.ReasonInvalidScope, invalid.Error())
		return ctrl.Result{}, nil
	case apierrors.IsNotFound(err):
		r.notReady(tok, uniregv1.ReasonScopeNotFound, err.Error())
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	if refused = scopeRefusal(reg, tok, scopes); refused != nil {
		r.notReady(tok, refused.reason, refused.message)
		return ctrl.Result{}, nil
	}
	expires := r.expiry(tok)
	if expires != nil {
		tok.Status.ExpiresAt = expires
		if !r.now().Before(expires.Time) {
			r.notReady(tok, uniregv1.ReasonExpired, "the token expired at "+expires.UTC().Format(time.RFC3339))
			return ctrl.Result{}, nil
		}
	}
	cred, err := r.issue(ctx, tok, reg)
	if errors.As(err, &refused) {
		r.notReady(tok, refused.reason, refused.message)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	r.setIssued(tok)
	next := nextChange(tok, cred)
	if expires != nil && (next.IsZero() || expires.Time.Before(next)) {
		next = expires.Time
	}
	if !next.IsZero() {
		return ctrl.Result{RequeueAfter: next.Sub(r.now()) + time.Second}, nil
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
func (r *RegistryTokenReconciler) issue(ctx context.Context, tok *uniregv1.RegistryToken, reg *uniregv1.Registry) (*credential, error) {
	own, err := r.ownSecret(ctx, tok)
	if err != nil {
		return nil, err
	}
	cred, err := r.tokenValue(ctx, tok, own)
	if refused := (*refusal)(nil); errors.As(err, &refused) {
		if werr := r.withdraw(ctx, own); werr != nil {
			return nil, werr
		}
	}
	if err != nil {
		return nil, err
	}
	hash := authstore.HashToken(cred.token)
	tok.Status.TokenID = authstore.TokenID(hash)
	earlier, err := r.earlierHolder(ctx, tok, hash)
	if err != nil {
		return nil, err
	}
	if earlier != nil {
		return nil, &refusal{uniregv1.ReasonDuplicateToken, fmt.Sprintf("RegistryToken %s/%s, created earlier, has the same token; "+
			"the auth store holds a token once, so this one is not projected (give it a token of its own)", earlier.Namespace, earlier.Name)}
	}
	if err := r.writeSecret(ctx, tok, reg, own, cred); err != nil {
		return nil, err
	}
	tok.Status.SecretName = secretName(tok)
	issued := metav1.NewTime(cred.issuedAt)
	tok.Status.IssuedAt = &issued
	if tok.Spec.SecretRef == nil {
		tok.Status.Rotation = cred.rotation
	}
	return cred, nil
}

// ownSecret is the Secret spec.secretName names when the operator created it
// for this token (its controller is this RegistryToken), nil when there is
// none yet. Any other Secret of that name is a SecretConflict: it is never
// written, so a token cannot overwrite, adopt (and on deletion garbage
// collect) a Secret it was not made for.
func (r *RegistryTokenReconciler) ownSecret(ctx context.Context, tok *uniregv1.RegistryToken) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: tok.Namespace, Name: secretName(tok)}
	// The cache holds only Secrets the operator labels; one it lacks (anyone's,
	// or this token's own from before the label) is looked up on the API
	// server, so it is never taken for a Secret to create.
	err := r.Get(ctx, key, s)
	if apierrors.IsNotFound(err) {
		err = r.APIReader.Get(ctx, key, s)
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	case !metav1.IsControlledBy(s, tok):
		return nil, &refusal{uniregv1.ReasonSecretConflict, fmt.Sprintf("Secret %s exists and was not created for this RegistryToken; "+
			"it is left untouched (choose another spec.secretName)", s.Name)}
	}
	return s, nil
}

// tokenValue is the token of spec.secretRef, or the one the operator
// generated before (in own) or its rotation, or a new one.
func (r *RegistryTokenReconciler) tokenValue(ctx context.Context, tok *uniregv1.RegistryToken, own *corev1.Secret) (*credential, error) {
	now := r.now().UTC().Truncate(time.Second)
	if tok.Spec.SecretRef != nil {
		token, err := r.sourceToken(ctx, tok)
		if err != nil {
			return nil, err
		}
		c := &credential{token: token, issuedAt: now}
		if own != nil && own.Annotations[annotationTokenHash] == authstore.HashToken(token) {
			if t, err := time.Parse(time.RFC3339, own.Annotations[annotationIssuedAt]); err == nil {
				c.issuedAt = t
			}
		}
		return c, nil
	}
	if own != nil && len(own.Data[keyToken]) > 0 && own.Annotations[annotationTokenSource] == "" {
		return rotated(tok, own, now)
	}
	token, err := authstore.NewToken()
	if err != nil {
		return nil, err
	}
	return &credential{token: token, issuedAt: now, rotation: tok.Annotations[uniregv1.RotateAnnotation]}, nil
}

// sourceToken reads key "token" of the spec.secretRef Secret, only when that
// Secret names this token in uniregv1.SecretRefAnnotation and the value is a
// unireg token: the operator reads any Secret with its own rights, so without
// the opt-in a RegistryToken would copy any Secret for whoever made it.
func (r *RegistryTokenReconciler) sourceToken(ctx context.Context, tok *uniregv1.RegistryToken) (string, error) {
	name := tok.Spec.SecretRef.Name
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: tok.Namespace, Name: name}, s)
	if err != nil && !apierrors.IsNotFound(err) {
		return "", err
	}
	if err != nil || s.Annotations[uniregv1.SecretRefAnnotation] != tok.Name {
		return "", &refusal{uniregv1.ReasonSecretRefNotAllowed, fmt.Sprintf("Secret %s does not exist or does not allow this token to use it "+
			"(it needs the annotation %s: %s)", name, uniregv1.SecretRefAnnotation, tok.Name)}
	}
	token, ok := s.Data[keyToken]
	if !ok || len(token) == 0 {
		return "", &refusal{uniregv1.ReasonSecretNotFound, fmt.Sprintf("Secret %s has no key %q", name, keyToken)}
	}
	if !tokenShape.Match(token) {
		return "", &refusal{uniregv1.ReasonInvalidToken, fmt.Sprintf("key %q of Secret %s is not a unireg token (%s and 43 letters or digits)",
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
	for _, k := range []string{annotationTokenHash, annotationTokenSource, annotationPreviousHashes, annotationIssuedAt, annotationRotation} {
		delete(own.Annotations, k)
	}
	return r.Update(ctx, own)
}

// earlierHolder is the Ready token of the same Registry, created before tok
// (projectedBefore), that holds the token whose hash is given: then tok is a
// duplicate. Candidates share the token ID (a prefix of the hash), and the
// full hashes decide.
func (r *RegistryTokenReconciler) earlierHolder(ctx context.Context, tok *uniregv1.RegistryToken, hash string) (*uniregv1.RegistryToken, error) {
	var list uniregv1.RegistryTokenList
	if err := r.List(ctx, &list, client.MatchingFields{indexTokenID: authstore.TokenID(hash)}); err != nil {
		return nil, err
	}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID == tok.UID || registryOf(other) != registryOf(tok) || !projectedBefore(other, tok) ||
			!meta.IsStatusConditionTrue(other.Status.Conditions, uniregv1.ConditionReady) {
			continue
		}
		hashes, err := projectedHashes(ctx, r.Client, other)
		if err != nil {
			return nil, err
		}
		for _, h := range hashes {
			if h.hash == hash {
				return other, nil
			}
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

// writeSecret writes the credential in the forms clients take: an
// imagePullSecret (.dockerconfigjson), the raw token, an .npmrc and the URL.
// It creates the Secret, controlled by tok, or updates own, the one it
// created before; it writes nothing else (see ownSecret).
func (r *RegistryTokenReconciler) writeSecret(ctx context.Context, tok *uniregv1.RegistryToken, reg *uniregv1.Registry, own *corev1.Secret, cred *credential) error {
	token := cred.token
	base := publicURL(reg)
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("registry URL %q: %w", base, err)
	}
	user := tokenUser(tok)
	login := map[string]string{
		"username": user, "password": token, "auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + token)),
	}
	// The hosts the Registry publishes (the Service's ClusterIP, which
	// nodes pull from) and the one of the URL written below, which the
	// spec alone decides.
	auths := map[string]any{u.Host: login}
	for _, h := range reg.Status.PullHosts {
		auths[h] = login
	}
	dockercfg, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		return err
	}
	prefix := npmPrefix(reg)
	// always-auth: yarn classic sends the token on reads only with it (npm
	// 11 warns that it does not know the key, harmlessly).
	npmrc := fmt.Sprintf("registry=%s%s/\n//%s%s/:_authToken=%s\n//%s%s/:always-auth=true\n", base, prefix, u.Host, prefix, token, u.Host, prefix)
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
	// The label the manager's cache selects (CacheOptions), and the
	// Registry, of any namespace, whose auth store the Secret feeds.
	s.Labels[labelManagedBy] = managedBy
	s.Labels[labelRegistry] = reg.Name
	s.Labels[labelRegistryNamespace] = reg.Namespace
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[annotationTokenHash] = authstore.HashToken(token)
	setRotationAnnotations(s, cred, tok.Spec.SecretRef == nil)
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
// Registries (of any namespace) and RegistryScopes they name, the
// Namespaces whose labels admit them, the Secrets of their spec.secretRef,
// and the tokens that may hold the same token.
func (r *RegistryTokenReconciler) SetupWithManager(mgr ctrl.Manager) error {
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
	b := ctrl.NewControllerManagedBy(mgr).
		For(&uniregv1.RegistryToken{}).
		Owns(&corev1.Secret{}).
		// A Registry changed (its tokenPolicy, or the pull hosts its
		// status publishes): the tokens of every namespace naming it
		// decide again.
		Watches(&uniregv1.Registry{}, handler.EnqueueRequestsFromMapFunc(r.tokensOfRegistry)).
		Watches(&uniregv1.RegistryScope{}, handler.EnqueueRequestsFromMapFunc(r.tokensInNamespace(indexScopeRef))).
		// A token holding some token ID changed (became Ready, expired,
		// went): the others with that ID decide again who is the duplicate.
		// Updates map both the old and the new object.
		Watches(&uniregv1.RegistryToken{}, handler.EnqueueRequestsFromMapFunc(r.tokensSharingID))
	if r.WatchNamespaceLabels {
		// A Namespace's labels changed: its tokens for Registries of other
		// namespaces are admitted, or not, at once.
		b = b.Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.foreignTokensOf),
			builder.WithPredicates(predicate.LabelChangedPredicate{}))
	}
	if r.SourceSecrets != nil {
		// A spec.secretRef Secret changed, lost its opt-in, or went: its
		// token re-reads it now, not at the next resync. The manager's cache
		// does not hold these Secrets (its selector is the operator's
		// label, and it applies to metadata-only informers of Secrets too),
		// so they come from a cache of their own that keeps only metadata.
		b = b.WatchesRawSource(source.Kind(r.SourceSecrets, sourceSecretMetadata(),
			handler.TypedEnqueueRequestsFromMapFunc(func(ctx context.Context, o *metav1.PartialObjectMetadata) []reconcile.Request {
				return r.tokensInNamespace(indexSecretRef)(ctx, o)
			})))
	}
	return b.Named("registrytoken").Complete(r)
}

// tokensOfRegistry maps a Registry to the tokens of every namespace that
// name it.
func (r *RegistryTokenReconciler) tokensOfRegistry(ctx context.Context, o client.Object) []reconcile.Request {
	var list uniregv1.RegistryTokenList
	if err := r.List(ctx, &list, client.MatchingFields{indexRegistryRef: registryRefKey(client.ObjectKeyFromObject(o))}); err != nil {
		return nil
	}
	return requests(list.Items, func(*uniregv1.RegistryToken) bool { return true })
}

// tokensInNamespace maps an object to the tokens of its namespace that
// name it in the indexed field.
func (r *RegistryTokenReconciler) tokensInNamespace(field string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list uniregv1.RegistryTokenList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{field: o.GetName()}); err != nil {
			return nil
		}
		return requests(list.Items, func(*uniregv1.RegistryToken) bool { return true })
	}
}

// foreignTokensOf maps a Namespace to its tokens for Registries of other
// namespaces: the ones its labels admit.
func (r *RegistryTokenReconciler) foreignTokensOf(ctx context.Context, o client.Object) []reconcile.Request {
	var list uniregv1.RegistryTokenList
	if err := r.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
		return nil
	}
	return requests(list.Items, crossNamespace)
}

func requests(tokens []uniregv1.RegistryToken, keep func(*uniregv1.RegistryToken) bool) []reconcile.Request {
	out := make([]reconcile.Request, 0, len(tokens))
	for i := range tokens {
		if keep(&tokens[i]) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&tokens[i])})
		}
	}
	return out
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
