package controllers

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// readyToken is a Ready token of ns/name for Registry platform/reg,
// created at minute i.
func readyToken(ns, name string, i int) uniregv1.RegistryToken {
	return uniregv1.RegistryToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(time.Date(2030, 1, 1, 0, i, 0, 0, time.UTC))},
		Spec:       uniregv1.RegistryTokenSpec{RegistryRef: uniregv1.RegistryReference{Namespace: "platform", Name: "reg"}},
		Status: uniregv1.RegistryTokenStatus{SecretName: name + "-token", Conditions: []metav1.Condition{{
			Type: uniregv1.ConditionReady, Status: metav1.ConditionTrue, Reason: uniregv1.ReasonIssued}}},
	}
}

// TestProjectionIsAFunctionOfItsInputs: the store, what was left out and
// the next expiry follow from the tokens, their hashes and scopes and the
// clock alone, whatever order the tokens come in.
func TestProjectionIsAFunctionOfItsInputs(t *testing.T) {
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	hash := func(s string) string { return authstore.HashToken(authstore.TokenPrefix + strings.Repeat(s, 43)) }
	first, twin, rotated, expired, unready, unresolved := readyToken("platform", "first", 0), readyToken("team", "twin", 1),
		readyToken("team", "rotated", 2), readyToken("platform", "expired", 3), readyToken("platform", "unready", 4), readyToken("team", "unresolved", 5)
	past := metav1.NewTime(now.Add(-time.Minute))
	expired.Status.ExpiresAt = &past
	unready.Status.Conditions[0].Status = metav1.ConditionFalse
	overlapEnd, tokenEnd := now.Add(time.Hour), now.Add(2*time.Hour)
	rotated.Status.ExpiresAt = &metav1.Time{Time: tokenEnd}
	key := func(t uniregv1.RegistryToken) types.NamespacedName { return client.ObjectKeyFromObject(&t) }
	hashes := map[types.NamespacedName][]projected{
		key(first):      {{hash: hash("a")}},
		key(twin):       {{hash: hash("a")}},                                        // first's token
		key(rotated):    {{hash: hash("b")}, {hash: hash("c"), until: &overlapEnd}}, // in its overlap
		key(expired):    {{hash: hash("d")}},                                        // the token expired
		key(unready):    {{hash: hash("e")}},                                        // not Ready
		key(unresolved): {{hash: hash("f")}},                                        // no scopes resolved
	}
	scopes := map[types.NamespacedName][]string{}
	for _, k := range []types.NamespacedName{key(first), key(twin), key(rotated), key(expired), key(unready)} {
		scopes[k] = []string{"oci:repository:" + k.Namespace + "/*:pull"}
	}
	tokens := []uniregv1.RegistryToken{unresolved, unready, expired, rotated, twin, first} // reverse creation order
	file, leftOut, next := projection(tokens, hashes, scopes, now)

	got := map[string]string{}
	for _, e := range file.Tokens {
		got[e.Hash] = e.User
	}
	want := map[string]string{hash("a"): "first", hash("b"): "team/rotated", hash("c"): "team/rotated"}
	if len(got) != len(want) {
		t.Fatalf("projected %v, want %v", got, want)
	}
	for h, u := range want {
		if got[h] != u {
			t.Errorf("hash %s projected for %q, want %q", h, got[h], u)
		}
	}
	if !slices.IsSortedFunc(file.Tokens, func(a, b authstore.Token) int { return strings.Compare(a.Hash, b.Hash) }) {
		t.Error("the store's tokens are not sorted by hash")
	}
	if len(leftOut) != 1 || !strings.Contains(leftOut[0], "team/twin (the same token as platform/first)") {
		t.Errorf("left out %q, want the twin only, naming the first", leftOut)
	}
	if !next.Equal(overlapEnd) {
		t.Errorf("next = %v, want the end of the overlap %v", next, overlapEnd)
	}
	if _, err := authstore.Parse(must(authstore.Marshal(file))); err != nil {
		t.Errorf("the store does not parse: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestScopeChangeWakesOnlyTheRegistriesUsingIt: a RegistryScope change
// re-projects the auth stores of the Registries its tokens name, of any
// namespace, and no other Registry of its namespace.
func TestScopeChangeWakesOnlyTheRegistriesUsingIt(t *testing.T) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	token := func(ns, name, regNS, reg string, scopes ...string) *uniregv1.RegistryToken {
		tok := &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: uniregv1.RegistryTokenSpec{RegistryRef: uniregv1.RegistryReference{Namespace: regNS, Name: reg}}}
		for _, s := range scopes {
			tok.Spec.ScopeRefs = append(tok.Spec.ScopeRefs, corev1.LocalObjectReference{Name: s})
		}
		return tok
	}
	objs := []client.Object{
		&uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "uses"}},
		&uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "idle"}},
		&uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "shared"}},
		token("team-a", "local", "", "uses", "ci"),
		token("team-a", "local-twin", "", "uses", "ci", "other"),
		token("team-a", "unrelated", "", "idle", "other"),
		token("team-a", "foreign", "platform", "shared", "ci"), // a cross-namespace token using team-a's scope
		token("team-b", "same-name", "team-b", "elsewhere", "ci"),
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).
		WithIndex(&uniregv1.RegistryToken{}, indexScopeRef, scopeRefKeys).Build()
	r := &AuthStoreReconciler{Client: c, Scheme: scheme, Recorder: record.NewFakeRecorder(10)}
	var got []string
	for _, req := range r.registriesUsingScope(context.Background(), &uniregv1.RegistryScope{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ci"}}) {
		got = append(got, req.String())
	}
	slices.Sort(got)
	if want := []string{"platform/shared", "team-a/uses"}; !slices.Equal(got, want) {
		t.Fatalf("a change of RegistryScope team-a/ci wakes %v, want %v", got, want)
	}
}

