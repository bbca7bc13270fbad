package controllers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// deployment waits for a Registry's Deployment and returns it.
func deployment(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	dep := &appsv1.Deployment{}
	eventually(t, "Deployment "+name+" created", func() (bool, error) { return get(ns, name, dep) == nil, nil })
	return dep
}

func volume(pod corev1.PodSpec, name string) corev1.Volume {
	for _, v := range pod.Volumes {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}

func quantity(q *resource.Quantity) string {
	if q == nil {
		return "<none>"
	}
	return q.String()
}

func TestRegistryContainerGetsDefaultRequests(t *testing.T) {
	ns := namespace(t)
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"}})
	res := deployment(t, ns, "plain").Spec.Template.Spec.Containers[0].Resources
	if cpu, mem := res.Requests[corev1.ResourceCPU], res.Requests[corev1.ResourceMemory]; cpu.String() != "100m" || mem.String() != "128Mi" {
		t.Errorf("requests = %v; want the documented defaults 100m CPU and 128Mi memory", res.Requests)
	}

	// The user's values win, key by key; limits are theirs alone.
	create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sized"}, Spec: uniregv1.RegistrySpec{
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
	}})
	res = deployment(t, ns, "sized").Spec.Template.Spec.Containers[0].Resources
	cpu, mem, limit := res.Requests[corev1.ResourceCPU], res.Requests[corev1.ResourceMemory], res.Limits[corev1.ResourceMemory]
	if cpu.String() != "500m" || mem.String() != "128Mi" || limit.String() != "1Gi" || len(res.Limits) != 1 {
		t.Errorf("resources = %+v; want cpu 500m (the user's), memory 128Mi (the default), the user's memory limit only", res)
	}
}

func TestEmptyDirsHaveSizeLimits(t *testing.T) {
	ns := namespace(t)
	cases := []struct {
		name     string
		storage  uniregv1.RegistryStorage
		wantData string // the data volume's sizeLimit; "" when it is a claim
	}{
		{"volume", uniregv1.RegistryStorage{}, ""},
		{"emptydir", uniregv1.RegistryStorage{EmptyDir: &uniregv1.EmptyDirStorage{}}, "10Gi"},
		{"emptydir-sized", uniregv1.RegistryStorage{EmptyDir: &uniregv1.EmptyDirStorage{SizeLimit: ptr.To(resource.MustParse("2Gi"))}}, "2Gi"},
		{"s3", s3Storage("images"), s3LocalStateLimit.String()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			create(t, &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: c.name}, Spec: uniregv1.RegistrySpec{Storage: c.storage}})
			pod := deployment(t, ns, c.name).Spec.Template.Spec
			if tmp := volume(pod, "tmp").EmptyDir; tmp == nil || quantity(tmp.SizeLimit) != "1Gi" {
				t.Errorf("tmp volume = %+v; want an emptyDir limited to 1Gi", tmp)
			}
			data := volume(pod, "data")
			switch {
			case c.wantData == "" && data.PersistentVolumeClaim == nil:
				t.Errorf("data volume = %+v; want the claim", data)
			case c.wantData != "" && (data.EmptyDir == nil || quantity(data.EmptyDir.SizeLimit) != c.wantData):
				t.Errorf("data volume = %+v; want an emptyDir limited to %s", data.VolumeSource, c.wantData)
			}
		})
	}
}

func TestPodTemplateOverridesReachThePods(t *testing.T) {
	ns := namespace(t)
	affinity := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
			Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"},
		}}}},
	}}}
	spread := corev1.TopologySpreadConstraint{
		MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelInstance: "reg"}},
	}
	reg := &uniregv1.Registry{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reg"}, Spec: uniregv1.RegistrySpec{
		PodTemplate: uniregv1.PodTemplateOverrides{
			ImagePullSecrets:          []corev1.LocalObjectReference{{Name: "pull"}},
			Affinity:                  affinity,
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{spread},
		},
	}}
	create(t, reg)
	pod := deployment(t, ns, "reg").Spec.Template.Spec
	if len(pod.ImagePullSecrets) != 1 || pod.ImagePullSecrets[0].Name != "pull" {
		t.Errorf("imagePullSecrets = %v", pod.ImagePullSecrets)
	}
	if pod.Affinity == nil || pod.Affinity.NodeAffinity == nil {
		t.Errorf("affinity = %+v", pod.Affinity)
	}
	if len(pod.TopologySpreadConstraints) != 1 || pod.TopologySpreadConstraints[0].TopologyKey != spread.TopologyKey {
		t.Errorf("topologySpreadConstraints = %+v", pod.TopologySpreadConstraints)
	}

	// What the spec no longer says leaves the pods too (server-side apply
	// drops the fields the operator stops applying).
	update(t, ns, "reg", reg, func() {
		reg.Spec.PodTemplate.Affinity = nil
		reg.Spec.PodTemplate.ImagePullSecrets = nil
	})
	eventually(t, "affinity and pull secrets removed from the Deployment", func() (bool, error) {
		dep := &appsv1.Deployment{}
		err := get(ns, "reg", dep)
		p := dep.Spec.Template.Spec
		return p.Affinity == nil && len(p.ImagePullSecrets) == 0 && len(p.TopologySpreadConstraints) == 1, err
	})
}
