package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// An operator upgrade changes the default image of every Registry that
// names none, and restarting them all at once would take every registry of
// the cluster down together (and a broken image everywhere). So a Registry
// whose pods run another image than the default it should now run waits
// its turn: one Registry at a time takes the new default image, in the
// order of namespace/name, and the next starts once that one is rolled
// out. Everything else of its spec applies meanwhile; only the image is
// held. A rollout that never finishes holds the others (the new image may
// be what is wrong): their Progressing condition names it.
//
// Only an image that a previous operator put there as its default is held:
// the Deployment records the default image it was given
// (annotationDefaultImage), so a hand edit of the image is not mistaken for
// an older default and is reverted at once. A Deployment of an operator
// from before the record counts its image as a previous default when it is
// of the same repository as the operator's default.

// annotationDefaultImage on a Deployment is the operator's default image
// it was applied with; absent when the Registry names its image.
const annotationDefaultImage = "unireg.dev/default-image"

// upgradeSlot says whether reg may move from the image its Deployment runs
// to the default image. It returns "" when it may (or the question does not
// arise: a pinned spec.image, no Deployment yet, no replicas, the image
// already the default), else the image to keep and why.
func (r *RegistryReconciler) upgradeSlot(ctx context.Context, reg *uniregv1.Registry) (keep, why string, err error) {
	if reg.Spec.Image != "" || wantedReplicas(reg) == 0 {
		return "", "", nil
	}
	live := &appsv1.Deployment{}
	if err := r.Get(ctx, client.ObjectKeyFromObject(reg), live); apierrors.IsNotFound(err) {
		return "", "", nil
	} else if err != nil {
		return "", "", err
	}
	current := registryImage(live)
	if !metav1.IsControlledBy(live, reg) || current == r.DefaultImage || !r.previousDefault(live) || derefReplicas(live) == 0 {
		return "", "", nil
	}
	var regs uniregv1.RegistryList
	if err := r.List(ctx, &regs); err != nil {
		return "", "", err
	}
	// In slot order, so the Registry named as the one to wait for is the
	// first in line, not whichever the cache lists first.
	sort.Slice(regs.Items, func(i, j int) bool { return key(&regs.Items[i]) < key(&regs.Items[j]) })
	me := key(reg)
	for i := range regs.Items {
		other := &regs.Items[i]
		if key(other) == me || other.Spec.Image != "" || other.DeletionTimestamp != nil {
			continue
		}
		dep := &appsv1.Deployment{}
		if err := r.Get(ctx, client.ObjectKeyFromObject(other), dep); apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return "", "", err
		}
		if !metav1.IsControlledBy(dep, other) || derefReplicas(dep) == 0 {
			continue
		}
		switch img := registryImage(dep); {
		case img == r.DefaultImage && !deploymentRolledOut(dep):
			return current, fmt.Sprintf("Registry %s is rolling out the operator's image %s; this one keeps %s until it is done", key(other), r.DefaultImage, current), nil
		case img != r.DefaultImage && r.previousDefault(dep) && key(other) < me && !failing(other):
			return current, fmt.Sprintf("Registry %s takes the operator's image %s before this one (one at a time, by namespace/name); this one keeps %s meanwhile", key(other), r.DefaultImage, current), nil
		}
	}
	return "", "", nil
}

// previousDefault: the Deployment runs a default image of an operator,
// another than this one's.
func (r *RegistryReconciler) previousDefault(dep *appsv1.Deployment) bool {
	img := registryImage(dep)
	if img == "" || img == r.DefaultImage {
		return false
	}
	if recorded, ok := dep.Annotations[annotationDefaultImage]; ok {
		return recorded == img
	}
	return repository(img) == repository(r.DefaultImage)
}

// repository is an image reference without its tag or digest.
func repository(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

func key(o client.Object) string { return o.GetNamespace() + "/" + o.GetName() }

// failing is a Registry whose reconcile does not get as far as its
// Deployment: it would never take its turn, so it does not hold one.
func failing(reg *uniregv1.Registry) bool {
	c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionReady)
	return c != nil && (c.Reason == uniregv1.ReasonChildConflict || c.Reason == uniregv1.ReasonReconcileError)
}

// registryImage is the image of the registry container of a Deployment.
func registryImage(dep *appsv1.Deployment) string {
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name == "registry" {
			return c.Image
		}
	}
	return ""
}

func derefReplicas(dep *appsv1.Deployment) int32 {
	if dep.Spec.Replicas == nil {
		return 1
	}
	return *dep.Spec.Replicas
}

// deploymentRolledOut: the Deployment controller has seen the current
// template and every wanted pod runs it and is available.
func deploymentRolledOut(dep *appsv1.Deployment) bool {
	n := derefReplicas(dep)
	s := dep.Status
	return s.ObservedGeneration >= dep.Generation && s.UpdatedReplicas >= n && s.AvailableReplicas >= n
}

func wantedReplicas(reg *uniregv1.Registry) int32 {
	if reg.Spec.Replicas == nil {
		return 1
	}
	return *reg.Spec.Replicas
}
