package controllers

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// The CEL rules of the CRDs, against the API server: what they refuse and,
// as much, what they must still accept.

const (
	msgReplicasNeedS3   = "replicas > 1 needs s3 storage"
	msgStorageKindFixed = "the storage kind (filesystem, emptyDir, s3) cannot change in place"
	msgSecretNameDNS    = "secretName must be a DNS subdomain name"
)

func s3Storage(bucket string) uniregv1.RegistryStorage {
	return uniregv1.RegistryStorage{S3: &uniregv1.S3Storage{Endpoint: "http://minio:9000", Bucket: bucket,
		CredentialsSecretRef: corev1.LocalObjectReference{Name: "s3-creds"}}}
}

func wantInvalid(t *testing.T, err error, msg string) {
	t.Helper()
	if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("got %v; want an Invalid error saying %q", err, msg)
	}
}

func TestReplicasAboveOneNeedS3(t *testing.T) {
	ns := namespace(t)
	refused := map[string]uniregv1.RegistrySpec{
		"default storage": {Replicas: ptr.To[int32](2)},
		"filesystem":      {Replicas: ptr.To[int32](3), Storage: uniregv1.RegistryStorage{Filesystem: &uniregv1.FilesystemStorage{}}},
		"emptyDir":        {Replicas: ptr.To[int32](2), Storage: uniregv1.RegistryStorage{EmptyDir: &uniregv1.EmptyDirStorage{}}},
	}
	for name, spec := range refused {
		t.Run("refused/"+name, func(t *testing.T) {
			err := k8sClient.Create(context.Background(), &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "r"}, Spec: spec})
			wantInvalid(t, err, msgReplicasNeedS3)
		})
	}
	accepted := map[string]uniregv1.RegistrySpec{
		"three on s3":      {Replicas: ptr.To[int32](3), Storage: s3Storage("images")},
		"one on a volume":  {Replicas: ptr.To[int32](1)},
		"none on emptyDir": {Replicas: ptr.To[int32](0), Storage: uniregv1.RegistryStorage{EmptyDir: &uniregv1.EmptyDirStorage{}}},
	}
	i := 0
	for name, spec := range accepted {
		i++
		t.Run("accepted/"+name, func(t *testing.T) {
			reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ok" + string(rune('a'+i))}, Spec: spec}
			if err := k8sClient.Create(context.Background(), reg); err != nil {
				t.Fatalf("create: %v", err)
			}
		})
	}
	// Scaling a volume-backed Registry up is refused too, not only creating one.
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "scaled"}}
	create(t, reg)
	wantInvalid(t, tryUpdate(ns, "scaled", reg, func() { reg.Spec.Replicas = ptr.To[int32](2) }), msgReplicasNeedS3)
}

func TestStorageKindCannotChangeInPlace(t *testing.T) {
	ns := namespace(t)
	fs := uniregv1.RegistryStorage{Filesystem: &uniregv1.FilesystemStorage{Size: resource.MustParse("1Gi")}}
	empty := uniregv1.RegistryStorage{EmptyDir: &uniregv1.EmptyDirStorage{}}
	cases := []struct {
		name     string
		from, to uniregv1.RegistryStorage
	}{
		{"filesystem to s3", fs, s3Storage("images")},
		{"default to emptyDir", uniregv1.RegistryStorage{}, empty},
		{"emptyDir to filesystem", empty, fs},
		{"s3 to emptyDir", s3Storage("images"), empty},
		{"s3 to default", s3Storage("images"), uniregv1.RegistryStorage{}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kind" + string(rune('a'+i))},
				Spec: uniregv1.RegistrySpec{Storage: c.from}}
			create(t, reg)
			wantInvalid(t, tryUpdate(ns, reg.Name, reg, func() { reg.Spec.Storage = c.to }), msgStorageKindFixed)
		})
	}

	t.Run("a Registry without spec is on a volume", func(t *testing.T) {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(uniregv1.GroupVersion.String())
		u.SetKind("Registry")
		u.SetNamespace(ns)
		u.SetName("nospec")
		if err := k8sClient.Create(context.Background(), u); err != nil {
			t.Fatalf("a Registry with no spec is refused: %v", err)
		}
		var setErr error
		err := tryUpdate(ns, "nospec", u, func() {
			setErr = unstructured.SetNestedField(u.Object, map[string]any{"s3": map[string]any{
				"endpoint": "http://minio:9000", "bucket": "images", "credentialsSecretRef": map[string]any{"name": "c"},
			}}, "spec", "storage")
		})
		if setErr != nil {
			t.Fatal(setErr)
		}
		wantInvalid(t, err, msgStorageKindFixed)
	})

	t.Run("changes within a kind are accepted", func(t *testing.T) {
		onS3 := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bucket"}, Spec: uniregv1.RegistrySpec{Storage: s3Storage("images")}}
		create(t, onS3)
		update(t, ns, "bucket", onS3, func() { onS3.Spec.Storage.S3.Bucket = "other"; onS3.Spec.Replicas = ptr.To[int32](3) })
		onFS := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "size"}, Spec: uniregv1.RegistrySpec{Storage: fs}}
		create(t, onFS)
		update(t, ns, "size", onFS, func() { onFS.Spec.Storage.Filesystem.Size = resource.MustParse("20Gi") })
		// Naming the default kind explicitly is no change of kind.
		update(t, ns, "size", onFS, func() { onFS.Spec.Storage = uniregv1.RegistryStorage{} })
		onEmpty := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tmp"}, Spec: uniregv1.RegistrySpec{Storage: empty}}
		create(t, onEmpty)
		update(t, ns, "tmp", onEmpty, func() { onEmpty.Spec.Storage.EmptyDir.SizeLimit = ptr.To(resource.MustParse("2Gi")) })
	})
}

func TestTokenSecretNameIsADNSSubdomain(t *testing.T) {
	ns := namespace(t)
	token := func(name, secret string) client.Object {
		return &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: uniregv1.RegistryTokenSpec{
			RegistryRef: uniregv1.RegistryReference{Name: "r"}, Scopes: []string{"*"}, SecretName: secret}}
	}
	for i, bad := range []string{"Upper", "under_score", "-leading", "trailing.", "a/b", "sp ace"} {
		t.Run("refused/"+bad, func(t *testing.T) {
			wantInvalid(t, k8sClient.Create(context.Background(), token("bad"+string(rune('a'+i)), bad)), msgSecretNameDNS)
		})
	}
	for i, good := range []string{"team-a.registry-token", "t0", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63)} {
		t.Run("accepted/"+good[:min(len(good), 20)], func(t *testing.T) {
			if err := k8sClient.Create(context.Background(), token("good"+string(rune('a'+i)), good)); err != nil {
				t.Fatalf("create: %v", err)
			}
		})
	}
}

// tryUpdate reads an object afresh, changes it and updates it, again while
// the update conflicts with a controller's write (status, say), and returns
// the update's last error: what the API server says of the change itself.
func tryUpdate(ns, name string, obj client.Object, change func()) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := get(ns, name, obj); err != nil {
			return err
		}
		change()
		return k8sClient.Update(context.Background(), obj)
	})
}
