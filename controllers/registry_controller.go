package controllers

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// RegistryReconciler turns a Registry into a running registry: its JWT key
// Secret, ServiceAccount, data volume, Service and Deployment, and the
// status that describes them (url, pullHosts, Ready, Available,
// Progressing, Degraded). The auth store its pods load is the auth-store
// controller's (AuthStoreReconciler); the pods start once it is written.
type RegistryReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	// DefaultImage runs Registries that do not name one.
	DefaultImage string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// APIReader reads from the API server: what Ready is before a failure
	// is reported (lastReady). Nil reads through Client.
	APIReader client.Reader
	// CertificateRetry is how often a Registry whose spec.tls.issuerRef
	// certificate is not ready is looked at again: cert-manager issuing,
	// or being installed, wakes nothing here. Zero means 30 s.
	CertificateRetry time.Duration
}

// +kubebuilder:rbac:groups=unireg.dev,resources=registries,verbs=get;list;watch
// +kubebuilder:rbac:groups=unireg.dev,resources=registries/status,verbs=patch
// +kubebuilder:rbac:groups=unireg.dev,resources=registries/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch

// Reconcile brings one Registry's children to what its spec says.
func (r *RegistryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	reg := &uniregv1.Registry{}
	if err := r.Get(ctx, req.NamespacedName, reg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := reg.Status.DeepCopy()
	result, err := r.reconcile(ctx, reg)
	var conflict *childConflict
	switch {
	case errors.Is(err, errAuthStoreNotWritten):
		// Not a failure: the auth-store controller writes it in a moment,
		// and its creation wakes this Registry. The status does not
		// describe this generation yet.
		setCondition(reg, uniregv1.ConditionReady, metav1.ConditionFalse, uniregv1.ReasonWaitingForAuthStore,
			"waiting for the auth-store controller to write Secret "+authSecretName(reg))
		err = nil
	case errors.As(err, &conflict):
		r.lastReady(ctx, reg)
		r.setConflict(reg, conflict)
		// Nothing but its deletion ends a conflict, and an object not the
		// Registry's wakes no reconcile: look again in a while.
		result, err = ctrl.Result{RequeueAfter: conflictRetry}, nil
	case err != nil:
		r.lastReady(ctx, reg)
		r.setNotReady(reg, uniregv1.ReasonReconcileError, err.Error())
	default:
		reg.Status.ObservedGeneration = reg.Generation
	}
	if !equality.Semantic.DeepEqual(before, &reg.Status) {
		if werr := r.writeRegistryStatus(ctx, reg); werr != nil && err == nil {
			err = werr
		}
	}
	return result, err
}

// lastReady sets reg's Ready condition to the one on the API server. The
// cache may lag a status written a moment ago (by this controller or, in
// between, the auth-store controller), and a failure already reported
// would then look new and be a second event.
func (r *RegistryReconciler) lastReady(ctx context.Context, reg *uniregv1.Registry) {
	if r.APIReader == nil {
		return
	}
	fresh := &uniregv1.Registry{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(reg), fresh); err != nil || fresh.UID != reg.UID {
		return
	}
	if c := meta.FindStatusCondition(fresh.Status.Conditions, uniregv1.ConditionReady); c != nil {
		meta.SetStatusCondition(&reg.Status.Conditions, *c)
	}
}

func (r *RegistryReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *RegistryReconciler) reconcile(ctx context.Context, reg *uniregv1.Registry) (ctrl.Result, error) {
	nextKeyStep, err := r.reconcileJWTKey(ctx, reg)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("jwt key: %w", err)
	}
	var result ctrl.Result
	if !nextKeyStep.IsZero() {
		result.RequeueAfter = nextKeyStep.Sub(r.now()) + time.Second
	}
	if err := r.reconcileNPMSigningKey(ctx, reg); err != nil {
		return ctrl.Result{}, fmt.Errorf("npm signing key: %w", err)
	}
	if err := r.reconcileAccess(ctx, reg); err != nil {
		return ctrl.Result{}, fmt.Errorf("service account: %w", err)
	}
	if err := r.reconcileClaim(ctx, reg); err != nil {
		return ctrl.Result{}, fmt.Errorf("data volume: %w", err)
	}
	svc, err := r.reconcileService(ctx, reg)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("service: %w", err)
	}
	reg.Status.PullHosts = pullHosts(reg, svc)
	if reason, msg, err := r.reconcileCertificate(ctx, reg, svc); err != nil {
		return ctrl.Result{}, fmt.Errorf("certificate: %w", err)
	} else if reason != "" {
		r.setTLSReady(reg, metav1.ConditionFalse, reason, msg)
		if reason == uniregv1.ReasonSecretNotIssued {
			// Someone else's Secret is never served: no Deployment
			// mounts it until it is gone or spec.tls names another.
			return ctrl.Result{}, &childConflict{kind: "Secret", name: reg.Spec.TLS.SecretName}
		}
	} else {
		r.checkCertificate(ctx, reg, svc)
	}
	if t := reg.Spec.TLS; t != nil && t.IssuerRef != nil && !meta.IsStatusConditionTrue(reg.Status.Conditions, uniregv1.ConditionTLSReady) {
		// cert-manager issues (or gets installed) without an event here.
		retry := nonZero(r.CertificateRetry, certificateRetry)
		result.RequeueAfter = min(nonZero(result.RequeueAfter, retry), retry)
	}
	if written, err := r.authStoreWritten(ctx, reg); err != nil {
		return ctrl.Result{}, fmt.Errorf("auth store: %w", err)
	} else if !written {
		return result, errAuthStoreNotWritten
	}
	dep, waiting, err := r.reconcileDeployment(ctx, reg)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("deployment: %w", err)
	}
	if err := r.reconcileDisruptionBudget(ctx, reg); err != nil {
		return ctrl.Result{}, fmt.Errorf("pod disruption budget: %w", err)
	}
	r.setStatus(reg, dep, waiting)
	if waiting != "" && (result.RequeueAfter <= 0 || result.RequeueAfter > upgradeSlotRetry) {
		result.RequeueAfter = upgradeSlotRetry // the slot frees without an event here
	}
	return result, nil
}

