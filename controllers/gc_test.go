package controllers

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/config"
)

// spec.gc and spec.retention reach the server as its flags, in a form the
// server's own flag parser accepts.
func TestGCAndRetentionReachTheServer(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "collected"}, Spec: uniregv1.RegistrySpec{
		GC: &uniregv1.GCSpec{Interval: &metav1.Duration{Duration: 30 * time.Minute}, Grace: &metav1.Duration{Duration: 2 * time.Hour}},
		Retention: []uniregv1.RetentionRule{
			{Repositories: "ci/*", KeepLast: ptr.To[int32](10), KeepTags: "^(v|release-a,b)", UntaggedAfter: &metav1.Duration{Duration: 168 * time.Hour}},
			{Repositories: "*", UntaggedAfter: &metav1.Duration{Duration: 720 * time.Hour}},
		},
	}})
	args := deployment(t, ns, "collected").Spec.Template.Spec.Containers[0].Args
	for _, want := range []string{
		"--gc-interval=30m0s", "--gc-grace=2h0m0s",
		"--retention=ci/*=keep-last=10,keep-tags=^(v|release-a,b),untagged-after=168h0m0s",
		"--retention=*=untagged-after=720h0m0s",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	var serverArgs []string
	for _, a := range args {
		if strings.HasPrefix(a, "--gc-") || strings.HasPrefix(a, "--retention=") {
			serverArgs = append(serverArgs, a)
		}
	}
	o, err := config.Load(serverArgs, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("the server refuses the operator's flags %q: %v", serverArgs, err)
	}
	if r := o.Registry.OCI.Retention; len(r) != 2 || r[0].KeepLast != 10 || !r[0].KeepTags.MatchString("release-a,b") || o.Registry.GC.Grace != 2*time.Hour {
		t.Fatalf("the server read %+v from %q", o.Registry.OCI.Retention, serverArgs)
	}
}

// A keepTags that is no regular expression leaves the Deployment alone
// and says why in Ready; a rule without any rule is refused by the API.
func TestBadRetentionIsReportedNotRolledOut(t *testing.T) {
	ns := namespace(t)
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "badregex"}, Spec: uniregv1.RegistrySpec{
		Retention: []uniregv1.RetentionRule{{Repositories: "ci/*", KeepTags: "("}},
	}}
	create(t, reg)
	eventually(t, "Ready=False naming keepTags", func() (bool, error) {
		got := &uniregv1.Registry{}
		if err := k8sClient.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: "badregex"}, got); err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == uniregv1.ConditionReady && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "keepTags") {
				return true, nil
			}
		}
		return false, nil
	})
	empty := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "norules"}, Spec: uniregv1.RegistrySpec{
		Retention: []uniregv1.RetentionRule{{Repositories: "ci/*"}},
	}}
	if err := k8sClient.Create(t.Context(), empty); err == nil || !strings.Contains(err.Error(), "needs keepLast, keepTags or untaggedAfter") {
		t.Fatalf("a retention rule without rules: %v", err)
	}
}

