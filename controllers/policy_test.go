package controllers

// Tokens under a Registry's tokenPolicy (issue 15, "Tokens under a
// policy"): teams in other namespaces mint their own tokens for a shared
// Registry, each limited to its own names, acting as <namespace>/<name>.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// teamPolicy admits namespaces labelled team=yes, each to its own names.
func teamPolicy() *uniregv1.TokenPolicy {
	return &uniregv1.TokenPolicy{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "yes"}},
		Scopes:            []string{"oci:repository:{{.Namespace}}/*:push", "npm:package:@{{.Namespace}}/*:write"},
	}
}

// labelNamespace sets (value != "") or removes the team label of ns.
func labelNamespace(t *testing.T, ns, value string) {
	t.Helper()
	n := &corev1.Namespace{}
	update(t, "", ns, n, func() {
		if value == "" {
			delete(n.Labels, "team")
			return
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["team"] = value
	})
}

// foreignToken is a token of ns for the Registry platform/name.
func foreignToken(ns, name, platform, registry string, scopes ...string) *uniregv1.RegistryToken {
	return &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: uniregv1.RegistryTokenSpec{
		RegistryRef: uniregv1.RegistryReference{Name: registry, Namespace: platform}, Scopes: scopes}}
}

func tokenHash(t *testing.T, ns, secret string) string {
	t.Helper()
	s := &corev1.Secret{}
	if err := get(ns, secret, s); err != nil {
		t.Fatal(err)
	}
	return authstore.HashToken(string(s.Data[keyToken]))
}

func readyMessage(ns, name string) (string, error) {
	tok := &uniregv1.RegistryToken{}
	if err := get(ns, name, tok); err != nil {
		return "", err
	}
	if c := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady); c != nil {
		return c.Message, nil
	}
	return "", nil
}

func TestTokenPolicyAdmitsTeamNamespacesToTheirOwnNames(t *testing.T) {
	platform, team, stranger := namespace(t), namespace(t), namespace(t)
	labelNamespace(t, team, "yes")
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: platform, Name: "shared"},
		Spec: uniregv1.RegistrySpec{TokenPolicy: teamPolicy()}})

	// A team namespace mints a token for its own names; it acts as
	// <namespace>/<name> and its Secret, in the team's namespace, pulls from
	// the shared Registry's Service.
	create(t, foreignToken(team, "ci", platform, "shared", "oci:repository:"+team+"/*:push"))
	waitReason(t, team, "ci", uniregv1.ReasonIssued)
	ciHash := tokenHash(t, team, "ci-token")
	storeHolds(t, platform, "shared", map[string]string{ciHash: team + "/ci"})
	svc := &corev1.Service{}
	eventually(t, "the shared Registry's Service", func() (bool, error) { return get(platform, "shared", svc) == nil && svc.Spec.ClusterIP != "", nil })
	eventually(t, "the pull secret names the shared Registry", func() (bool, error) {
		s := &corev1.Secret{}
		err := get(team, "ci-token", s)
		var cfg struct {
			Auths map[string]struct{ Username string } `json:"auths"`
		}
		json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg)
		return cfg.Auths["shared."+platform+".svc:5000"].Username == team+"/ci" && cfg.Auths[svc.Spec.ClusterIP+":5000"].Username == team+"/ci", err
	})

	// More than the templates allow, another namespace's names, a chosen user.
	create(t, foreignToken(team, "greedy", platform, "shared", "oci:repository:"+team+"/*:push", "oci:repository:*:pull"))
	create(t, foreignToken(team, "sideways", platform, "shared", "npm:package:@"+stranger+"/*:read"))
	impostor := foreignToken(team, "impostor", platform, "shared", "oci:repository:"+team+"/x:pull")
	impostor.Spec.User = "alice"
	create(t, impostor)
	waitReason(t, team, "greedy", "ScopeNotAllowed")
	waitReason(t, team, "sideways", "ScopeNotAllowed")
	waitReason(t, team, "impostor", "UserNotAllowed")
	waitEvent(t, team, "greedy", "ScopeNotAllowed")

	// A namespace the policy does not admit learns nothing of the platform
	// namespace: a Registry that is there reads as one that is not.
	create(t, foreignToken(stranger, "probe", platform, "shared", "oci:repository:"+stranger+"/*:pull"))
	create(t, foreignToken(stranger, "probe-missing", platform, "missing", "oci:repository:"+stranger+"/*:pull"))
	waitReason(t, stranger, "probe", "NamespaceNotAllowed")
	waitReason(t, stranger, "probe-missing", "NamespaceNotAllowed")
	m1, err := readyMessage(stranger, "probe")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := readyMessage(stranger, "probe-missing")
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Errorf("a missing and a present Registry read differently:\n%q\n%q", m1, m2)
	}

	// RegistryScopes resolve in the token's namespace, and a change to one
	// reaches the shared Registry's store.
	create(t, &uniregv1.RegistryScope{ObjectMeta: metav1.ObjectMeta{Namespace: team, Name: "npm"},
		Spec: uniregv1.RegistryScopeSpec{Scopes: []string{"npm:package:@" + team + "/*:read"}}})
	withRef := foreignToken(team, "npm", platform, "shared")
	withRef.Spec.ScopeRefs = []corev1.LocalObjectReference{{Name: "npm"}}
	create(t, withRef)
	waitReason(t, team, "npm", uniregv1.ReasonIssued)
	npmHash := tokenHash(t, team, "npm-token")
	storeHolds(t, platform, "shared", map[string]string{ciHash: team + "/ci", npmHash: team + "/npm"})
	rs := &uniregv1.RegistryScope{}
	update(t, team, "npm", rs, func() { rs.Spec.Scopes = []string{"npm:package:@" + team + "/*:write"} })
	eventually(t, "the scope change reaches the shared store", func() (bool, error) {
		f, err := tryAuthStore(platform, "shared")
		if err != nil {
			return false, err
		}
		for _, e := range f.Tokens {
			if e.Hash == npmHash {
				return slices.Equal(e.Scopes, []string{"npm:package:@" + team + "/*:write"}), nil
			}
		}
		return false, nil
	})
	update(t, team, "npm", rs, func() { rs.Spec.Scopes = []string{"npm:package:*:read"} })
	waitReason(t, team, "npm", "ScopeNotAllowed")
	storeHolds(t, platform, "shared", map[string]string{ciHash: team + "/ci"})

	// The namespace loses its label: its tokens stop at once.
	labelNamespace(t, team, "")
	waitReason(t, team, "ci", "NamespaceNotAllowed")
	storeHolds(t, platform, "shared", map[string]string{})
	labelNamespace(t, team, "yes")
	waitReason(t, team, "ci", uniregv1.ReasonIssued)
	storeHolds(t, platform, "shared", map[string]string{ciHash: team + "/ci"})

	// The policy tightened: the token no longer fits and drops out.
	reg := &uniregv1.Registry{}
	update(t, platform, "shared", reg, func() { reg.Spec.TokenPolicy.Scopes = []string{"npm:package:@{{.Namespace}}/*:write"} })
	waitReason(t, team, "ci", "ScopeNotAllowed")
	storeHolds(t, platform, "shared", map[string]string{})
}

