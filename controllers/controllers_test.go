package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

var nsCounter atomic.Int64

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	needAPIServer(t)
	name := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e6, nsCounter.Add(1))
	if err := k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8sClient.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func get(ns, name string, obj client.Object) error {
	return k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)
}

// update changes an object, retrying when a controller wrote it meanwhile.
func update(t *testing.T, ns, name string, obj client.Object, change func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := get(ns, name, obj); err != nil {
			return err
		}
		change()
		return k8sClient.Update(context.Background(), obj)
	})
	if err != nil {
		t.Fatalf("update %T %s: %v", obj, name, err)
	}
}

// authStore reads the projected auth store of a Registry.
func authStore(t *testing.T, ns, reg string) *authstore.File {
	t.Helper()
	f, err := tryAuthStore(ns, reg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tryAuthStore is authStore for polling: an absent Secret is an error.
func tryAuthStore(ns, reg string) (*authstore.File, error) {
	s := &corev1.Secret{}
	if err := get(ns, reg+"-auth", s); err != nil {
		return nil, fmt.Errorf("auth store Secret: %w", err)
	}
	f, err := authstore.Parse(s.Data[keyAuthStore])
	if err != nil {
		return nil, fmt.Errorf("auth store does not parse: %w\n%s", err, s.Data[keyAuthStore])
	}
	return f, nil
}

// projectedTokens polls the number of tokens in a Registry's auth store.
func projectedTokens(ns, reg string) func() (int, error) {
	return func() (int, error) {
		f, err := tryAuthStore(ns, reg)
		if err != nil {
			return -1, err
		}
		return len(f.Tokens), nil
	}
}

func TestEmptyRegistryGetsWorkingDefaults(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})

	dep := &appsv1.Deployment{}
	eventually(t, "Deployment created", func() (bool, error) { return get(ns, "reg", dep) == nil, nil })
	if *dep.Spec.Replicas != 1 {
		t.Errorf("replicas = %d, want 1", *dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "unireg/registry:test" {
		t.Errorf("image = %s, want the operator's default", c.Image)
	}
	for _, want := range []string{"--listen=:5000", "--data-dir=/data", "--auth-store-secret=" + ns + "/reg-auth",
		"--jwt-key-file=/etc/unireg/jwt/jwt.key", "--npm-prefix=/npm", "--oci-enabled=true"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	for _, arg := range c.Args {
		if strings.HasPrefix(arg, "--public-url") {
			t.Errorf("without spec.publicURL the server must take its URL from requests, got %s", arg)
		}
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Error("probes are not on /readyz and /healthz")
	}
	if !*pod.SecurityContext.RunAsNonRoot || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("the registry must run as non-root with a read-only root filesystem")
	}
	role := &rbacv1.Role{}
	if err := get(ns, "reg-registry", role); err != nil || len(role.Rules) != 1 ||
		!slices.Equal(role.Rules[0].ResourceNames, []string{"reg-auth"}) || !slices.Equal(role.Rules[0].Verbs, []string{"get", "list", "watch"}) {
		t.Fatalf("the registry's Role must read only its auth Secret: %v %+v", err, role.Rules)
	}
	if pod.ServiceAccountName != "reg-registry" {
		t.Errorf("pods run as %q, want reg-registry", pod.ServiceAccountName)
	}
	if pod.Volumes[0].PersistentVolumeClaim == nil || pod.Volumes[0].PersistentVolumeClaim.ClaimName != "reg-data" {
		t.Errorf("data volume = %+v, want the reg-data claim", pod.Volumes[0])
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := get(ns, "reg-data", pvc); err != nil || pvc.Spec.Resources.Requests.Storage().String() != "10Gi" {
		t.Fatalf("claim: %v %v", err, pvc.Spec.Resources.Requests)
	}
	svc := &corev1.Service{}
	if err := get(ns, "reg", svc); err != nil || svc.Spec.Ports[0].Port != 5000 || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Fatalf("service: %v %+v", err, svc.Spec)
	}
	jwt := &corev1.Secret{}
	if err := get(ns, "reg-jwt", jwt); err != nil || len(jwt.Data[keyJWT]) < 32 {
		t.Fatalf("jwt key: %v, %d bytes", err, len(jwt.Data[keyJWT]))
	}
	if f := authStore(t, ns, "reg"); len(f.Tokens) != 0 {
		t.Fatalf("a fresh registry's auth store has tokens: %+v", f.Tokens)
	}
	// The claim is retained, without owner (TestRetainedDataOutlivesItsRegistryAndIsReused).
	for _, obj := range []client.Object{dep, svc, jwt} {
		if !metav1.IsControlledBy(obj, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{UID: dep.OwnerReferences[0].UID}}) || dep.OwnerReferences[0].Kind != "Registry" {
			t.Errorf("%T %s is not owned by the Registry", obj, obj.GetName())
		}
	}
	reg := &uniregv1.Registry{}
	eventually(t, "status URL", func() (bool, error) {
		err := get(ns, "reg", reg)
		return reg.Status.URL == "http://reg."+ns+".svc:5000" && reg.Status.ObservedGeneration == reg.Generation, err
	})
	if c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v; with no pod running (envtest has no kubelet) it must be False", c)
	}
}

