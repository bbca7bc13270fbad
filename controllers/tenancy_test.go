package controllers

// Whoever may create a RegistryToken must not be able to freeze a Registry's
// auth store, take over a Secret of the namespace, or read one (issue 15,
// "must not happen" 1-3). Reasons and annotations are spelled out as strings:
// they are the API users and their tooling see.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// optIn is the annotation a Secret carries to let one RegistryToken bring
// its token with spec.secretRef.
const optIn = "unireg.dev/registry-token"

// readyReason is the reason of a token's Ready condition, "" without one.
func readyReason(ns, name string) (string, error) {
	tok := &uniregv1.RegistryToken{}
	if err := get(ns, name, tok); err != nil {
		return "", err
	}
	if c := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady); c != nil {
		return c.Reason, nil
	}
	return "", nil
}

func waitReason(t *testing.T, ns, name, reason string) {
	t.Helper()
	eventually(t, name+" has reason "+reason, func() (bool, error) {
		got, err := readyReason(ns, name)
		return got == reason, err
	})
}

// waitEvent waits for an event of the given reason about an object.
func waitEvent(t *testing.T, ns, object, reason string) {
	t.Helper()
	eventually(t, "event "+reason+" for "+object, func() (bool, error) {
		events := &corev1.EventList{}
		err := k8sClient.List(context.Background(), events, client.InNamespace(ns))
		for _, e := range events.Items {
			if e.InvolvedObject.Name == object && e.Reason == reason && e.Type == corev1.EventTypeWarning {
				return true, nil
			}
		}
		return false, err
	})
}

// sourceSecret is a Secret holding a token for spec.secretRef; allowed, when
// not empty, is the RegistryToken it opts in.
func sourceSecret(ns, name, token, allowed string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{"token": []byte(token)}}
	if allowed != "" {
		s.Annotations = map[string]string{optIn: allowed}
	}
	return s
}

func newToken(t *testing.T) string {
	t.Helper()
	tok, err := authstore.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// storeHolds polls until the Registry's auth store parses and holds exactly
// these hashes, with these users.
func storeHolds(t *testing.T, ns, reg string, want map[string]string) {
	t.Helper()
	eventually(t, fmt.Sprintf("auth store holds %v", want), func() (bool, error) {
		f, err := tryAuthStore(ns, reg)
		if err != nil {
			return false, err
		}
		got := map[string]string{}
		for _, tok := range f.Tokens {
			got[tok.Hash] = tok.User
		}
		if !maps.Equal(got, want) {
			return false, fmt.Errorf("holds %v", got)
		}
		return true, nil
	})
}

func tokenSpec(scopes ...string) uniregv1.RegistryTokenSpec {
	return uniregv1.RegistryTokenSpec{RegistryRef: uniregv1.RegistryReference{Name: "reg"}, Scopes: scopes}
}

func TestDuplicateTokenDoesNotFreezeTheAuthStore(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "first"}, Spec: tokenSpec("oci:repository:first/*:push")})
	waitReason(t, ns, "first", uniregv1.ReasonIssued)
	s := &corev1.Secret{}
	if err := get(ns, "first-token", s); err != nil {
		t.Fatal(err)
	}
	stolen := string(s.Data[keyToken])
	hash := authstore.HashToken(stolen)

	// Someone who learnt first's token brings it as a second token's, from
	// a Secret that opts that token in.
	create(t, sourceSecret(ns, "copy", stolen, "second"))
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "second"}, Spec: uniregv1.RegistryTokenSpec{
		RegistryRef: uniregv1.RegistryReference{Name: "reg"}, Scopes: []string{"*"}, SecretRef: &corev1.LocalObjectReference{Name: "copy"}}})
	waitReason(t, ns, "second", "DuplicateToken")
	waitEvent(t, ns, "second", "DuplicateToken")

	// The store still parses and still takes changes: the earlier token
	// keeps its hash (and its user, not the duplicate's), a new token is in.
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "third"}, Spec: tokenSpec("oci:repository:third/*:pull")})
	waitReason(t, ns, "third", uniregv1.ReasonIssued)
	third := &corev1.Secret{}
	if err := get(ns, "third-token", third); err != nil {
		t.Fatal(err)
	}
	thirdHash := authstore.HashToken(string(third.Data[keyToken]))
	storeHolds(t, ns, "reg", map[string]string{hash: "first", thirdHash: "third"})
	reg := &uniregv1.Registry{}
	eventually(t, "the Registry says its tokens are projected", func() (bool, error) {
		err := get(ns, "reg", reg)
		c := meta.FindStatusCondition(reg.Status.Conditions, "TokensProjected")
		return c != nil && c.Status == metav1.ConditionTrue && reg.Status.Tokens == 2, err
	})

	// The earlier token gone, the later one is the holder.
	if err := k8sClient.Delete(context.Background(), &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "first"}}); err != nil {
		t.Fatal(err)
	}
	waitReason(t, ns, "second", uniregv1.ReasonIssued)
	storeHolds(t, ns, "reg", map[string]string{hash: "second", thirdHash: "third"})
}

