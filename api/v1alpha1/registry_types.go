package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RegistrySpec is the wanted registry. Every field has a default, so an
// empty spec is a working private registry on a 10Gi volume.
// +kubebuilder:validation:XValidation:rule="!has(self.replicas) || self.replicas <= 1 || (has(self.storage) && has(self.storage.s3))",message="replicas > 1 needs s3 storage: filesystem and emptyDir storage are per pod"
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

	// GC configures the garbage collector the server runs (docs/gc.md);
	// unset keeps the server's defaults (every hour, a grace of one hour).
	// +optional
	GC *GCSpec `json:"gc,omitempty"`

	// Retention are the rules by which the collector deletes tags and
	// untagged manifests (the server's --retention). A tag is kept when
	// any rule of any matching entry keeps it; repositories no entry
	// matches keep everything.
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Retention []RetentionRule `json:"retention,omitempty"`

	// Upstreams are the registries and the npm registry the server caches
	// (its pull-through cache, docs/cache.md): an OCI upstream's content is
	// served under its name (docker.io/library/nginx), npm packages not held
	// here come from the npm upstream. Changing them rolls the Deployment.
	// +optional
	Upstreams *UpstreamsSpec `json:"upstreams,omitempty"`

	// NodeMirror makes every node's containerd pull the OCI upstreams'
	// hosts (docker.io, ...) through this Registry, by a DaemonSet that
	// writes hosts.toml files (docs/operator.md "Node mirror"). The
	// operator allows it only for the namespaces its
	// --node-mirror-namespaces names: a node mirror decides what every
	// pod of the cluster runs.
	// +optional
	NodeMirror *NodeMirrorSpec `json:"nodeMirror,omitempty"`

	// TLS makes the server serve HTTPS with a certificate from a Secret.
	// +optional
	TLS *TLSSpec `json:"tls,omitempty"`

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

	// Resources of the registry container. Unset requests are 100m CPU
	// and 128Mi memory, so the scheduler counts the registry.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// PodTemplate overrides what users usually need to set on the pods.
	// +optional
	PodTemplate PodTemplateOverrides `json:"podTemplate,omitempty"`

	// TokenPolicy says which namespaces may hold RegistryTokens for this
	// Registry and which scopes tokens may have. Unset: only tokens of the
	// Registry's own namespace, with any scope (as before the policy).
	// +optional
	TokenPolicy *TokenPolicy `json:"tokenPolicy,omitempty"`
}

// TokenPolicy lets teams in other namespaces mint their own tokens for a
// shared Registry, each limited to its own names.
// +kubebuilder:validation:XValidation:rule="!has(self.namespaceSelector) || (has(self.scopes) && size(self.scopes) > 0)",message="a namespaceSelector needs scopes: tokens of other namespaces get only what the scope templates allow"
type TokenPolicy struct {
	// NamespaceSelector picks the namespaces, besides the Registry's own,
	// whose RegistryTokens may name this Registry in spec.registryRef (with
	// its namespace). Unset: none. An empty selector ({}) admits every
	// namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Scopes are the scopes tokens may have, as templates in which
	// {{.Namespace}} is the token's namespace, e.g.
	// "oci:repository:{{.Namespace}}/*:push" or
	// "npm:package:@{{.Namespace}}/*:write". Every scope of a token (its
	// own and its RegistryScopes') must be covered by one of them, or the
	// token is not Ready (reason ScopeNotAllowed) and is not projected.
	// Unset: tokens of the Registry's own namespace may have any scope.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^(\*|(oci|\*):(repository|\*):[^:\s\x00]+:(pull|push|delete|\*)|(npm|\*):(package|\*):[^:\s\x00]+:(read|write|delete|\*))$`
	// +optional
	Scopes []string `json:"scopes,omitempty"`
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
type EmptyDirStorage struct {
	// SizeLimit of the volume; the kubelet evicts the pod beyond it.
	// +kubebuilder:default="10Gi"
	// +optional
	SizeLimit *resource.Quantity `json:"sizeLimit,omitempty"`
}

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
	// ImagePullSecrets for the registry image, in the Registry's namespace.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	// Affinity of the pods.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// TopologySpreadConstraints of the pods, e.g. across zones; their
	// labelSelector usually matches app.kubernetes.io/instance=<name>.
	// +kubebuilder:validation:MaxItems=8
	// +optional
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
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
	// PullHosts are the hosts images of this registry are pulled by, for
	// the pull secrets of its tokens: the host of its URL (spec.publicURL,
	// else the Service's DNS name and port) and, without spec.publicURL,
	// the Service's ClusterIP and port once it has one. Nodes resolve image
	// hosts with their own resolver, not cluster DNS, so a kubelet can pull
	// an image named by the ClusterIP but not by the Service's DNS name.
	// +optional
	PullHosts []string `json:"pullHosts,omitempty"`
	// ReadyReplicas of the Deployment.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// Tokens is how many tokens are projected into the auth store.
	// +optional
	Tokens int32 `json:"tokens,omitempty"`
	// NodeMirror counts the nodes of the node mirror: how many should run
	// its agent and how many have the current configuration.
	// +optional
	NodeMirror *NodeMirrorStatus `json:"nodeMirror,omitempty"`
	// JWTKeyRotation is the value of the unireg.dev/rotate-jwt-key
	// annotation the current JWT signing key was made for.
	// +optional
	JWTKeyRotation string `json:"jwtKeyRotation,omitempty"`
}

