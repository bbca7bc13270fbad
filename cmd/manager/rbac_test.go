package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// neededRules is every right the controllers' code uses, by API group and
// resource: the client calls of controllers/*.go (Get/List/Watch through the
// cache; Create; server-side apply, a Patch that also creates, so create and
// patch; Update; Status().Update; Status().Apply, a patch) and what the API server asks of a
// controller that sets owner references (update on the owner's finalizers,
// for blockOwnerDeletion) or records events. Children go with their owner
// through garbage collection, except the node mirror's DaemonSet and
// ConfigMap: they live in the operator's namespace, where no owner
// reference can reach, so the node mirror controller deletes them (after
// the nodes are clean) and patches its finalizer onto the Registry.
//
// A change that adds a client call must add the verb here and in the
// +kubebuilder:rbac markers of controllers/*.go (then make manifests);
// TestManagerRoleIsLeastPrivilege fails until both agree, and the envtest
// tests of this package run the controllers with exactly these rights.
var neededRules = map[string][]string{
	// Registry controller: the Registry's children, applied server-side.
	"apps/deployments":                       {"create", "get", "list", "patch", "watch"},
	"policy/poddisruptionbudgets":            {"create", "get", "list", "patch", "watch"},
	"/services":                              {"create", "get", "list", "patch", "watch"},
	"/serviceaccounts":                       {"create", "get", "list", "patch", "watch"},
	"rbac.authorization.k8s.io/roles":        {"create", "get", "list", "patch", "watch"},
	"rbac.authorization.k8s.io/rolebindings": {"create", "get", "list", "patch", "watch"},
	// The JWT key (registry controller), auth store (auth-store
	// controller) and token Secrets (token controller): created, then
	// updated.
	"/secrets": {"create", "get", "list", "update", "watch"},
	// The data volume: created once; its owner reference follows
	// spec.storage.filesystem.reclaimPolicy (update).
	"/persistentvolumeclaims": {"create", "get", "list", "update", "watch"},
	"/events":                 {"create", "patch"},
	// spec.tls.issuerRef: the Registry's cert-manager Certificate, read
	// uncached (cert-manager is optional, so it is not watched) and applied.
	"cert-manager.io/certificates": {"create", "get", "patch"},
	// The token controller: a Namespace's labels say whether a Registry's
	// tokenPolicy admits its tokens (watched, so a label change applies).
	"/namespaces":           {"get", "list", "watch"},
	"unireg.dev/registries": {"get", "list", "patch", "watch"},
	// The node mirror controller, in the operator's namespace.
	"apps/daemonsets": {"create", "delete", "get", "list", "patch", "watch"},
	"/configmaps":     {"create", "delete", "get", "list", "patch", "watch"},
	// Two controllers write a Registry's status, each its own fields, by
	// server-side apply (a patch).
	"unireg.dev/registries/status":         {"patch"},
	"unireg.dev/registries/finalizers":     {"update"},
	"unireg.dev/registrytokens":            {"get", "list", "watch"},
	"unireg.dev/registrytokens/status":     {"update"},
	"unireg.dev/registrytokens/finalizers": {"update"},
	"unireg.dev/registryscopes":            {"get", "list", "watch"},
	"unireg.dev/registryscopes/status":     {"update"},
}

func readClusterRole(t *testing.T, file string) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(b, role); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return role
}

// TestManagerRoleIsLeastPrivilege: the manager's generated ClusterRole
// grants exactly neededRules, no verb more (and none less).
func TestManagerRoleIsLeastPrivilege(t *testing.T) {
	role := readClusterRole(t, "role.yaml")
	got := map[string]map[string]bool{}
	for _, rule := range role.Rules {
		if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
			t.Errorf("rule %+v: the manager needs no resourceNames or nonResourceURLs rules", rule)
		}
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				key := g + "/" + r
				if got[key] == nil {
					got[key] = map[string]bool{}
				}
				for _, v := range rule.Verbs {
					got[key][v] = true
				}
			}
		}
	}
	for key, verbs := range got {
		want := map[string]bool{}
		for _, v := range neededRules[key] {
			want[v] = true
		}
		for v := range verbs {
			if !want[v] {
				t.Errorf("config/rbac/role.yaml grants %s on %s, which no code of controllers/ uses", v, key)
			}
		}
	}
	for key, verbs := range neededRules {
		for _, v := range verbs {
			if !got[key][v] {
				t.Errorf("config/rbac/role.yaml lacks %s on %s, which the controllers need", v, key)
			}
		}
	}
	if t.Failed() {
		keys := make([]string, 0, len(got))
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			vs := make([]string, 0, len(got[k]))
			for v := range got[k] {
				vs = append(vs, v)
			}
			sort.Strings(vs)
			b.WriteString("\n  " + k + ": " + strings.Join(vs, ","))
		}
		t.Logf("role.yaml grants:%s", b.String())
	}
}

// TestMetricsRolesAreNarrow: the manager may only ask the API server who a
// scraper is and whether it may read /metrics; a scraper may only read
// /metrics.
func TestMetricsRolesAreNarrow(t *testing.T) {
	auth := readClusterRole(t, "metrics_auth_role.yaml")
	want := map[string]bool{"authentication.k8s.io/tokenreviews/create": true, "authorization.k8s.io/subjectaccessreviews/create": true}
	got := map[string]bool{}
	for _, r := range auth.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					got[g+"/"+res+"/"+v] = true
				}
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("metrics-auth-role grants %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("metrics-auth-role lacks %s", k)
		}
	}
	reader := readClusterRole(t, "metrics_reader_role.yaml")
	if len(reader.Rules) != 1 || len(reader.Rules[0].Resources) != 0 ||
		strings.Join(reader.Rules[0].NonResourceURLs, ",") != "/metrics" || strings.Join(reader.Rules[0].Verbs, ",") != "get" {
		t.Errorf("metrics-reader grants %+v, want get on /metrics only", reader.Rules)
	}
}
