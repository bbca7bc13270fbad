//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// teamLabel marks the namespaces the sample Registry's token policy admits.
const teamLabel = "e2e.unireg.dev/team"

// 8. One Registry shared by teams: the sample Registry gets a token policy
// that admits labelled namespaces, each limited to names under its own
// namespace. A team namespace mints its own token, pushes and publishes
// under its name and is refused elsewhere; a token asking for more, or from
// a namespace the policy does not admit, is never Ready.
func (s *suite) teamTokensUnderPolicy(t *testing.T) {
	s.k.t = t
	ctx := context.Background()
	team, stranger := s.ns+"-team", s.ns+"-stranger"
	s.extraNamespaces = append(s.extraNamespaces, team, stranger)
	for name, labels := range map[string]map[string]string{team: {teamLabel: "true"}, stranger: nil} {
		if err := s.k.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
			t.Fatal(err)
		}
	}

	reg := &uniregv1.Registry{}
	if err := s.k.get(s.ns, sampleRegistry, reg); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(reg.DeepCopy())
	reg.Spec.TokenPolicy = &uniregv1.TokenPolicy{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: "true"}},
		Scopes: []string{
			"oci:repository:{{.Namespace}}/*:push",
			"npm:package:@{{.Namespace}}/*:write",
			// The sample namespace's own tokens keep their names.
			"oci:repository:acme/*:push", "npm:package:@acme/*:write",
		},
	}
	if err := s.k.c.Patch(ctx, reg, patch); err != nil {
		t.Fatal(err)
	}

	token := func(ns, name string, scopes ...string) {
		t.Helper()
		tok := &uniregv1.RegistryToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: uniregv1.RegistryTokenSpec{
				RegistryRef: uniregv1.RegistryReference{Name: sampleRegistry, Namespace: s.ns},
				Scopes:      scopes,
			},
		}
		if err := s.k.c.Create(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	token(team, "ci", "oci:repository:"+team+"/*:push", "npm:package:@"+team+"/*:write")
	// Asks for every repository: no template gives that (the acme scopes of
	// the policy are open to every admitted namespace, so asking for them
	// would be allowed).
	token(team, "greedy", "oci:repository:*:push", "oci:repository:"+team+"/*:push")
	token(stranger, "ci", "oci:repository:"+stranger+"/*:push")

	cred := s.tokenCredentialIn(t, team, "ci")
	if want := team + "/ci"; cred.user != want {
		t.Fatalf("the team token acts as %q, want %q", cred.user, want)
	}
	s.waitNotReady(t, team, "greedy", "ScopeNotAllowed")
	s.waitNotReady(t, stranger, "ci", "NamespaceNotAllowed")

	addr := s.k.serviceAddress(s.ns, sampleRegistry)
	cfg := cred.dockerConfigDir(t, addr)
	own := addr + "/" + team + "/app:v1"
	if out, err := crane(t, cfg, "push", s.workloadLayout, own); err != nil {
		t.Fatalf("crane push %s with the team's token: %v\n%s", own, err, out)
	}
	if out, err := crane(t, cfg, "digest", own); err != nil || strings.TrimSpace(out) != s.workloadDigest {
		t.Fatalf("crane digest %s = %q (%v), want %s", own, out, err, s.workloadDigest)
	}
	other := addr + "/acme/team-was-here:v1"
	out, err := crane(t, cfg, "push", s.workloadLayout, other)
	if err == nil {
		t.Fatalf("the team's token pushed outside its names (%s):\n%s", other, out)
	}
	if lower := strings.ToLower(out); !strings.Contains(lower, "denied") && !strings.Contains(lower, "unauthorized") && !strings.Contains(out, "401") && !strings.Contains(out, "403") {
		t.Fatalf("crane push %s failed for another reason than authorisation:\n%s", other, out)
	}
	// npm, with the real CLI: the token publishes under the team's scope
	// and nowhere else.
	npmrc := cred.npmrcFile(t, addr)
	for pkg, allowed := range map[string]bool{"@" + team + "/lib": true, "@acme/team-was-here": false} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name": "`+pkg+`", "version": "1.0.0", "main": "index.js"}`), 0o644)
		os.WriteFile(filepath.Join(dir, "index.js"), []byte("module.exports = 1;\n"), 0o644)
		out, err := npm(t, dir, npmrc, "publish")
		switch {
		case allowed && err != nil:
			t.Fatalf("npm publish %s with the team's token: %v\n%s", pkg, err, out)
		case !allowed && err == nil:
			t.Fatalf("the team's token published %s, outside its scope:\n%s", pkg, out)
		case !allowed && !strings.Contains(out, "403"):
			t.Fatalf("npm publish %s failed for another reason than authorisation:\n%s", pkg, out)
		}
	}
}

// tokenCredentialIn waits for a RegistryToken of a namespace to be Ready and
// reads its Secret.
func (s *suite) tokenCredentialIn(t *testing.T, ns, name string) credential {
	t.Helper()
	tok := &uniregv1.RegistryToken{}
	eventually(t, 2*time.Minute, "RegistryToken "+ns+"/"+name+" Ready", func() (bool, string) {
		if err := s.k.get(ns, name, tok); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady)
		if c == nil {
			return false, "no Ready condition"
		}
		return c.Status == metav1.ConditionTrue, c.Reason + ": " + c.Message
	})
	sec := &corev1.Secret{}
	if err := s.k.get(ns, tok.Status.SecretName, sec); err != nil {
		t.Fatal(err)
	}
	return credentialFrom(t, sec)
}

// waitNotReady waits for a RegistryToken to report Ready=False with reason,
// and checks it has no Secret with a credential.
func (s *suite) waitNotReady(t *testing.T, ns, name, reason string) {
	t.Helper()
	eventually(t, 2*time.Minute, fmt.Sprintf("RegistryToken %s/%s not Ready with reason %s", ns, name, reason), func() (bool, string) {
		tok := &uniregv1.RegistryToken{}
		if err := s.k.get(ns, name, tok); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady)
		if c == nil {
			return false, "no Ready condition"
		}
		return c.Status == metav1.ConditionFalse && c.Reason == reason, string(c.Status) + " " + c.Reason + ": " + c.Message
	})
}