// RotateJWTKeyAnnotation on a Registry rotates its JWT signing key when
// its value changes: a new key signs from then on, and the previous one
// still verifies until the JWTs it signed have expired.
const RotateJWTKeyAnnotation = "unireg.dev/rotate-jwt-key"

// Registry is a unireg registry (OCI and npm) run by the operator.
// Its storage kind is fixed at creation: a Registry without spec or
// without storage is on a volume (filesystem), so giving it s3 or emptyDir
// storage later is refused like any other change of kind.
// +kubebuilder:object:root=true
// +kubebuilder:validation:XValidation:rule="(has(self.spec) && has(self.spec.storage) && has(self.spec.storage.s3)) == (has(oldSelf.spec) && has(oldSelf.spec.storage) && has(oldSelf.spec.storage.s3)) && (has(self.spec) && has(self.spec.storage) && has(self.spec.storage.emptyDir)) == (has(oldSelf.spec) && has(oldSelf.spec.storage) && has(oldSelf.spec.storage.emptyDir))",message="the storage kind (filesystem, emptyDir, s3) cannot change in place: the content would be left behind; make a new Registry"
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

// GCSpec configures the garbage collector.
type GCSpec struct {
	// Interval is how often a collection runs; "0s" never (default 1h).
	// A Go duration ("30m", "24h"): no day unit.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="interval must be a duration of 0s or more, in h, m or s (no d)"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Grace protects what was uploaded, linked or mounted within it,
	// referenced or not (default 1h). Must be positive.
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="grace must be a positive duration, in h, m or s (no d)"
	// +optional
	Grace *metav1.Duration `json:"grace,omitempty"`
}

// RetentionRule is one --retention value: which tags and untagged
// manifests the collector keeps in the repositories matching Repositories.
// +kubebuilder:validation:XValidation:rule="has(self.keepLast) || has(self.keepTags) || has(self.untaggedAfter)",message="a retention rule needs keepLast, keepTags or untaggedAfter"
type RetentionRule struct {
	// Repositories is a glob over repository names, as in scopes
	// ("ci/*", "*"): a repository name in which `*` stands for any run of
	// characters, `/` included. The pattern is the OCI name grammar with
	// `*` allowed wherever a letter is, which is what the server checks.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[a-z0-9*]+((\.|_|__|-+)[a-z0-9*]+)*(/[a-z0-9*]+((\.|_|__|-+)[a-z0-9*]+)*)*$`
	Repositories string `json:"repositories"`
	// KeepLast keeps the N most recently pushed tags.
	// +kubebuilder:validation:Minimum=1
	// +optional
	KeepLast *int32 `json:"keepLast,omitempty"`
	// KeepTags keeps every tag this regular expression (Go syntax) matches.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	KeepTags string `json:"keepTags,omitempty"`
	// UntaggedAfter deletes manifests no kept tag points at once they are
	// older than this, counted from their push. A positive Go duration
	// ("168h" for a week): no day unit.
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="untaggedAfter must be a positive duration, in h, m or s (no d: a week is 168h)"
	// +optional
	UntaggedAfter *metav1.Duration `json:"untaggedAfter,omitempty"`
}

// UpstreamsSpec are the pull-through cache's upstreams.
type UpstreamsSpec struct {
	// OCI registries, each served under its name.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	OCI []OCIUpstream `json:"oci,omitempty"`
	// NPM is the uplink npm registry.
	// +optional
	NPM *NPMUpstream `json:"npm,omitempty"`
}

