package controllers

// The status of a Registry: the conditions the registry controller writes,
// one function each (TokensProjected is the auth-store controller's,
// setTokensProjected), and how the two controllers write their own fields.

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// Two controllers write a Registry's status, each its own fields: the
// registry controller the workload's (Ready, Available, Progressing,
// Degraded, observedGeneration, url, readyReplicas,
// pullHosts, jwtKeyRotation), the auth-store controller TokensProjected and tokens,
// the node mirror controller NodeMirrorReady and nodeMirror.
// Each writes with server-side apply under its own field manager, so
// neither can overwrite what the other wrote, whatever order they run in
// (conditions are a map keyed by type).

// authStoreFieldOwner is the auth-store controller's field manager; the
// registry controller's is fieldOwner.
const authStoreFieldOwner = "unireg-operator-auth-store"

// applyStatus writes the given fields of reg's status under owner. A field
// owner wrote before and leaves out now is removed, so every field a
// controller owns is always given, zero values included.
func applyStatus(ctx context.Context, c client.Client, reg *uniregv1.Registry, owner string, status map[string]any) error {
	u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	u.SetGroupVersionKind(uniregv1.GroupVersion.WithKind("Registry"))
	u.SetNamespace(reg.Namespace)
	u.SetName(reg.Name)
	err := c.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(owner), client.ForceOwnership)
	return client.IgnoreNotFound(err) // deleted meanwhile
}

// conditionsOf are the conditions of the given types, as apply wants them.
func conditionsOf(conds []metav1.Condition, keep func(typ string) bool) ([]any, error) {
	out := []any{}
	for i := range conds {
		if !keep(conds[i].Type) {
			continue
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&conds[i])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// writeRegistryStatus applies the registry controller's fields of reg's
// status.
func (r *RegistryReconciler) writeRegistryStatus(ctx context.Context, reg *uniregv1.Registry) error {
	conds, err := conditionsOf(reg.Status.Conditions, func(typ string) bool {
		return typ != uniregv1.ConditionTokensProjected && typ != uniregv1.ConditionNodeMirrorReady
	})
	if err != nil {
		return err
	}
	hosts := make([]any, 0, len(reg.Status.PullHosts))
	for _, h := range reg.Status.PullHosts {
		hosts = append(hosts, h)
	}
	return applyStatus(ctx, r.Client, reg, fieldOwner, map[string]any{
		"conditions":         conds,
		"observedGeneration": reg.Status.ObservedGeneration,
		"url":                reg.Status.URL,
		"readyReplicas":      reg.Status.ReadyReplicas,
		"pullHosts":          hosts,
		"jwtKeyRotation":     reg.Status.JWTKeyRotation,
	})
}

// setStatus sets what the Deployment says: the URL, replicas and the
// conditions.
func (r *RegistryReconciler) setStatus(reg *uniregv1.Registry, dep *appsv1.Deployment, waiting string) {
	reg.Status.URL = serviceURL(reg)
	reg.Status.ReadyReplicas = dep.Status.ReadyReplicas
	want := wantedReplicas(reg)
	available := dep.Status.ReadyReplicas > 0 || want == 0
	rolledOut := dep.Status.ObservedGeneration >= dep.Generation && dep.Status.UpdatedReplicas == want && dep.Status.Replicas == want
	degraded := dep.Status.ReadyReplicas < want && rolledOut
	setAvailable(reg, available, fmt.Sprintf("%d of %d replicas ready", dep.Status.ReadyReplicas, want))
	r.setProgressing(reg, !rolledOut, waiting)
	setDegraded(reg, degraded)
	setReady(reg, available && !degraded, fmt.Sprintf("%d of %d replicas ready at %s", dep.Status.ReadyReplicas, want, reg.Status.URL))
}

// pullHosts is status.pullHosts (see its doc): what the token controller
// writes pull secrets for, published here so it need not read the Service.
func pullHosts(reg *uniregv1.Registry, svc *corev1.Service) []string {
	var hosts []string
	if u, err := url.Parse(publicURL(reg)); err == nil && u.Host != "" {
		hosts = append(hosts, u.Host)
	}
	if reg.Spec.PublicURL == "" && svc != nil && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		hosts = append(hosts, net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(servicePort(reg)))))
	}
	return hosts
}