func TestSpecChangesRollTheDeployment(t *testing.T) {
	ns := namespace(t)
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}, Spec: uniregv1.RegistrySpec{
		Storage: uniregv1.RegistryStorage{S3: &uniregv1.S3Storage{Endpoint: "http://minio:9000", Bucket: "images",
			CredentialsSecretRef: corev1.LocalObjectReference{Name: "s3-creds"}}},
		Replicas: ptr.To[int32](2),
	}}
	create(t, reg)
	dep := &appsv1.Deployment{}
	eventually(t, "Deployment created", func() (bool, error) { return get(ns, "reg", dep) == nil, nil })
	c := dep.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--s3-bucket=images") || !slices.Contains(c.Args, "--s3-endpoint=http://minio:9000") || len(c.Env) != 2 ||
		c.Env[0].ValueFrom.SecretKeyRef.Name != "s3-creds" || *dep.Spec.Replicas != 2 {
		t.Fatalf("S3 deployment: args %v env %+v replicas %d", c.Args, c.Env, *dep.Spec.Replicas)
	}
	if err := get(ns, "reg-data", &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a claim exists for S3 storage: %v", err)
	}
	update(t, ns, "reg", reg, func() { reg.Spec.AnonymousScopes = []string{"oci:repository:*:pull"} })
	eventually(t, "the Deployment picks up --anonymous", func() (bool, error) {
		err := get(ns, "reg", dep)
		return slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--anonymous=oci:repository:*:pull"), err
	})
}

func TestTokenBecomesSecretAndProjection(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	create(t, &uniregv1.RegistryScope{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"},
		Spec: uniregv1.RegistryScopeSpec{Scopes: []string{"npm:package:@acme/*:write"}}})
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deploy"}, Spec: uniregv1.RegistryTokenSpec{
		RegistryRef: uniregv1.RegistryReference{Name: "reg"}, User: "ci-bot",
		Scopes:    []string{"oci:repository:acme/*:push"},
		ScopeRefs: []corev1.LocalObjectReference{{Name: "ci"}},
	}})
	tok := &uniregv1.RegistryToken{}
	eventually(t, "token Ready", func() (bool, error) {
		err := get(ns, "deploy", tok)
		return meta.IsStatusConditionTrue(tok.Status.Conditions, uniregv1.ConditionReady), err
	})
	s := &corev1.Secret{}
	if err := get(ns, "deploy-token", s); err != nil {
		t.Fatal(err)
	}
	token := string(s.Data[keyToken])
	if s.Type != corev1.SecretTypeDockerConfigJson || !strings.HasPrefix(token, "unireg_") {
		t.Fatalf("Secret type %s, token %q", s.Type, token[:min(len(token), 10)])
	}
	var cfg struct {
		Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
	}
	json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg)
	host := "reg." + ns + ".svc:5000"
	if a := cfg.Auths[host]; a.Username != "ci-bot" || a.Password != token {
		t.Fatalf(".dockerconfigjson = %s", s.Data[corev1.DockerConfigJsonKey])
	}
	// Nodes pull by the Service's ClusterIP: the pull secret covers it too.
	svc := &corev1.Service{}
	// The token may be Ready before the Registry's reconcile made the Service.
	eventually(t, "Service created", func() (bool, error) { return get(ns, "reg", svc) == nil, nil })
	eventually(t, "pull secret names the ClusterIP", func() (bool, error) {
		err := get(ns, "deploy-token", s)
		json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg)
		a := cfg.Auths[svc.Spec.ClusterIP+":5000"]
		return a.Username == "ci-bot" && a.Password == token, err
	})
	if npmrc := string(s.Data[keyNPMRC]); !strings.Contains(npmrc, "registry=http://"+host+"/npm/") || !strings.Contains(npmrc, "//"+host+"/npm/:_authToken="+token) ||
		!strings.Contains(npmrc, "\n//"+host+"/npm/:always-auth=true\n") {
		t.Fatalf(".npmrc = %q", npmrc)
	}
	if tok.Status.SecretName != "deploy-token" || tok.Status.TokenID == "" || strings.Contains(token, tok.Status.TokenID) {
		t.Fatalf("status %+v", tok.Status)
	}
	eventually(t, "token projected", func() (bool, error) {
		f, err := tryAuthStore(ns, "reg")
		return err == nil && len(f.Tokens) == 1 && f.Tokens[0].Hash == authstore.HashToken(token), err
	})
	f := authStore(t, ns, "reg")
	if got := f.Tokens[0]; got.User != "ci-bot" || !slices.Equal(got.Scopes, []string{"npm:package:@acme/*:write", "oci:repository:acme/*:push"}) {
		t.Fatalf("projected %+v", got)
	}
	raw := &corev1.Secret{}
	get(ns, "reg-auth", raw)
	if strings.Contains(string(raw.Data[keyAuthStore]), token) {
		t.Fatal("the auth store holds the raw token")
	}
	reg := &uniregv1.Registry{}
	eventually(t, "status.tokens", func() (bool, error) { err := get(ns, "reg", reg); return reg.Status.Tokens == 1, err })
	// The credential lives in its Secret only: not in any status, nor in
	// the events the operator records.
	events := &corev1.EventList{}
	eventually(t, "the token's events", func() (bool, error) {
		err := k8sClient.List(context.Background(), events, client.InNamespace(ns))
		return len(events.Items) > 0, err
	})
	for what, obj := range map[string]any{"RegistryToken": tok, "Registry": reg, "events": events} {
		if b, _ := json.Marshal(obj); strings.Contains(string(b), token) {
			t.Fatalf("the %s carry the token", what)
		}
	}

	// A scope change reaches the auth store.
	rs := &uniregv1.RegistryScope{}
	update(t, ns, "ci", rs, func() { rs.Spec.Scopes = []string{"npm:package:@acme/*:read"} })
	eventually(t, "scope change projected", func() (bool, error) {
		f, err := tryAuthStore(ns, "reg")
		return err == nil && len(f.Tokens) == 1 && slices.Contains(f.Tokens[0].Scopes, "npm:package:@acme/*:read"), err
	})
	eventually(t, "scope status counts the token", func() (bool, error) { err := get(ns, "ci", rs); return rs.Status.Tokens == 1, err })

	// Deleting the token revokes it: gone from the auth store.
	if err := k8sClient.Delete(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revoked token dropped", func() (bool, error) { n, err := projectedTokens(ns, "reg")(); return n == 0, err })
}