// TestStatusWritersKeepEachOthersFields: the registry and auth-store
// controllers each write their own fields of a Registry's status, so a
// write from a copy read before the other's write loses nothing of it.
func TestStatusWritersKeepEachOthersFields(t *testing.T) {
	needAPIServer(t)
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	reg := &uniregv1.Registry{}
	eventually(t, "both controllers wrote", func() (bool, error) {
		err := get(ns, "reg", reg)
		return meta.IsStatusConditionTrue(reg.Status.Conditions, uniregv1.ConditionTokensProjected) &&
			meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionAvailable) != nil, err
	})
	ctx := context.Background()

	// The registry controller writes from a copy read before the auth
	// store was projected: TokensProjected and tokens stay the auth-store
	// controller's (nothing would write them again).
	stale := reg.DeepCopy()
	meta.RemoveStatusCondition(&stale.Status.Conditions, uniregv1.ConditionTokensProjected)
	stale.Status.Tokens = 7
	if err := (&RegistryReconciler{Client: k8sClient}).writeRegistryStatus(ctx, stale); err != nil {
		t.Fatal(err)
	}
	after := &uniregv1.Registry{}
	if err := get(ns, "reg", after); err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(after.Status.Conditions, uniregv1.ConditionTokensProjected) || after.Status.Tokens != 0 {
		t.Errorf("the registry controller's write changed the auth-store controller's fields: %+v", after.Status)
	}

	// And the other way round.
	stale = reg.DeepCopy()
	meta.RemoveStatusCondition(&stale.Status.Conditions, uniregv1.ConditionAvailable)
	stale.Status.URL = ""
	if err := (&AuthStoreReconciler{Client: k8sClient}).writeStatus(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if err := get(ns, "reg", after); err != nil {
		t.Fatal(err)
	}
	if meta.FindStatusCondition(after.Status.Conditions, uniregv1.ConditionAvailable) == nil || after.Status.URL == "" {
		t.Errorf("the auth-store controller's write changed the registry controller's fields: %+v", after.Status)
	}
}