// TestProjectionLeavesOutWhatTheServerWouldRefuse drives one reconcile of a
// Registry whose tokens say Ready while their Secrets hold a hash the server
// refuses, or the hash of an earlier token: the state of the moments between
// two reconciles, which the live controllers repair too fast for the API
// server to show it. Hence a fake client here.
func TestProjectionLeavesOutWhatTheServerWouldRefuse(t *testing.T) {
	scheme := testScheme()
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "reg", UID: "reg-uid"}}
	good := newToken(t)
	objs := []client.Object{reg}
	for i, c := range []struct{ name, hash string }{
		{"good", authstore.HashToken(good)},
		{"bad", "sha256:not-a-hash"},
		{"twin", authstore.HashToken(good)}, // created later than good
	} {
		tok := &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: c.name}, Spec: tokenSpec("*")}
		objs = append(objs, staleReady(t, scheme, tok, i, c.hash)...)
	}
	c := fakeClient(scheme, objs...)
	events := record.NewFakeRecorder(10)
	f := projectOnce(t, c, scheme, events, reg)
	if len(f.Tokens) != 1 || f.Tokens[0].Hash != authstore.HashToken(good) || f.Tokens[0].User != "good" {
		t.Fatalf("projected %+v, want the earlier good token only", f.Tokens)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(reg), reg); err != nil {
		t.Fatal(err)
	}
	cond := meta.FindStatusCondition(reg.Status.Conditions, "TokensProjected")
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "TokensLeftOut" ||
		!strings.Contains(cond.Message, "ns/bad") || !strings.Contains(cond.Message, "ns/twin") {
		t.Fatalf("TokensProjected = %+v, want False/TokensLeftOut naming bad and twin", cond)
	}
	select {
	case e := <-events.Events:
		if !strings.Contains(e, "TokensLeftOut") {
			t.Fatalf("event %q, want TokensLeftOut", e)
		}
	default:
		t.Fatal("no event for the tokens left out")
	}
}

