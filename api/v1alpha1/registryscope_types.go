package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RegistryScopeSpec is a named set of scopes that tokens refer to.
type RegistryScopeSpec struct {
	// Scopes of the set, e.g. "npm:package:@acme/*:write".
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^(\*|(oci|\*):(repository|\*):[^:\s\x00]+:(pull|push|delete|\*)|(npm|\*):(package|\*):[^:\s\x00]+:(read|write|delete|\*))$`
	Scopes []string `json:"scopes"`
	// Description for people.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Description string `json:"description,omitempty"`
}

// RegistryScopeStatus is what the operator observed.
type RegistryScopeStatus struct {
	// Conditions of the scope set: Ready is False (reason InvalidScope)
	// when the registry's scope parser refuses one of its scopes; tokens
	// using it are then not projected.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Tokens is how many RegistryTokens use this set.
	// +optional
	Tokens int32 `json:"tokens,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// RegistryScope is a named set of scopes.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=regscope
// +kubebuilder:printcolumn:name="Tokens",type=integer,JSONPath=`.status.tokens`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RegistryScope struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RegistryScopeSpec   `json:"spec,omitempty"`
	Status RegistryScopeStatus `json:"status,omitempty"`
}

// RegistryScopeList is a list of RegistryScopes.
// +kubebuilder:object:root=true
type RegistryScopeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RegistryScope `json:"items"`
}

func init() { SchemeBuilder.Register(&RegistryScope{}, &RegistryScopeList{}) }
