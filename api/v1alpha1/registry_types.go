package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RegistrySpec is the wanted registry. Every field has a default, so an
// empty spec is a working private registry on a 10Gi volume.
type RegistrySpec struct {
	// Image runs the registry; the operator's --registry-image when empty.
	// +optional
	Image string `json:"image,omitempty"`

	// Replicas of the registry. More than one needs storage they can share
	// (s3); filesystem and emptyDir storage are per pod.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Storage holds the content: a volume (filesystem, the default), an
	// emptyDir (tests), or an S3 bucket.
	// +optional
	Storage RegistryStorage `json:"storage,omitempty"`

	// OCI configures the container side (/v2/).
	// +optional
	OCI OCISpec `json:"oci,omitempty"`

	// NPM configures the npm side.
	// +optional
	NPM NPMSpec `json:"npm,omitempty"`

	// AnonymousScopes are granted to requests without credentials, e.g.
	// "oci:repository:*:pull" for public pulls.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^(\*|(oci|\*):(repository|\*):[^:\s\x00]+:(pull|push|delete|\*)|(npm|\*):(package|\*):[^:\s\x00]+:(read|write|delete|\*))$`
	// +optional
	AnonymousScopes []string `json:"anonymousScopes,omitempty"`

	// PublicURL is the external base URL clients use (https://registry.example.com);
	// the in-cluster Service URL when empty.
	// +kubebuilder:validation:Pattern=`^https?://[^/\s]+/?$`
	// +optional
	PublicURL string `json:"publicURL,omitempty"`

	// TrustedProxies are the proxies, as CIDRs or addresses, whose
	// X-Forwarded-For, X-Real-IP, X-Forwarded-Host and X-Forwarded-Proto
	// the registry believes (its --trusted-proxies); from any other peer
	// those headers are ignored. Unset: loopback and the private ranges,
	// where in-cluster ingress controllers connect from. An empty list
	// trusts no peer: set it when clients reach the Service without a
	// proxy, or list only the ingress controller's pod range.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(p, isCIDR(p) || isIP(p))",message="each entry must be a CIDR (10.0.0.0/8) or an IP address"
	// +optional
	TrustedProxies *[]string `json:"trustedProxies,omitempty"`

	// Service exposes the registry.
	// +optional
	Service ServiceSpec `json:"service,omitempty"`

	// Resources of the registry container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// PodTemplate overrides what users usually need to set on the pods.
	// +optional
	PodTemplate PodTemplateOverrides `json:"podTemplate,omitempty"`
}

// RegistryStorage chooses where content lives: at most one of the fields.
// +kubebuilder:validation:XValidation:rule="(has(self.filesystem) ? 1 : 0) + (has(self.emptyDir) ? 1 : 0) + (has(self.s3) ? 1 : 0) <= 1",message="set at most one of filesystem, emptyDir and s3"
type RegistryStorage struct {
	// Filesystem keeps content on a PersistentVolumeClaim (the default, 10Gi).
	// +optional
	Filesystem *FilesystemStorage `json:"filesystem,omitempty"`
	// EmptyDir keeps content in the pod: lost with it. For tests.
	// +optional
	EmptyDir *EmptyDirStorage `json:"emptyDir,omitempty"`
	// S3 keeps content in a bucket, which replicas can share.
	// +optional
	S3 *S3Storage `json:"s3,omitempty"`
}

// FilesystemStorage is a PersistentVolumeClaim.
type FilesystemStorage struct {
	// Size of the claim.
	// +kubebuilder:default="10Gi"
	// +optional
	Size resource.Quantity `json:"size,omitempty"`
	// StorageClassName of the claim; the cluster's default when empty.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
	// ReclaimPolicy says what deleting the Registry does to the claim.
	// Retain (when unset): the claim has no owner and outlives the
	// Registry; a Registry of the same name in the same namespace mounts it
	// again. Delete: the claim is owned by the Registry and the garbage
	// collector deletes it, and the content, with it. Changing it applies
	// to the existing claim.
	// +kubebuilder:validation:Enum=Retain;Delete
	// +optional
	ReclaimPolicy DataReclaimPolicy `json:"reclaimPolicy,omitempty"`
}

// DataReclaimPolicy is what deleting a Registry does to its data volume.
type DataReclaimPolicy string

// The reclaim policies of a Registry's data volume.
const (
	ReclaimRetain DataReclaimPolicy = "Retain"
	ReclaimDelete DataReclaimPolicy = "Delete"
)

// EmptyDirStorage is an emptyDir volume.
type EmptyDirStorage struct{}

// S3Storage is an S3-compatible bucket.
type S3Storage struct {
	// Endpoint is the S3 API URL, http:// or https://.
	// +kubebuilder:validation:Pattern=`^https?://[^/\s]+/?$`
	Endpoint string `json:"endpoint"`
	// Bucket holds the content; created when missing if the credentials may.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	Bucket string `json:"bucket"`
	// Region of the bucket.
	// +kubebuilder:default="us-east-1"
	// +optional
	Region string `json:"region,omitempty"`
	// Prefix of the keys, so several registries can share a bucket.
	// +optional
	Prefix string `json:"prefix,omitempty"`
	// CredentialsSecretRef names a Secret in the Registry's namespace with
	// keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
	CredentialsSecretRef corev1.LocalObjectReference `json:"credentialsSecretRef"`
}

// OCISpec configures the OCI Distribution API.
type OCISpec struct {
	// Enabled serves /v2/.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
}

// NPMSpec configures the npm registry.
type NPMSpec struct {
	// Enabled serves the npm registry under PathPrefix.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// PathPrefix of the npm registry.
	// +kubebuilder:default="/npm"
	// +kubebuilder:validation:Pattern=`^/[a-zA-Z0-9._~-]+(/[a-zA-Z0-9._~-]+)*$`
	// +optional
	PathPrefix string `json:"pathPrefix,omitempty"`
}

// ServiceSpec configures the Service in front of the registry.
type ServiceSpec struct {
	// Type of the Service.
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	// +optional
	Type corev1.ServiceType `json:"type,omitempty"`
	// Port of the Service.
	// +kubebuilder:default=5000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`
}

// PodTemplateOverrides are merged into the registry's pods.
type PodTemplateOverrides struct {
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// Annotations of the pods (not of the Deployment).
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RegistryStatus is what the operator observed.
type RegistryStatus struct {
	// Conditions: Ready summarises; Available, Progressing and Degraded
	// describe the Deployment.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// URL is the in-cluster URL of the registry.
	// +optional
	URL string `json:"url,omitempty"`
	// ReadyReplicas of the Deployment.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Tokens is how many tokens are projected into the auth store.
	// +optional
	Tokens int32 `json:"tokens,omitempty"`
}

// Registry is a unireg registry (OCI and npm) run by the operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=reg
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Registry struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RegistrySpec   `json:"spec,omitempty"`
	Status RegistryStatus `json:"status,omitempty"`
}

// RegistryList is a list of Registries.
// +kubebuilder:object:root=true
type RegistryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Registry `json:"items"`
}

func init() { SchemeBuilder.Register(&Registry{}, &RegistryList{}) }