func TestSecretNameNeverTakesOverAnotherSecret(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db", Labels: map[string]string{"app": "db"}, Annotations: map[string]string{"owner": "dba"}},
		Data:       map[string][]byte{"db-password": []byte("s3cret")},
	})
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "owner"}, Spec: tokenSpec("oci:repository:a/*:pull")})
	waitReason(t, ns, "owner", uniregv1.ReasonIssued)
	waitPullHostsInSecret(t, ns, "reg", "owner-token")
	before := map[string]*corev1.Secret{"db": {}, "owner-token": {}, "reg-auth": {}}
	for name, s := range before {
		if err := get(ns, name, s); err != nil {
			t.Fatal(err)
		}
	}

	// A Secret nobody made for a token, another token's, the Registry's own.
	for token, target := range map[string]string{"grabber": "db", "thief": "owner-token", "forger": "reg-auth"} {
		spec := tokenSpec("*")
		spec.SecretName = target
		create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: token}, Spec: spec})
		waitReason(t, ns, token, "SecretConflict")
		waitEvent(t, ns, token, "SecretConflict")
	}
	unchanged := func(name string) {
		t.Helper()
		now := &corev1.Secret{}
		if err := get(ns, name, now); err != nil {
			t.Fatalf("Secret %s: %v", name, err)
		}
		was := before[name]
		if name == "reg-auth" { // the Registry rewrites its store as tokens come: compare owners only
			if !reflect.DeepEqual(now.OwnerReferences, was.OwnerReferences) {
				t.Fatalf("Secret %s changed owners: %+v", name, now.OwnerReferences)
			}
			return
		}
		if now.ResourceVersion != was.ResourceVersion || now.Type != was.Type || !reflect.DeepEqual(now.Data, was.Data) ||
			!maps.Equal(now.Labels, was.Labels) || !maps.Equal(now.Annotations, was.Annotations) ||
			!reflect.DeepEqual(now.OwnerReferences, was.OwnerReferences) {
			t.Fatalf("Secret %s was written:\nbefore %+v\nafter  %+v", name, was, now)
		}
	}
	for name := range before {
		unchanged(name)
	}
	storeHolds(t, ns, "reg", map[string]string{before["owner-token"].Annotations[annotationTokenHash]: "owner"})

	// envtest runs no garbage collector: what would collect the Secret in a
	// cluster is an owner reference to the deleted token, so none may exist.
	if err := k8sClient.Delete(context.Background(), &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grabber"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "grabber deleted", func() (bool, error) {
		return apierrors.IsNotFound(get(ns, "grabber", &uniregv1.RegistryToken{})), nil
	})
	time.Sleep(time.Second) // what the deletion may have set off
	unchanged("db")
	if s := before["db"]; len(s.OwnerReferences) != 0 || !bytes.Equal(s.Data["db-password"], []byte("s3cret")) {
		t.Fatalf("db Secret %+v", s)
	}
}

func TestSecretRefNeedsTheSourceSecretsOptIn(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	value := newToken(t)
	refTo := func(name, secret string) *uniregv1.RegistryToken {
		spec := tokenSpec("*")
		spec.SecretRef = &corev1.LocalObjectReference{Name: secret}
		return &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	}
	create(t, sourceSecret(ns, "plain", value, ""))         // no opt-in
	create(t, sourceSecret(ns, "theirs", value, "someone")) // another token's
	create(t, sourceSecret(ns, "weak", "hunter2", "guess")) // not a unireg token
	create(t, sourceSecret(ns, "ci-src", value, "ci"))      // opted in, below
	for name, secret := range map[string]string{"reader": "plain", "borrower": "theirs", "prober": "missing"} {
		create(t, refTo(name, secret))
		waitReason(t, ns, name, "SecretRefNotAllowed")
		waitEvent(t, ns, name, "SecretRefNotAllowed")
	}
	create(t, refTo("guess", "weak"))
	waitReason(t, ns, "guess", "InvalidToken")
	for _, name := range []string{"reader", "borrower", "prober", "guess"} {
		if err := get(ns, name+"-token", &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("a Secret %s-token exists (%v): the source was copied", name, err)
		}
	}

	create(t, refTo("ci", "ci-src"))
	waitReason(t, ns, "ci", uniregv1.ReasonIssued)
	s := &corev1.Secret{}
	if err := get(ns, "ci-token", s); err != nil || string(s.Data[keyToken]) != value {
		t.Fatalf("ci-token: %v", err)
	}
	storeHolds(t, ns, "reg", map[string]string{authstore.HashToken(value): "ci"})
}