func TestTokenWithMissingRegistryOrScopeIsNotReady(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan"}, Spec: uniregv1.RegistryTokenSpec{
		RegistryRef: uniregv1.RegistryReference{Name: "nope"}, Scopes: []string{"*"}}})
	tok := &uniregv1.RegistryToken{}
	eventually(t, "RegistryNotFound", func() (bool, error) {
		err := get(ns, "orphan", tok)
		c := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady)
		return c != nil && c.Reason == uniregv1.ReasonRegistryNotFound, err
	})
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nope"}})
	eventually(t, "Ready once the Registry exists", func() (bool, error) {
		err := get(ns, "orphan", tok)
		return meta.IsStatusConditionTrue(tok.Status.Conditions, uniregv1.ConditionReady), err
	})
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scopeless"}, Spec: uniregv1.RegistryTokenSpec{
		RegistryRef: uniregv1.RegistryReference{Name: "nope"}, ScopeRefs: []corev1.LocalObjectReference{{Name: "missing"}}}})
	eventually(t, "ScopeNotFound", func() (bool, error) {
		err := get(ns, "scopeless", tok)
		c := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady)
		return c != nil && c.Reason == uniregv1.ReasonScopeNotFound, err
	})
	eventually(t, "only the Ready token projected", func() (bool, error) { n, err := projectedTokens(ns, "nope")(); return n == 1, err })
	time.Sleep(time.Second)
	if f := authStore(t, ns, "nope"); len(f.Tokens) != 1 {
		t.Fatalf("the token with a missing scope is projected: %+v", f.Tokens)
	}
}

func TestExpiredTokenDropsOut(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	expires := metav1.NewTime(clock.Now().Add(time.Hour).Truncate(time.Second)) // API times have whole seconds
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "short"}, Spec: uniregv1.RegistryTokenSpec{
		RegistryRef: uniregv1.RegistryReference{Name: "reg"}, Scopes: []string{"oci:repository:*:pull"}, ExpiresAt: &expires}})
	eventually(t, "projected with its expiry", func() (bool, error) {
		f, err := tryAuthStore(ns, "reg")
		return err == nil && len(f.Tokens) == 1 && f.Tokens[0].ExpiresAt != nil && f.Tokens[0].ExpiresAt.Equal(expires.Time), err
	})
	clock.Set(expires.Add(time.Minute))
	defer clock.Set(expires.Add(-time.Hour))
	// Touch the objects so they reconcile now rather than at the real-time requeue.
	touched := &uniregv1.RegistryToken{}
	update(t, ns, "short", touched, func() { touched.SetAnnotations(map[string]string{"test/touch": "1"}) })
	touchedReg := &uniregv1.Registry{}
	update(t, ns, "reg", touchedReg, func() { touchedReg.SetAnnotations(map[string]string{"test/touch": "1"}) })
	tok := &uniregv1.RegistryToken{}
	eventually(t, "Expired", func() (bool, error) {
		err := get(ns, "short", tok)
		c := meta.FindStatusCondition(tok.Status.Conditions, uniregv1.ConditionReady)
		return c != nil && c.Reason == uniregv1.ReasonExpired, err
	})
	eventually(t, "dropped from the auth store", func() (bool, error) { n, err := projectedTokens(ns, "reg")(); return n == 0, err })
}