// setCondition sets one condition of the Registry's generation.
func setCondition(reg *uniregv1.Registry, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&reg.Status.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: reg.Generation,
	})
}

// setReady sets Ready from the pods: Serving, or NotServing. While the
// auth-store controller refuses the store it built (TokensProjected
// ProjectionRefused), Ready is False with that reason: the pods serve, but
// with an auth store that no longer follows the tokens.
func setReady(reg *uniregv1.Registry, serving bool, msg string) {
	if c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionTokensProjected); c != nil && c.Reason == uniregv1.ReasonProjectionRefused {
		setCondition(reg, uniregv1.ConditionReady, metav1.ConditionFalse, uniregv1.ReasonProjectionRefused, c.Message)
		return
	}
	if serving {
		setCondition(reg, uniregv1.ConditionReady, metav1.ConditionTrue, uniregv1.ReasonServing, msg)
		return
	}
	setCondition(reg, uniregv1.ConditionReady, metav1.ConditionFalse, uniregv1.ReasonNotServing, msg)
}

// setNotReady sets Ready False for a failure, with a warning event when the
// failure is new (another reason or message than the condition holds), so a
// failure retried with backoff is one event, not one per retry.
func (r *RegistryReconciler) setNotReady(reg *uniregv1.Registry, reason, msg string) {
	if was := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionReady); was == nil || was.Status != metav1.ConditionFalse || was.Reason != reason || was.Message != msg {
		r.Recorder.Event(reg, corev1.EventTypeWarning, reason, msg)
	}
	setCondition(reg, uniregv1.ConditionReady, metav1.ConditionFalse, reason, msg)
}

// setAvailable: some replica is ready (or none is wanted).
func setAvailable(reg *uniregv1.Registry, available bool, msg string) {
	if available {
		setCondition(reg, uniregv1.ConditionAvailable, metav1.ConditionTrue, uniregv1.ReasonReplicasReady, msg)
		return
	}
	setCondition(reg, uniregv1.ConditionAvailable, metav1.ConditionFalse, uniregv1.ReasonNoReplicaReady, msg)
}

// setProgressing: the Deployment rolls out, or the Registry waits for its
// turn to take the operator's new default image (waiting says why; an
// event when that is new).
func (r *RegistryReconciler) setProgressing(reg *uniregv1.Registry, rollingOut bool, waiting string) {
	switch {
	case waiting != "":
		if was := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionProgressing); was == nil || was.Reason != uniregv1.ReasonWaitingForUpgradeSlot || was.Message != waiting {
			r.Recorder.Event(reg, corev1.EventTypeNormal, uniregv1.ReasonWaitingForUpgradeSlot, waiting)
		}
		setCondition(reg, uniregv1.ConditionProgressing, metav1.ConditionTrue, uniregv1.ReasonWaitingForUpgradeSlot, waiting)
	case rollingOut:
		setCondition(reg, uniregv1.ConditionProgressing, metav1.ConditionTrue, uniregv1.ReasonRollingOut, "")
	default:
		setCondition(reg, uniregv1.ConditionProgressing, metav1.ConditionFalse, uniregv1.ReasonRolledOut, "")
	}
}

// setDegraded: the rollout is done and replicas are missing.
func setDegraded(reg *uniregv1.Registry, degraded bool) {
	if degraded {
		setCondition(reg, uniregv1.ConditionDegraded, metav1.ConditionTrue, uniregv1.ReasonMissingReplicas, "")
		return
	}
	setCondition(reg, uniregv1.ConditionDegraded, metav1.ConditionFalse, uniregv1.ReasonAsExpected, "")
}