func TestSecretRefChangesApplyAtOnce(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	v1, v2 := newToken(t), newToken(t)
	create(t, sourceSecret(ns, "src", v1, "ci"))
	spec := tokenSpec("*")
	spec.SecretRef = &corev1.LocalObjectReference{Name: "src"}
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"}, Spec: spec})
	storeHolds(t, ns, "reg", map[string]string{authstore.HashToken(v1): "ci"})
	time.Sleep(time.Second) // let the first reconciles settle, so what follows is the watch's doing

	src := &corev1.Secret{}
	update(t, ns, "src", src, func() { src.Data["token"] = []byte(v2) })
	storeHolds(t, ns, "reg", map[string]string{authstore.HashToken(v2): "ci"})

	// The opt-in withdrawn: the token stops, and its copy goes.
	update(t, ns, "src", src, func() { delete(src.Annotations, optIn) })
	waitReason(t, ns, "ci", "SecretRefNotAllowed")
	storeHolds(t, ns, "reg", map[string]string{})
	eventually(t, "the copy is withdrawn", func() (bool, error) {
		s := &corev1.Secret{}
		err := get(ns, "ci-token", s)
		return err == nil && len(s.Data[keyToken]) == 0 && !strings.Contains(string(s.Data[corev1.DockerConfigJsonKey]), v2), err
	})

	update(t, ns, "src", src, func() { src.Annotations = map[string]string{optIn: "ci"} })
	storeHolds(t, ns, "reg", map[string]string{authstore.HashToken(v2): "ci"})

	// Without spec.secretRef the token is a generated one: the copy of the
	// source is not kept as if the operator had made it.
	tok := &uniregv1.RegistryToken{}
	update(t, ns, "ci", tok, func() { tok.Spec.SecretRef = nil })
	eventually(t, "a fresh token replaces the copy", func() (bool, error) {
		s := &corev1.Secret{}
		err := get(ns, "ci-token", s)
		v := string(s.Data[keyToken])
		return err == nil && v != "" && v != v2, err
	})

	// A deleted source takes its token out at once.
	create(t, sourceSecret(ns, "gone-src", v1, "gone"))
	spec.SecretRef = &corev1.LocalObjectReference{Name: "gone-src"}
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone"}, Spec: spec})
	waitReason(t, ns, "gone", uniregv1.ReasonIssued)
	if err := k8sClient.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone-src"}}); err != nil {
		t.Fatal(err)
	}
	waitReason(t, ns, "gone", "SecretRefNotAllowed")
	eventually(t, "the deleted source's token is out of the store", func() (bool, error) {
		f, err := tryAuthStore(ns, "reg")
		if err != nil {
			return false, err
		}
		for _, tok := range f.Tokens {
			if tok.Hash == authstore.HashToken(v1) {
				return false, nil
			}
		}
		return true, nil
	})
}

// TestScopesTheServerRefusesAreRejectedAtAdmission: the server refuses a whole
// auth store with one scope its parser refuses (a NUL in a name, say), and
// authstore.Parse does not check scopes, so admission must not let one in.
func TestScopesTheServerRefusesAreRejectedAtAdmission(t *testing.T) {
	ns := namespace(t)
	bad := "oci:repository:a\x00b:pull"
	for what, obj := range map[string]client.Object{
		"RegistryToken": &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nul"}, Spec: tokenSpec(bad)},
		"RegistryScope": &uniregv1.RegistryScope{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nul"},
			Spec: uniregv1.RegistryScopeSpec{Scopes: []string{bad}}},
		"Registry": &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nul"},
			Spec: uniregv1.RegistrySpec{AnonymousScopes: []string{bad}}},
	} {
		if err := k8sClient.Create(context.Background(), obj); !apierrors.IsInvalid(err) {
			t.Errorf("%s with scope %q: %v, want Invalid", what, bad, err)
		}
	}
}