func TestInvalidSpecsAreRejectedByTheAPIServer(t *testing.T) {
	ns := namespace(t)
	hour := metav1.Duration{Duration: time.Hour}
	now := metav1.Now()
	cases := []struct {
		name string
		obj  client.Object
		want string
	}{
		{"expiresAt and ttl", &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "both"}, Spec: uniregv1.RegistryTokenSpec{
			RegistryRef: uniregv1.RegistryReference{Name: "r"}, Scopes: []string{"*"}, ExpiresAt: &now, TTL: &hour}}, "set expiresAt or ttl, not both"},
		{"token without scopes", &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "none"}, Spec: uniregv1.RegistryTokenSpec{
			RegistryRef: uniregv1.RegistryReference{Name: "r"}}}, "a token needs scopes or scopeRefs"},
		{"bad scope", &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"}, Spec: uniregv1.RegistryTokenSpec{
			RegistryRef: uniregv1.RegistryReference{Name: "r"}, Scopes: []string{"oci:repo:x:pull"}}}, "spec.scopes[0]"},
		{"npm action on oci", &uniregv1.RegistryScope{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mixed"}, Spec: uniregv1.RegistryScopeSpec{
			Scopes: []string{"oci:repository:x:write"}}}, "spec.scopes[0]"},
		{"two storages", &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "two"}, Spec: uniregv1.RegistrySpec{
			Storage: uniregv1.RegistryStorage{EmptyDir: &uniregv1.EmptyDirStorage{}, Filesystem: &uniregv1.FilesystemStorage{}}}}, "set at most one of filesystem, emptyDir and s3"},
		{"negative replicas", &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "neg"}, Spec: uniregv1.RegistrySpec{
			Replicas: ptr.To[int32](-1)}}, "spec.replicas"},
		{"bad anonymous scope", &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "anon"}, Spec: uniregv1.RegistrySpec{
			AnonymousScopes: []string{"everything"}}}, "spec.anonymousScopes[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), c.obj)
			if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("create: %v; want an Invalid error mentioning %q", err, c.want)
			}
		})
	}
}

func TestSteadyStateMakesNoWrites(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	create(t, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tok"}, Spec: uniregv1.RegistryTokenSpec{
		RegistryRef: uniregv1.RegistryReference{Name: "reg"}, Scopes: []string{"*"}}})
	eventually(t, "settled", func() (bool, error) { n, err := projectedTokens(ns, "reg")(); return n == 1, err })
	time.Sleep(2 * time.Second) // let every queued reconcile run
	versions := func() map[string]string {
		out := map[string]string{}
		for name, obj := range map[string]client.Object{
			"deployment": &appsv1.Deployment{}, "service": &corev1.Service{}, "auth": &corev1.Secret{}, "jwt": &corev1.Secret{},
			"token": &corev1.Secret{}, "registry": &uniregv1.Registry{}, "regtoken": &uniregv1.RegistryToken{},
		} {
			key := map[string]string{"deployment": "reg", "service": "reg", "auth": "reg-auth", "jwt": "reg-jwt",
				"token": "tok-token", "registry": "reg", "regtoken": "tok"}[name]
			if err := get(ns, key, obj); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out[name] = obj.GetResourceVersion()
		}
		return out
	}
	before := versions()
	// Wake every controller: a label on the Registry and on the token.
	wakeReg, wakeTok := &uniregv1.Registry{}, &uniregv1.RegistryToken{}
	update(t, ns, "reg", wakeReg, func() { wakeReg.SetLabels(map[string]string{"test/wake": "1"}) })
	update(t, ns, "tok", wakeTok, func() { wakeTok.SetLabels(map[string]string{"test/wake": "1"}) })
	time.Sleep(2 * time.Second)
	after := versions()
	for name, v := range before {
		if name == "registry" || name == "regtoken" {
			continue // the test itself changed them
		}
		if after[name] != v {
			t.Errorf("%s was written in a steady state (resourceVersion %s -> %s)", name, v, after[name])
		}
	}
}
