package controllers

// The operator touches only what it made: deleting a Registry keeps its data
// unless asked otherwise, a same-named object it did not create is refused
// (never adopted, never overwritten, never used as a signing key), and hand
// edits of what it owns are reverted (issue 15, "must not happen" 4-6).
// Reasons and marks are spelled out as strings: they are the API users and
// their tooling see.

import (
	"context"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// dataMark is the annotation by which the operator knows a retained claim
// as the data of the Registry it names.
const dataMark = "unireg.dev/data-of"

// registryReady is the Registry's Ready condition, nil without one.
func registryReady(ns, name string) (*metav1.Condition, error) {
	reg := &uniregv1.Registry{}
	if err := get(ns, name, reg); err != nil {
		return nil, err
	}
	return meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionReady), nil
}

// waitConflict waits until the Registry says it refuses the named object,
// with an event.
func waitConflict(t *testing.T, ns, reg, object string) {
	t.Helper()
	eventually(t, reg+" reports a conflict on "+object, func() (bool, error) {
		c, err := registryReady(ns, reg)
		return c != nil && c.Reason == "ChildConflict" && strings.Contains(c.Message, object), err
	})
	waitEvent(t, ns, reg, "ChildConflict")
}

// collectGarbage does what the garbage collector of a cluster does (envtest
// runs none): it deletes every object of ns controlled by the deleted owner.
func collectGarbage(t *testing.T, ns string, owner types.UID) {
	t.Helper()
	lists := []client.ObjectList{&appsv1.DeploymentList{}, &corev1.ServiceList{}, &corev1.SecretList{},
		&corev1.PersistentVolumeClaimList{}, &corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{}}
	for _, list := range lists {
		if err := k8sClient.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range items {
			obj := item.(client.Object)
			if c := metav1.GetControllerOf(obj); c != nil && c.UID == owner {
				if err := k8sClient.Delete(context.Background(), obj); client.IgnoreNotFound(err) != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func ownedBy(obj client.Object, uid types.UID) bool {
	for _, ref := range obj.GetOwnerReferences() {
		if ref.UID == uid {
			return true
		}
	}
	return false
}

func TestRetainedDataOutlivesItsRegistryAndIsReused(t *testing.T) {
	ns := namespace(t)
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}}
	create(t, reg)
	pvc := &corev1.PersistentVolumeClaim{}
	eventually(t, "claim created", func() (bool, error) { return get(ns, "reg-data", pvc) == nil, nil })
	if len(pvc.OwnerReferences) != 0 {
		t.Fatalf("the retained claim has owners %+v: the garbage collector would delete it with the Registry", pvc.OwnerReferences)
	}
	if pvc.Annotations[dataMark] != "reg" {
		t.Fatalf("the claim does not carry the operator's mark %s=reg: %v", dataMark, pvc.Annotations)
	}

	// Delete the Registry; the cluster's garbage collector takes its other
	// children. A Registry of the same name finds its data and mounts it.
	if err := k8sClient.Delete(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Registry deleted", func() (bool, error) { return apierrors.IsNotFound(get(ns, "reg", &uniregv1.Registry{})), nil })
	collectGarbage(t, ns, reg.UID)
	if err := get(ns, "reg-data", pvc); err != nil {
		t.Fatalf("the claim went with the Registry: %v", err)
	}
	claimUID := pvc.UID
	again := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}}
	create(t, again)
	dep := &appsv1.Deployment{}
	eventually(t, "the new Registry's Deployment", func() (bool, error) {
		// A reconcile of the old Registry that was in flight when it went
		// may apply a child again after the first pass; the cluster's
		// collector runs continuously and takes it too.
		collectGarbage(t, ns, reg.UID)
		err := get(ns, "reg", dep)
		return err == nil && metav1.IsControlledBy(dep, again), nil
	})
	if v := dep.Spec.Template.Spec.Volumes[0]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "reg-data" {
		t.Fatalf("data volume %+v, want the retained claim", v)
	}
	if err := get(ns, "reg-data", pvc); err != nil || pvc.UID != claimUID || len(pvc.OwnerReferences) != 0 {
		t.Fatalf("the retained claim was not reused as it was: %v, uid %s (was %s), owners %+v", err, pvc.UID, claimUID, pvc.OwnerReferences)
	}
	// The Deployment is applied before the Registry's status is written: wait
	// for the new Registry's first Ready condition, which must not be a
	// conflict with its predecessor's children once those are gone.
	eventually(t, "the new Registry reports Ready without a conflict", func() (bool, error) {
		collectGarbage(t, ns, reg.UID)
		c, err := registryReady(ns, "reg")
		return c != nil && c.Reason != "ChildConflict", err
	})
}

func TestReclaimPolicyDeleteOwnsTheClaim(t *testing.T) {
	ns := namespace(t)
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}, Spec: uniregv1.RegistrySpec{
		Storage: uniregv1.RegistryStorage{Filesystem: &uniregv1.FilesystemStorage{Size: resource.MustParse("1Gi"), ReclaimPolicy: "Delete"}},
	}}
	create(t, reg)
	pvc := &corev1.PersistentVolumeClaim{}
	eventually(t, "claim created", func() (bool, error) { return get(ns, "reg-data", pvc) == nil, nil })
	if !metav1.IsControlledBy(pvc, reg) {
		t.Fatalf("with reclaimPolicy Delete the claim must be the Registry's (owners %+v)", pvc.OwnerReferences)
	}

	// The policy applies to the claim that exists, both ways.
	update(t, ns, "reg", reg, func() { reg.Spec.Storage.Filesystem.ReclaimPolicy = "Retain" })
	eventually(t, "Retain drops the owner reference", func() (bool, error) {
		err := get(ns, "reg-data", pvc)
		return err == nil && !ownedBy(pvc, reg.UID), err
	})
	update(t, ns, "reg", reg, func() { reg.Spec.Storage.Filesystem.ReclaimPolicy = "Delete" })
	eventually(t, "Delete sets it again", func() (bool, error) {
		err := get(ns, "reg-data", pvc)
		return err == nil && metav1.IsControlledBy(pvc, reg), err
	})
}

