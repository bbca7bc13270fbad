package v1alpha1

// The conditions of the three kinds and the reasons they give, in one
// place: what a user's `kubectl wait` or alert matches on is part of the
// API. Each condition is written by one controller only (docs/operator.md).

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
	// written and the previous one stays in force). Written by the
	// auth-store controller; every other condition of a Registry by the
	// registry controller.
	ConditionTokensProjected = "TokensProjected"
)

// Reasons of a Registry's Ready condition.
const (
	// ReasonServing: replicas are ready and none are missing.
	ReasonServing = "Serving"
	// ReasonNotServing: no replica is ready, or some are missing.
	ReasonNotServing = "NotServing"
	// ReasonReconcileError (also of TokensProjected): the reconcile failed;
	// the message says where.
	ReasonReconcileError = "ReconcileError"
	// ReasonChildConflict: an object the Registry needs exists and is not
	// its own; the operator leaves it untouched.
	ReasonChildConflict = "ChildConflict"
	// ReasonWaitingForAuthStore: the pods wait for the auth-store
	// controller's first auth store.
	ReasonWaitingForAuthStore = "WaitingForAuthStore"
	// ReasonProjectionRefused (also of TokensProjected): the auth store
	// built does not parse, so it was not written; the pods serve with the
	// previous one, which no longer follows the tokens.
	ReasonProjectionRefused = "ProjectionRefused"
)

// Reasons of a Registry's Available condition.
const (
	ReasonReplicasReady  = "ReplicasReady"
	ReasonNoReplicaReady = "NoReplicaReady"
)

// Reasons of a Registry's Progressing condition.
const (
	ReasonRollingOut = "RollingOut"
	ReasonRolledOut  = "RolledOut"
	// ReasonWaitingForUpgradeSlot: the Registry keeps its image while
	// another Registry takes the operator's new default image first.
	ReasonWaitingForUpgradeSlot = "WaitingForUpgradeSlot"
)

// Reasons of a Registry's Degraded condition.
const (
	ReasonMissingReplicas = "MissingReplicas"
	ReasonAsExpected      = "AsExpected"
)

// Reasons of a Registry's TokensProjected condition (and
// ReasonProjectionRefused).
const (
	// ReasonProjected: every Ready token is in the auth store.
	ReasonProjected = "Projected"
	// ReasonTokensLeftOut: some tokens are not; the message names them and
	// says why.
	ReasonTokensLeftOut = "TokensLeftOut"
)

// ReasonJWTKeyRotation is the reason of the events of a Registry's JWT key
// rotation steps.
const ReasonJWTKeyRotation = "JWTKeyRotation"

// Reasons of a RegistryToken's Ready condition.
const (
	ReasonIssued           = "Issued"
	ReasonRegistryNotFound = "RegistryNotFound"
	ReasonScopeNotFound    = "ScopeNotFound"
	// ReasonSecretNotFound: the spec.secretRef Secret opts the token in but
	// has no key "token".
	ReasonSecretNotFound = "SecretNotFound"
	ReasonExpired        = "Expired"
	// ReasonSecretRefNotAllowed: the spec.secretRef Secret does not exist or
	// does not name this token in SecretRefAnnotation (one reason for both,
	// so a token cannot probe which Secrets exist).
	ReasonSecretRefNotAllowed = "SecretRefNotAllowed"
	// ReasonInvalidToken: the spec.secretRef Secret's token is not shaped
	// like a unireg token.
	ReasonInvalidToken = "InvalidToken"
	// ReasonSecretConflict: spec.secretName is a Secret the operator did not
	// create for this token; it is left untouched.
	ReasonSecretConflict = "SecretConflict"
	// ReasonDuplicateToken: an earlier token of the same Registry holds the
	// same token; the server's auth store cannot hold a hash twice, so only
	// the earlier one is projected.
	ReasonDuplicateToken = "DuplicateToken"
	// ReasonNamespaceNotAllowed: the token names a Registry of another
	// namespace that does not exist or whose tokenPolicy does not admit the
	// token's namespace. One reason and one message for both, so a tenant
	// cannot learn which Registries other namespaces hold.
	ReasonNamespaceNotAllowed = "NamespaceNotAllowed"
	// ReasonUserNotAllowed: a token for a Registry of another namespace
	// sets spec.user (it acts as <namespace>/<name>), or a token of the
	// Registry's namespace has a '/' in it.
	ReasonUserNotAllowed = "UserNotAllowed"
	// ReasonScopeNotAllowed: a scope of the token is not within any of the
	// tokenPolicy's scope templates.
	ReasonScopeNotAllowed = "ScopeNotAllowed"
)

// Reasons of a RegistryScope's Ready condition (ReasonInvalidScope is also
// a RegistryToken's: a scope of its own or of a RegistryScope it uses).
const (
	// ReasonValidScopes: the server's parser accepts every scope.
	ReasonValidScopes = "Valid"
	// ReasonInvalidScope: the server's parser refuses a scope (an object
	// stored under an older, looser CRD); tokens using it are not Ready
	// and not projected.
	ReasonInvalidScope = "InvalidScope"
)

// NodeMirrorReady says whether every node pulls the OCI upstreams through
// the Registry (spec.nodeMirror), with status.nodeMirror counting them.
const ConditionNodeMirrorReady = "NodeMirrorReady"

// Reasons of NodeMirrorReady.
const (
	ReasonNodesConfigured      = "NodesConfigured"
	ReasonConfiguringNodes     = "ConfiguringNodes"
	ReasonCleaningUp           = "CleaningUp"
	ReasonNodeMirrorNotAllowed = "NodeMirrorNotAllowed"
	ReasonWaitingForService    = "WaitingForService"
)

// TLSReady says whether spec.tls's certificate names the Service's
// ClusterIP, which nodes pull images by (the server serves it either way).
const ConditionTLSReady = "TLSReady"

// Reasons of TLSReady.
const (
	ReasonCertificateNamesClusterIP   = "CertificateNamesClusterIP"
	ReasonCertificateMissingClusterIP = "CertificateMissingClusterIP"
	ReasonInvalidCertificate          = "InvalidCertificate"
	// spec.tls.issuerRef without cert-manager's Certificate kind served.
	ReasonCertManagerNotInstalled = "CertManagerNotInstalled"
	// spec.tls.issuerRef, and spec.tls.secretName names a Secret that the
	// Registry's Certificate did not issue: it is left alone.
	ReasonSecretNotIssued = "SecretNotIssuedByCertificate"
)