// errAuthStoreNotWritten: the pods wait for the auth-store Secret.
var errAuthStoreNotWritten = errors.New("the auth store is not written yet")

// authStoreWritten tells whether the pods may start: the auth-store Secret
// is there and the Registry's, or the auth-store controller refused to
// write the store it built (TokensProjected ProjectionRefused: the pods
// start without one, and Ready says why). A Secret of the name the Registry
// does not control is a conflict: no pod ever loads a store planted by
// someone else.
func (r *RegistryReconciler) authStoreWritten(ctx context.Context, reg *uniregv1.Registry) (bool, error) {
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: authSecretName(reg)}, s)
	if apierrors.IsNotFound(err) {
		c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionTokensProjected)
		return c != nil && c.Reason == uniregv1.ReasonProjectionRefused, nil
	}
	if err != nil {
		return false, err
	}
	return true, mustControl(reg, s, "Secret")
}

// reconcileAccess gives the registry's pods a ServiceAccount that may get,
// list and watch the Registry's auth-store Secret, and nothing else.
func (r *RegistryReconciler) reconcileAccess(ctx context.Context, reg *uniregv1.Registry) error {
	name := serviceAccountName(reg)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: name}}
	if _, err := r.apply(ctx, reg, sa); err != nil {
		return err
	}
	rules := []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"secrets"},
		ResourceNames: []string{authSecretName(reg)}, Verbs: []string{"get", "list", "watch"},
	}}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: name}, Rules: rules}
	if _, err := r.apply(ctx, reg, role); err != nil {
		return err
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: reg.Namespace}},
	}
	_, err := r.apply(ctx, reg, binding)
	return err
}