func TestReclaimPolicyIsRetainOrDelete(t *testing.T) {
	ns := namespace(t)
	err := k8sClient.Create(context.Background(), &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}, Spec: uniregv1.RegistrySpec{
		Storage: uniregv1.RegistryStorage{Filesystem: &uniregv1.FilesystemStorage{ReclaimPolicy: "Recycle"}},
	}})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "reclaimPolicy") {
		t.Fatalf("create with reclaimPolicy Recycle: %v; want Invalid", err)
	}
}

// foreignDeployment is a Deployment of the same name as a Registry's, made
// by someone else.
func foreignDeployment(ns, name string) *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To[int32](3),
		Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: "nginx:1"}},
		}},
	}}
}

func TestSameNamedObjectsAreRefusedNotAdopted(t *testing.T) {
	type plant struct {
		name, object string // what the Registry reg would make, and how the conflict names it
		obj          func(ns string) client.Object
	}
	objMeta := func(ns, name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"team": "web"}}
	}
	cases := []plant{
		{"Service", "Service reg", func(ns string) client.Object {
			return &corev1.Service{ObjectMeta: objMeta(ns, "reg"), Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
		}},
		{"ServiceAccount", "ServiceAccount reg-registry", func(ns string) client.Object {
			return &corev1.ServiceAccount{ObjectMeta: objMeta(ns, "reg-registry")}
		}},
		{"Role", "Role reg-registry", func(ns string) client.Object {
			return &rbacv1.Role{ObjectMeta: objMeta(ns, "reg-registry"), Rules: []rbacv1.PolicyRule{{
				APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}}}
		}},
		{"RoleBinding", "RoleBinding reg-registry", func(ns string) client.Object {
			return &rbacv1.RoleBinding{ObjectMeta: objMeta(ns, "reg-registry"),
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "default", Namespace: ns}}}
		}},
		{"Deployment", "Deployment reg", func(ns string) client.Object { return foreignDeployment(ns, "reg") }},
		{"AuthStoreSecret", "Secret reg-auth", func(ns string) client.Object {
			return &corev1.Secret{ObjectMeta: objMeta(ns, "reg-auth"), Data: map[string][]byte{"auth-store.yaml": []byte("mine")}}
		}},
		// Someone who may create Secrets plants the key of a future Registry
		// to forge its JWTs: it is a conflict, never the key.
		{"PlantedJWTKey", "Secret reg-jwt", func(ns string) client.Object {
			return &corev1.Secret{ObjectMeta: objMeta(ns, "reg-jwt"), Data: map[string][]byte{"jwt.key": []byte(strings.Repeat("ab", 32))}}
		}},
		{"UnmarkedClaim", "PersistentVolumeClaim reg-data", func(ns string) client.Object {
			return claim(ns, nil)
		}},
		// The operator's mark for another Registry is not its mark for this one.
		{"ClaimMarkedForAnother", "PersistentVolumeClaim reg-data", func(ns string) client.Object {
			return claim(ns, map[string]string{dataMark: "other"})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := namespace(t)
			planted := c.obj(ns)
			create(t, planted)
			before := planted.DeepCopyObject().(client.Object)
			if err := get(ns, planted.GetName(), before); err != nil {
				t.Fatal(err)
			}
			create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
			waitConflict(t, ns, "reg", c.object)
			time.Sleep(time.Second) // what a wrongly adopting reconcile would have written by now
			after := planted.DeepCopyObject().(client.Object)
			if err := get(ns, planted.GetName(), after); err != nil {
				t.Fatal(err)
			}
			if after.GetResourceVersion() != before.GetResourceVersion() || len(after.GetOwnerReferences()) != 0 ||
				!maps.Equal(after.GetLabels(), before.GetLabels()) || !maps.Equal(after.GetAnnotations(), before.GetAnnotations()) {
				t.Fatalf("%s was written:\nbefore %+v\nafter  %+v", c.object, before, after)
			}
			if c.name == "PlantedJWTKey" {
				// Nothing runs with the planted key.
				if err := get(ns, "reg", &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
					t.Fatalf("a Deployment exists while the signing key is not the operator's: %v", err)
				}
			}
		})
	}
}

