// Package v1alpha1 holds the unireg.dev/v1alpha1 API: Registry,
// RegistryToken and RegistryScope.
// +kubebuilder:object:generate=true
// +groupName=unireg.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of these objects.
	GroupVersion = schema.GroupVersion{Group: "unireg.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Condition types shared by the kinds.
const (
	// ConditionReady summarises: the object does what it is for.
	ConditionReady = "Ready"
	// ConditionAvailable: the registry has ready replicas serving.
	ConditionAvailable = "Available"
	// ConditionProgressing: a rollout is under way.
	ConditionProgressing = "Progressing"
	// ConditionDegraded: fewer ready replicas than asked for, or a problem.
	ConditionDegraded = "Degraded"
	// ConditionTokensProjected: every Ready token of the Registry is in the
	// auth store its pods load. False with reason TokensLeftOut (some are
	// not: a duplicate hash, an entry the server would refuse) or
	// ProjectionRefused (the store built does not parse, so it is not
	// written and the previous one stays in force).
	ConditionTokensProjected = "TokensProjected"
)