// OCIUpstream is one --oci-upstream of the server.
type OCIUpstream struct {
	// Name is the namespace of the upstream's content in this registry and
	// the host nodes pull it by (docker.io, ghcr.io): one repository name
	// component, so no port.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`
	Name string `json:"name"`
	// URL of the upstream registry: http(s)://host[:port], no path
	// (https://registry-1.docker.io for Docker Hub).
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https?://[^/?#@\s]+/?$`
	URL string `json:"url"`
	// CredentialsSecretRef names a Secret of the Registry's namespace with
	// the keys username and password to log in to the upstream with. It is
	// mounted into the registry's pods only, and read at every login, so a
	// rotation applies without a restart.
	// +optional
	CredentialsSecretRef *corev1.LocalObjectReference `json:"credentialsSecretRef,omitempty"`
	// AnonymousPull grants oci:repository:<name>/*:pull to callers without
	// credentials. Containerd sends no credentials to a mirror, so a node
	// mirror (spec.nodeMirror) pulls only namespaces that allow it. Default:
	// true for an upstream without credentials, false with them (the
	// content of a private upstream stays private unless you say so).
	// +optional
	AnonymousPull *bool `json:"anonymousPull,omitempty"`
}

// NPMUpstream is the server's --npm-upstream and its settings.
type NPMUpstream struct {
	// URL of the uplink, e.g. https://registry.npmjs.org/.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https?://[^?#@\s]+$`
	URL string `json:"url"`
	// CredentialsSecretRef names a Secret of the Registry's namespace with
	// the key token, sent to the uplink as a bearer token.
	// +optional
	CredentialsSecretRef *corev1.LocalObjectReference `json:"credentialsSecretRef,omitempty"`
	// LocalScopes are never looked up at the uplink (--npm-local-scope):
	// your own scopes, so nobody can shadow them upstream.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Pattern=`^@[a-z0-9-~][a-z0-9-._~]*$`
	// +kubebuilder:validation:items:MaxLength=214
	// +optional
	LocalScopes []string `json:"localScopes,omitempty"`
	// MaxAge is how long a cached upstream document is served without
	// asking the uplink (default 2m). A Go duration.
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxAge must be a positive duration, in h, m or s"
	// +optional
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`
}

// AnonymousPullOf is whether u grants anonymous pulls: as set, else true
// without credentials and false with them.
func (u OCIUpstream) AnonymousPullOf() bool {
	if u.AnonymousPull != nil {
		return *u.AnonymousPull
	}
	return u.CredentialsSecretRef == nil
}

// NodeMirrorSpec configures the node mirror.
type NodeMirrorSpec struct {
	// Enabled runs the node mirror; turning it off removes exactly the
	// files it wrote, on every node.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// HostsDir is containerd's config_path on the nodes (the default of
	// containerd 2). The operator's --node-mirror-hosts-dirs lists the
	// directories a Registry may name.
	// +kubebuilder:default="/etc/containerd/certs.d"
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^(/[A-Za-z0-9._-]+)+$`
	// +kubebuilder:validation:XValidation:rule="!self.split('/').exists(p, p == '..' || p == '.')",message="hostsDir must be an absolute path without . or .. components"
	// +optional
	HostsDir string `json:"hostsDir,omitempty"`
}

// TLSSpec is the certificate the server serves.
type TLSSpec struct {
	// SecretName is a kubernetes.io/tls Secret of the Registry's namespace
	// (tls.crt, tls.key; ca.crt, when present, is what node mirrors and
	// clients trust). Rotations apply without a restart. Nodes reach the
	// Registry by its ClusterIP, so the certificate must name it (status
	// warns when it does not).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
	// IssuerRef, where cert-manager is installed, has the operator create a
	// cert-manager Certificate <name>-tls that writes SecretName, for the
	// Service's DNS names and ClusterIP (and no other name: the operator
	// asks the issuer for nothing the Registry's author could choose).
	// Without cert-manager, TLSReady says so and nothing else fails. A
	// Secret of that name that the Certificate did not issue is never
	// overwritten.
	// +optional
	IssuerRef *CertificateIssuerRef `json:"issuerRef,omitempty"`
}

// CertificateIssuerRef names a cert-manager issuer.
type CertificateIssuerRef struct {
	// Name of the Issuer (in the Registry's namespace) or ClusterIssuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Kind is Issuer or ClusterIssuer.
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	// +kubebuilder:default=Issuer
	// +optional
	Kind string `json:"kind,omitempty"`
	// Group of the issuer's API (an external issuer's group, for one).
	// +kubebuilder:default=cert-manager.io
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
}

// NodeMirrorStatus counts the nodes of a node mirror.
type NodeMirrorStatus struct {
	// Desired is how many nodes run the agent.
	Desired int32 `json:"desired"`
	// Ready is how many of them have the current configuration written.
	Ready int32 `json:"ready"`
}
