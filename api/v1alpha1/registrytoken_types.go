package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RegistryTokenSpec is a credential for one Registry.
// +kubebuilder:validation:XValidation:rule="!(has(self.expiresAt) && has(self.ttl))",message="set expiresAt or ttl, not both"
// +kubebuilder:validation:XValidation:rule="has(self.scopes) || has(self.scopeRefs)",message="a token needs scopes or scopeRefs"
type RegistryTokenSpec struct {
	// RegistryRef names the Registry, in the same namespace.
	RegistryRef corev1.LocalObjectReference `json:"registryRef"`
	// User is the name requests with this token act as; the object's name
	// when empty.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	User string `json:"user,omitempty"`
	// Scopes granted to the token, e.g. "oci:repository:team/*:push".
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^(\*|(oci|\*):(repository|\*):[^:\s\x00]+:(pull|push|delete|\*)|(npm|\*):(package|\*):[^:\s\x00]+:(read|write|delete|\*))$`
	// +optional
	Scopes []string `json:"scopes,omitempty"`
	// ScopeRefs name RegistryScopes whose scopes the token also gets.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	ScopeRefs []corev1.LocalObjectReference `json:"scopeRefs,omitempty"`
	// ExpiresAt is when the token stops working.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// TTL is how long after its creation the token works.
	// +optional
	TTL *metav1.Duration `json:"ttl,omitempty"`
	// SecretName is the Secret the token is written to; <name>-token when empty.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// SecretRef brings an existing token (key "token" of that Secret, a
	// unireg_ token) instead of generating one. The Secret must opt in: its
	// annotation unireg.dev/registry-token names this RegistryToken.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`
}

// SecretRefAnnotation on a Secret names the one RegistryToken of its
// namespace that may bring the Secret's token with spec.secretRef. Without
// it the operator does not use the Secret: creating a RegistryToken must not
// be a way to read the namespace's Secrets.
const SecretRefAnnotation = "unireg.dev/registry-token"

// RegistryTokenStatus is what the operator observed.
type RegistryTokenStatus struct {
	// SecretName holds the credential.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// ExpiresAt is when the token stops working, if ever.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// TokenID is a short, non-secret fingerprint of the token.
	// +optional
	TokenID string `json:"tokenID,omitempty"`
	// Conditions: Ready is false with a reason when the registry or a scope
	// is missing, the token expired, spec.secretRef is not allowed or holds
	// no valid token, spec.secretName is a Secret the operator did not
	// create for this token, or an earlier token has the same token.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// RegistryToken hands out access to a Registry: it becomes a Secret with a
// working credential (docker config, npmrc, raw token).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=regtoken
// +kubebuilder:printcolumn:name="Registry",type=string,JSONPath=`.spec.registryRef.name`
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.spec.user`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RegistryToken struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RegistryTokenSpec   `json:"spec,omitempty"`
	Status RegistryTokenStatus `json:"status,omitempty"`
}

// RegistryTokenList is a list of RegistryTokens.
// +kubebuilder:object:root=true
type RegistryTokenList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RegistryToken `json:"items"`
}

func init() { SchemeBuilder.Register(&RegistryToken{}, &RegistryTokenList{}) }