func claim(ns string, annotations map[string]string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg-data", Labels: map[string]string{"team": "web"}, Annotations: annotations},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

func TestConflictClearsWhenTheObjectGoes(t *testing.T) {
	ns := namespace(t)
	create(t, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}})
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}}
	create(t, reg)
	waitConflict(t, ns, "reg", "Service reg")
	if err := k8sClient.Delete(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}}); err != nil {
		t.Fatal(err)
	}
	// A spec change wakes the Registry now, rather than its next retry.
	update(t, ns, "reg", reg, func() { reg.Spec.AnonymousScopes = []string{"oci:repository:*:pull"} })
	svc := &corev1.Service{}
	eventually(t, "the Registry's own Service", func() (bool, error) {
		err := get(ns, "reg", svc)
		return err == nil && metav1.IsControlledBy(svc, reg), nil
	})
	eventually(t, "the conflict cleared", func() (bool, error) {
		c, err := registryReady(ns, "reg")
		return c != nil && c.Reason != "ChildConflict", err
	})
}

func TestHandEditsOfOwnedFieldsAreReverted(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}})
	dep := &appsv1.Deployment{}
	eventually(t, "Deployment created", func() (bool, error) { return get(ns, "reg", dep) == nil, nil })
	update(t, ns, "reg", dep, func() {
		dep.Spec.Template.Spec.Containers[0].Image = "evil/registry:latest"
		if dep.Annotations == nil {
			dep.Annotations = map[string]string{}
		}
		dep.Annotations["team/note"] = "kept" // a field the operator does not own
	})
	eventually(t, "the image restored", func() (bool, error) {
		err := get(ns, "reg", dep)
		return err == nil && dep.Spec.Template.Spec.Containers[0].Image == "unireg/registry:test", err
	})
	if dep.Annotations["team/note"] != "kept" {
		t.Errorf("an annotation the operator does not own was removed: %v", dep.Annotations)
	}

	role := &rbacv1.Role{}
	update(t, ns, "reg-registry", role, func() {
		role.Rules[0].ResourceNames = nil // every Secret of the namespace
	})
	eventually(t, "the Role's rule restored", func() (bool, error) {
		err := get(ns, "reg-registry", role)
		return err == nil && len(role.Rules) == 1 && reflect.DeepEqual(role.Rules[0].ResourceNames, []string{"reg-auth"}), err
	})
}

// The rollout strategy follows the storage: S3 rolls, a volume or an
// emptyDir is recreated (a new pod cannot share it with the old one), with
// no rolling parameters, which Recreate refuses. The storage kind cannot
// change in place (a CEL rule, cel_test.go), so each is a Registry of its own.
func TestRolloutStrategyFollowsTheStorage(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "on-s3"}, Spec: uniregv1.RegistrySpec{
		Storage: uniregv1.RegistryStorage{S3: &uniregv1.S3Storage{Endpoint: "http://minio:9000", Bucket: "images",
			CredentialsSecretRef: corev1.LocalObjectReference{Name: "s3-creds"}}}}})
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "in-pod"}, Spec: uniregv1.RegistrySpec{
		Storage: uniregv1.RegistryStorage{EmptyDir: &uniregv1.EmptyDirStorage{}}}})
	dep := &appsv1.Deployment{}
	eventually(t, "a rolling Deployment on S3", func() (bool, error) {
		err := get(ns, "on-s3", dep)
		return err == nil && dep.Spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType, nil
	})
	eventually(t, "a recreated Deployment on an emptyDir", func() (bool, error) {
		err := get(ns, "in-pod", dep)
		return err == nil && dep.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType && dep.Spec.Strategy.RollingUpdate == nil, nil
	})
}