// reconcileClaim creates the data volume once (its size is then the user's
// to grow) and keeps its owner reference as the reclaim policy says: none
// under Retain, so the claim outlives the Registry, the Registry's under
// Delete. A claim is this Registry's when it controls it or, retained, when
// it carries the operator's mark for a Registry of this name and no owner;
// any other claim of the name is a conflict, never mounted.
func (r *RegistryReconciler) reconcileClaim(ctx context.Context, reg *uniregv1.Registry) error {
	st := reg.Spec.Storage
	if st.EmptyDir != nil || st.S3 != nil {
		return nil
	}
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: dataClaimName(reg)}, pvc)
	if apierrors.IsNotFound(err) {
		return r.createClaim(ctx, reg)
	}
	if err != nil {
		return err
	}
	owner := metav1.GetControllerOf(pvc)
	retained := owner == nil && pvc.Annotations[annotationDataOf] == reg.Name
	if !retained && !metav1.IsControlledBy(pvc, reg) {
		return &childConflict{kind: "PersistentVolumeClaim", name: pvc.Name}
	}
	want := pvc.DeepCopy()
	if want.Annotations == nil {
		want.Annotations = map[string]string{}
	}
	want.Annotations[annotationDataOf] = reg.Name
	want.OwnerReferences = slices.DeleteFunc(want.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == reg.UID })
	if reclaimPolicy(reg) == uniregv1.ReclaimDelete {
		if err := controllerutil.SetControllerReference(reg, want, r.Scheme); err != nil {
			return err
		}
	}
	if equality.Semantic.DeepEqual(want.ObjectMeta, pvc.ObjectMeta) {
		return nil
	}
	return r.Update(ctx, want, client.FieldOwner(fieldOwner))
}

func (r *RegistryReconciler) createClaim(ctx context.Context, reg *uniregv1.Registry) error {
	st := reg.Spec.Storage
	size := resource.MustParse("10Gi")
	var class *string
	if st.Filesystem != nil {
		if !st.Filesystem.Size.IsZero() {
			size = st.Filesystem.Size
		}
		class = st.Filesystem.StorageClassName
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: reg.Namespace, Name: dataClaimName(reg), Labels: commonLabels(reg),
			Annotations: map[string]string{annotationDataOf: reg.Name},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	if reclaimPolicy(reg) == uniregv1.ReclaimDelete {
		if err := controllerutil.SetControllerReference(reg, pvc, r.Scheme); err != nil {
			return err
		}
	}
	return createOnly(ctx, r.Client, pvc, "PersistentVolumeClaim")
}

// reclaimPolicy is the Registry's data reclaim policy, Retain when unset.
func reclaimPolicy(reg *uniregv1.Registry) uniregv1.DataReclaimPolicy {
	if fs := reg.Spec.Storage.Filesystem; fs != nil && fs.ReclaimPolicy != "" {
		return fs.ReclaimPolicy
	}
	return uniregv1.ReclaimRetain
}

// reconcileService applies the Service and returns it as last read: its
// ClusterIP is a pull host (pullHosts).
func (r *RegistryReconciler) reconcileService(ctx context.Context, reg *uniregv1.Registry) (*corev1.Service, error) {
	typ := reg.Spec.Service.Type
	if typ == "" {
		typ = corev1.ServiceTypeClusterIP
	}
	want := corev1.ServiceSpec{
		Type:     typ,
		Selector: selectorLabels(reg),
		Ports: []corev1.ServicePort{{
			Name: "http", Port: servicePort(reg), TargetPort: intstr.FromInt32(containerPort), Protocol: corev1.ProtocolTCP,
		}},
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: reg.Name}, Spec: want}
	live, applied, err := r.applyObject(ctx, reg, svc)
	if err != nil {
		return nil, err
	}
	out := live.(*corev1.Service)
	if out.Spec.ClusterIP == "" { // just created: the answer has it
		out.Spec.ClusterIP, _, _ = unstructured.NestedString(applied.Object, "spec", "clusterIP")
	}
	return out, nil
}

// reconcileDeployment applies the Deployment. While the Registry waits for
// its turn to take a new default image (upgradeSlot), its pods keep the
// image they run and waiting says why.
func (r *RegistryReconciler) reconcileDeployment(ctx context.Context, reg *uniregv1.Registry) (dep *appsv1.Deployment, waiting string, err error) {
	if err := checkRetention(reg); err != nil {
		return nil, "", err // the running pods stay as they are
	}
	replicas := wantedReplicas(reg)
	keep, waiting, err := r.upgradeSlot(ctx, reg)
	if err != nil {
		return nil, "", err
	}
	template := r.podTemplate(reg)
	if keep != "" {
		template.Spec.Containers[0].Image = keep
	}
	// The rolling parameters are the API server's defaults, applied so the
	// operator owns them: server-side apply then removes them when the
	// strategy becomes Recreate, which refuses them (defaulted fields have
	// no owner and would stay).
	quarter := intstr.FromString("25%")
	strategy := appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &quarter, MaxSurge: &quarter},
	}
	if reg.Spec.Storage.S3 == nil {
		// A volume cannot be shared by a new pod and an old one.
		strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	}
	dep = &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: reg.Name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selectorLabels(reg)},
			Template: template,
			Strategy: strategy,
		},
	}
	if reg.Spec.Image == "" {
		dep.Annotations = map[string]string{annotationDefaultImage: template.Spec.Containers[0].Image}
	}
	live, err := r.apply(ctx, reg, dep)
	if err != nil {
		return nil, "", err
	}
	return live.(*appsv1.Deployment), waiting, nil
}

