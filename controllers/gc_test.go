package controllers

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

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