// What the API server admits in spec.gc and spec.retention is what the
// server's flag parser accepts from the operator's args: a value the CRD
// let through and the server refused would roll out pods that cannot
// start. A value the operator cannot even decode (a duration in days) must
// be refused too, or the Registry could not be reconciled at all.
func TestGCAndRetentionTheAPIAdmitsAreWhatTheServerAccepts(t *testing.T) {
	ns := namespace(t)
	rule := func(repositories string, rules map[string]any) map[string]any {
		r := map[string]any{"repositories": repositories}
		for k, v := range rules {
			r[k] = v
		}
		return map[string]any{"retention": []any{r}}
	}
	keep := map[string]any{"keepLast": int64(3)}
	cases := map[string]map[string]any{
		"glob ci/*":           rule("ci/*", keep),
		"glob *":              rule("*", keep),
		"glob team-*/app":     rule("team-*/app", keep),
		"glob separators":     rule("a.b_c__d--e/*", keep),
		"glob upper case":     rule("CI/*", keep),
		"glob empty segment":  rule("ci//*", keep),
		"glob trailing slash": rule("ci/*/", keep),
		"glob leading dash":   rule("-ci/*", keep),
		"glob double dot":     rule("ci..x/*", keep),
		"glob three unders":   rule("ci___x", keep),
		"glob trailing dot":   rule("*.", keep),
		"glob space":          rule("ci x", keep),
		"glob empty":          rule("", keep),
		"keepLast 0":          rule("ci/*", map[string]any{"keepLast": int64(0)}),
		"untaggedAfter 168h":  rule("ci/*", map[string]any{"untaggedAfter": "168h"}),
		"untaggedAfter 1h30m": rule("ci/*", map[string]any{"untaggedAfter": "1h30m"}),
		"untaggedAfter 0s":    rule("ci/*", map[string]any{"untaggedAfter": "0s"}),
		"untaggedAfter -1h":   rule("ci/*", map[string]any{"untaggedAfter": "-1h"}),
		"untaggedAfter 7d":    rule("ci/*", map[string]any{"untaggedAfter": "7d"}),
		"interval 0s":         {"gc": map[string]any{"interval": "0s"}},
		"interval 30m":        {"gc": map[string]any{"interval": "30m"}},
		"interval -5m":        {"gc": map[string]any{"interval": "-5m"}},
		"interval 1d":         {"gc": map[string]any{"interval": "1d"}},
		"grace 2h":            {"gc": map[string]any{"grace": "2h"}},
		"grace 0s":            {"gc": map[string]any{"grace": "0s"}},
		"grace -1h":           {"gc": map[string]any{"grace": "-1h"}},
	}
	i := 0
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			i++
			u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
			u.SetGroupVersionKind(uniregv1.GroupVersion.WithKind("Registry"))
			u.SetNamespace(ns)
			u.SetName(fmt.Sprintf("v%d", i))
			apiErr := k8sClient.Create(t.Context(), u, client.DryRunAll)

			var reg uniregv1.Registry
			raw, _ := json.Marshal(u.Object)
			if err := json.Unmarshal(raw, &reg); err != nil {
				if apiErr == nil {
					t.Fatalf("the API admits %v, which the operator cannot decode: %v", spec, err)
				}
				return
			}
			args := gcArgs(&reg)
			_, serverErr := config.Load(args, func(string) string { return "" }, io.Discard)
			if (apiErr == nil) != (serverErr == nil) {
				t.Fatalf("spec %v: the API says %v, the server says %v to %q", spec, apiErr, serverErr, args)
			}
		})
	}
}

// A running Registry whose spec gains a keepTags that does not compile
// keeps its Deployment as it was (its pods would not start with it), and
// Ready says which field is at fault; fixing the field rolls the fix out.
func TestBadKeepTagsLeavesTheRunningDeploymentAlone(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "running"}, Spec: uniregv1.RegistrySpec{
		Retention: []uniregv1.RetentionRule{{Repositories: "ci/*", KeepTags: "^v"}},
	}})
	before := deployment(t, ns, "running")
	reg := &uniregv1.Registry{}
	update(t, ns, "running", reg, func() { reg.Spec.Retention[0].KeepTags = "^(v" })
	eventually(t, "Ready=False naming spec.retention[0].keepTags", func() (bool, error) {
		got := &uniregv1.Registry{}
		if err := get(ns, "running", got); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, uniregv1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.ObservedGeneration == got.Generation &&
			strings.Contains(c.Message, "spec.retention[0].keepTags"), nil
	})
	after := deployment(t, ns, "running")
	if after.Generation != before.Generation || !slices.Equal(after.Spec.Template.Spec.Containers[0].Args, before.Spec.Template.Spec.Containers[0].Args) {
		t.Fatalf("the Deployment changed for a spec the server refuses: generation %d -> %d, args %q", before.Generation, after.Generation, after.Spec.Template.Spec.Containers[0].Args)
	}
	update(t, ns, "running", reg, func() { reg.Spec.Retention[0].KeepTags = "^(v|rc)" })
	eventually(t, "the fixed rule rolled out", func() (bool, error) {
		dep := &appsv1.Deployment{}
		if err := get(ns, "running", dep); err != nil {
			return false, err
		}
		return slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--retention=ci/*=keep-tags=^(v|rc)"), nil
	})
}