// checkCertificate sets TLSReady: whether spec.tls's Secret holds a
// certificate that names the Service's ClusterIP, which nodes pull by.
// The server serves whatever the Secret holds; this only warns.
func (r *RegistryReconciler) checkCertificate(ctx context.Context, reg *uniregv1.Registry, svc *corev1.Service) {
	t := reg.Spec.TLS
	if t == nil {
		meta.RemoveStatusCondition(&reg.Status.Conditions, uniregv1.ConditionTLSReady)
		return
	}
	set := func(status metav1.ConditionStatus, reason, msg string) { r.setTLSReady(reg, status, reason, msg) }
	sec := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: t.SecretName}, sec); err != nil {
		set(metav1.ConditionFalse, uniregv1.ReasonSecretNotFound, fmt.Sprintf("spec.tls.secretName %s: %v", t.SecretName, err))
		return
	}
	block, _ := pem.Decode(sec.Data[corev1.TLSCertKey])
	var cert *x509.Certificate
	if block != nil {
		cert, _ = x509.ParseCertificate(block.Bytes)
	}
	if cert == nil {
		set(metav1.ConditionFalse, uniregv1.ReasonInvalidCertificate, fmt.Sprintf("Secret %s has no PEM certificate in %s", t.SecretName, corev1.TLSCertKey))
		return
	}
	ip := net.ParseIP(svc.Spec.ClusterIP)
	if ip != nil && !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
		set(metav1.ConditionFalse, uniregv1.ReasonCertificateMissingClusterIP,
			fmt.Sprintf("the certificate in Secret %s does not name the Service's ClusterIP %s, which nodes pull images by: add it as an IP SAN", t.SecretName, ip))
		return
	}
	set(metav1.ConditionTrue, uniregv1.ReasonCertificateNamesClusterIP, "the certificate names the Service's ClusterIP "+svc.Spec.ClusterIP)
}

// setTLSReady sets TLSReady, with a warning event once per distinct
// problem.
func (r *RegistryReconciler) setTLSReady(reg *uniregv1.Registry, status metav1.ConditionStatus, reason, msg string) {
	before := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionTLSReady)
	changed := before == nil || before.Reason != reason || before.Message != msg
	setCondition(reg, uniregv1.ConditionTLSReady, status, reason, msg)
	if status == metav1.ConditionFalse && changed {
		r.Recorder.Event(reg, corev1.EventTypeWarning, reason, msg)
	}
}

// certificateRetry is the default of RegistryReconciler.CertificateRetry.
const certificateRetry = 30 * time.Second

func nonZero(d, otherwise time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return otherwise
}

// reconcileDisruptionBudget gives a Registry of more than one replica a
// PodDisruptionBudget <name> of maxUnavailable 1, so a node drain takes
// its pods one at a time. Scaled back to one replica, a budget made before
// stays: maxUnavailable 1 never blocks the eviction of a single pod, and
// it goes with the Registry.
func (r *RegistryReconciler) reconcileDisruptionBudget(ctx context.Context, reg *uniregv1.Registry) error {
	if wantedReplicas(reg) <= 1 {
		return nil
	}
	one := intstr.FromInt32(1)
	_, err := r.apply(ctx, reg, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: reg.Name},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &one,
			Selector:       &metav1.LabelSelector{MatchLabels: selectorLabels(reg)},
		},
	})
	return err
}

// SetupWithManager registers the controller: Registries and their
// children (the auth-store Secret among them, which the pods wait for).
func (r *RegistryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&uniregv1.Registry{}).
		Owns(&appsv1.Deployment{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.Secret{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Named("registry").
		Complete(r)
}