func TestTokenPolicyScopesBindTheRegistrysOwnNamespaceToo(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"},
		Spec: uniregv1.RegistrySpec{TokenPolicy: &uniregv1.TokenPolicy{Scopes: []string{"oci:repository:{{.Namespace}}/*:*"}}}})
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "all"}, Spec: tokenSpec("*")})
	own := tokenSpec("oci:repository:" + ns + "/app:push")
	own.User = "release-bot" // the Registry's own namespace still names its users
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "own"}, Spec: own})
	waitReason(t, ns, "all", "ScopeNotAllowed")
	waitReason(t, ns, "own", uniregv1.ReasonIssued)
	storeHolds(t, ns, "reg", map[string]string{tokenHash(t, ns, "own-token"): "release-bot"})
}

// TestProjectionChecksThePolicyAgain: the registry controller does not
// trust a Ready condition written before the policy was tightened (fake
// client: the live token controller repairs the condition too fast to see).
func TestProjectionChecksThePolicyAgain(t *testing.T) {
	scheme := testScheme()
	policy := teamPolicy()
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: "platform", Name: "shared", UID: "reg-uid"},
		Spec: uniregv1.RegistrySpec{TokenPolicy: policy}}
	objs := []client.Object{reg,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team", Labels: map[string]string{"team": "yes"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "left", Labels: map[string]string{"team": "no"}}},
	}
	hashes := map[string]string{}
	for i, c := range []struct{ ns, name, scope string }{
		{"team", "fits", "oci:repository:team/app:push"},
		{"team", "greedy", "oci:repository:*:push"},
		{"left", "stale", "oci:repository:left/app:push"},
	} {
		tok := foreignToken(c.ns, c.name, "platform", "shared", c.scope)
		hashes[c.name] = authstore.HashToken(newToken(t))
		objs = append(objs, staleReady(t, scheme, tok, i, hashes[c.name])...)
	}
	f := projectOnce(t, fakeClient(scheme, objs...), scheme, record.NewFakeRecorder(10), reg)
	if len(f.Tokens) != 1 || f.Tokens[0].Hash != hashes["fits"] || f.Tokens[0].User != "team/fits" {
		var got []string
		for _, e := range f.Tokens {
			got = append(got, e.User)
		}
		t.Fatalf("projected %s, want team/fits only", strings.Join(got, ", "))
	}
}

// TestTokenPolicySamplesWork applies config/samples/tokenpolicy, the
// platform Registry and a team's token, in fresh namespaces: the example
// users copy is admitted and projected.
func TestTokenPolicySamplesWork(t *testing.T) {
	platform, team := namespace(t), namespace(t)
	n := &corev1.Namespace{}
	update(t, "", team, n, func() { n.Labels = map[string]string{"unireg.dev/team": "true"} })
	read := func(file string, obj client.Object) {
		raw, err := os.ReadFile(filepath.Join("..", "config", "samples", "tokenpolicy", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(raw, obj); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	reg := &uniregv1.Registry{}
	read("registry.yaml", reg)
	reg.Namespace = platform
	create(t, reg)
	tok := &uniregv1.RegistryToken{}
	read("registrytoken.yaml", tok)
	tok.Namespace, tok.Spec.RegistryRef.Namespace = team, platform
	for i, s := range tok.Spec.Scopes { // the sample's team is team-a
		tok.Spec.Scopes[i] = strings.ReplaceAll(s, "team-a", team)
	}
	create(t, tok)
	waitReason(t, team, tok.Name, uniregv1.ReasonIssued)
	storeHolds(t, platform, reg.Name, map[string]string{tokenHash(t, team, tok.Name+"-token"): team + "/" + tok.Name})
}