// TestSecretCacheHoldsOnlyTheOperatorsSecrets: the manager caches the
// Secrets it labels, not every Secret of the cluster; a secretRef source,
// the user's own unlabelled Secret, is read directly and still watched.
func TestSecretCacheHoldsOnlyTheOperatorsSecrets(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"}, Data: map[string][]byte{"password": []byte("s3cret")}})
	v1, v2 := newToken(t), newToken(t)
	create(t, sourceSecret(ns, "src", v1, "ci"))
	spec := tokenSpec("oci:repository:ci/*:push")
	spec.SecretRef = &corev1.LocalObjectReference{Name: "src"}
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"}, Spec: spec})
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gen"}, Spec: tokenSpec("oci:repository:gen/*:push")})
	waitReason(t, ns, "ci", uniregv1.ReasonIssued)
	waitReason(t, ns, "gen", uniregv1.ReasonIssued)
	storeHolds(t, ns, "reg", map[string]string{authstore.HashToken(v1): "ci", tokenHash(t, ns, "gen-token"): "gen"})

	for _, name := range []string{"ci-token", "gen-token", "reg-auth", "reg-jwt"} {
		eventually(t, name+" is in the manager's cache", func() (bool, error) {
			err := mgrCache.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &corev1.Secret{})
			return err == nil, err
		})
	}
	for _, name := range []string{"plain", "src"} {
		if err := mgrCache.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("Secret %s, which the operator did not make: %v from the manager's cache, want NotFound", name, err)
		}
	}

	src := &corev1.Secret{}
	update(t, ns, "src", src, func() { src.Data["token"] = []byte(v2) })
	storeHolds(t, ns, "reg", map[string]string{authstore.HashToken(v2): "ci", tokenHash(t, ns, "gen-token"): "gen"})
}

// TestObservedGenerationOnlyAfterASuccessfulReconcile: a reconcile that
// fails (here the Secret cannot be written) leaves status.observedGeneration
// at the generation last reconciled.
func TestObservedGenerationOnlyAfterASuccessfulReconcile(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "reg"}}
	tok := &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "ci", UID: "ci-uid", Generation: 3},
		Spec: tokenSpec("oci:repository:ci/*:push")}
	failing := true
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(reg, tok).
		WithStatusSubresource(&uniregv1.Registry{}, &uniregv1.RegistryToken{}).
		WithIndex(&uniregv1.RegistryToken{}, indexTokenID, func(o client.Object) []string {
			return []string{o.(*uniregv1.RegistryToken).Status.TokenID}
		}).
		WithInterceptorFuncs(interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*corev1.Secret); ok && failing {
				return apierrors.NewServiceUnavailable("etcd is away")
			}
			return c.Create(ctx, obj, opts...)
		}}).Build()
	r := &RegistryTokenReconciler{Client: c, APIReader: c, Scheme: scheme, Recorder: record.NewFakeRecorder(10)}
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(tok)}
	if _, err := r.Reconcile(context.Background(), req); err == nil {
		t.Fatal("the reconcile did not fail")
	}
	if err := c.Get(context.Background(), req.NamespacedName, tok); err != nil {
		t.Fatal(err)
	}
	if tok.Status.ObservedGeneration != 0 {
		t.Fatalf("observedGeneration = %d after a failed reconcile, want 0", tok.Status.ObservedGeneration)
	}
	failing = false
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), req.NamespacedName, tok); err != nil {
		t.Fatal(err)
	}
	if tok.Status.ObservedGeneration != 3 {
		t.Fatalf("observedGeneration = %d after a successful reconcile, want 3", tok.Status.ObservedGeneration)
	}
}

// waitPullHostsInSecret waits until a token's Secret carries a credential for
// every pull host of its Registry: the Service's ClusterIP joins
// status.pullHosts once the Service exists, and the token's Secret follows,
// after the token may already be Ready.
func waitPullHostsInSecret(t *testing.T, ns, registry, secret string) {
	t.Helper()
	eventually(t, "Secret "+secret+" to hold every pull host of Registry "+registry, func() (bool, error) {
		reg := &uniregv1.Registry{}
		if err := get(ns, registry, reg); err != nil {
			return false, err
		}
		if len(reg.Status.PullHosts) < 2 { // the Service's DNS name and its ClusterIP:port
			return false, nil
		}
		s := &corev1.Secret{}
		if err := get(ns, secret, s); err != nil {
			return false, err
		}
		var cfg struct {
			Auths map[string]any `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return false, err
		}
		for _, h := range reg.Status.PullHosts {
			if _, ok := cfg.Auths[h]; !ok {
				return false, nil
			}
		}
		return true, nil
	})
}
