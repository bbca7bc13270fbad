package controllers

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// What the operator may touch: only what it made for this Registry. An
// object of a child's name is the Registry's when the Registry controls it
// (its controller owner reference); a retained data claim, which has no
// owner, when it carries annotationDataOf naming the Registry. Anything else
// of the name is refused with a ChildConflict, never adopted, overwritten or
// used, so a Registry "web" cannot take over the Service "web" of the
// namespace, nor sign with a key someone else planted.

// annotationDataOf marks a data claim as the data of the Registry it names:
// a retained claim, without owner, is reused by that mark alone.
const annotationDataOf = "unireg.dev/data-of"

// conflictRetry is how often a Registry in conflict looks again: the object
// in the way is not the Registry's, so its deletion wakes nothing.
const conflictRetry = time.Minute

// childConflict is an object of a child's name the Registry did not make.
type childConflict struct{ kind, name string }

func (c *childConflict) Error() string {
	return fmt.Sprintf("%s %s exists and is not this Registry's: the operator leaves it untouched; delete or rename it, or rename the Registry", c.kind, c.name)
}

// mustControl is nil when the Registry controls obj, read from the API.
func mustControl(reg *uniregv1.Registry, obj client.Object, kind string) error {
	if metav1.IsControlledBy(obj, reg) {
		return nil
	}
	return &childConflict{kind: kind, name: obj.GetName()}
}

// createOnly creates obj; one already there, which the operator's cache may
// not show, is a conflict.
func createOnly(ctx context.Context, c client.Client, obj client.Object, kind string) error {
	err := c.Create(ctx, obj, client.FieldOwner(fieldOwner))
	if apierrors.IsAlreadyExists(err) {
		return &childConflict{kind: kind, name: obj.GetName()}
	}
	return err
}

// setConflict says on the Registry's Ready condition which object is in the
// way, with a warning event when that is new.
func (r *RegistryReconciler) setConflict(reg *uniregv1.Registry, c *childConflict) {
	r.setNotReady(reg, uniregv1.ReasonChildConflict, c.Error())
}

// apply makes the fields of want that the operator sets true of the child,
// with server-side apply under its field manager: a hand edit of one of
// them is reverted at the next reconcile (the child's watch triggers it),
// fields others set are left alone, and an apply that changes nothing writes
// nothing. want is first checked to be the Registry's (mustControl). It
// returns the child as last read, for its status.
func (r *RegistryReconciler) apply(ctx context.Context, reg *uniregv1.Registry, want client.Object) (client.Object, error) {
	live, _, err := r.applyObject(ctx, reg, want)
	return live, err
}

// applyObject is apply that also returns the object the API server answered
// with: what it set on a child just created (a Service's ClusterIP) before
// the cache has it.
func (r *RegistryReconciler) applyObject(ctx context.Context, reg *uniregv1.Registry, want client.Object) (client.Object, *unstructured.Unstructured, error) {
	gvk, err := apiutil.GVKForObject(want, r.Scheme)
	if err != nil {
		return nil, nil, err
	}
	live := want.DeepCopyObject().(client.Object)
	switch err := r.Get(ctx, client.ObjectKeyFromObject(want), live); {
	case err == nil:
		if err := mustControl(reg, live, gvk.Kind); err != nil {
			return nil, nil, err
		}
	case apierrors.IsNotFound(err):
		live = want.DeepCopyObject().(client.Object) // nothing observed yet
	default:
		return nil, nil, err
	}
	want.SetLabels(commonLabels(reg))
	if err := controllerutil.SetControllerReference(reg, want, r.Scheme); err != nil {
		return nil, nil, err
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		return nil, nil, err
	}
	// Only what the operator sets: zero values the Go types cannot omit
	// (status, creationTimestamp: null) would otherwise be claimed too.
	delete(u, "status")
	dropNulls(u)
	obj := &unstructured.Unstructured{Object: u}
	obj.SetGroupVersionKind(gvk)
	if err := r.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return nil, nil, fmt.Errorf("apply %s %s: %w", gvk.Kind, want.GetName(), err)
	}
	return live, obj, nil
}

// dropNulls removes the null values of an object, at every depth.
func dropNulls(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			dropNulls(v)
		case []any:
			for _, item := range v {
				if im, ok := item.(map[string]any); ok {
					dropNulls(im)
				}
			}
		}
	}
}
