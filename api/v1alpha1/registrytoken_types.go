package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RegistryTokenSpec is a credential for one Registry.
// +kubebuilder:validation:XValidation:rule="!(has(self.expiresAt) && has(self.ttl))",message="set expiresAt or ttl, not both"
// +kubebuilder:validation:XValidation:rule="has(self.scopes) || has(self.scopeRefs)",message="a token needs scopes or scopeRefs"
type RegistryTokenSpec struct {
	// RegistryRef names the Registry: in the token's namespace, or in
	// another one whose spec.tokenPolicy admits the token's namespace.
	RegistryRef RegistryReference `json:"registryRef"`
	// User is the name requests with this token act as; the object's name
	// when empty. A token for a Registry of another namespace acts as
	// <namespace>/<name> and must leave it empty, so tenants cannot act
	// as each other.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.contains('/')",message="spec.user cannot contain '/': <namespace>/<name> is the user of tokens from other namespaces"
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
	// +kubebuilder:validation:XValidation:rule="!format.dns1123Subdomain().validate(self).hasValue()",message="secretName must be a DNS subdomain name (lower case letters, digits, '-' and '.')"
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// SecretRef brings an existing token (key "token" of that Secret, a
	// unireg_ token) instead of generating one. The Secret must opt in: its
	// annotation unireg.dev/registry-token names this RegistryToken.
	// +optional
	SecretRef *corev1.LocalObjectReference `json:"secretRef,omitempty"`
	// Rotation replaces a generated token on a schedule or on demand (the
	// unireg.dev/rotate annotation), keeping the previous token valid for
	// an overlap so its users can pick up the new one. A token brought
	// with secretRef is rotated by whoever owns its source Secret.
	// +optional
	Rotation *TokenRotation `json:"rotation,omitempty"`
}

// RegistryReference names a Registry, in the token's namespace unless
// Namespace is set.
type RegistryReference struct {
	// Name of the Registry.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Namespace of the Registry; the token's when empty.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// TokenRotation is when a generated token is replaced.
type TokenRotation struct {
	// Every rotates the token when it is this old (e.g. 720h); unset:
	// only on demand.
	// +optional
	Every *metav1.Duration `json:"every,omitempty"`
	// Overlap is how long the previous token keeps working after a
	// rotation.
	// +kubebuilder:default="1h"
	// +optional
	Overlap *metav1.Duration `json:"overlap,omitempty"`
}

// RotateAnnotation on a RegistryToken rotates its generated token when
// the value changes (any value, e.g. a date): the Secret gets a new token
// and the previous one keeps working for spec.rotation.overlap (1h when
// spec.rotation is unset).
const RotateAnnotation = "unireg.dev/rotate"

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
	// IssuedAt is when the current token was generated or first seen.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`
	// Rotation is the value of the unireg.dev/rotate annotation last acted
	// on.
	// +optional
	Rotation string `json:"rotation,omitempty"`
	// Conditions: Ready is false with a reason when the registry or a scope
	// is missing, the Registry's tokenPolicy does not admit the token
	// (NamespaceNotAllowed, UserNotAllowed, ScopeNotAllowed), the token
	// expired, spec.secretRef is not allowed or holds no valid token,
	// spec.secretName is a Secret the operator did not create for this
	// token, or an earlier token has the same token.
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
