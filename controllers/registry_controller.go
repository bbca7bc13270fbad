package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/registry/authstore"
)

// RegistryReconciler turns a Registry into a running registry: its
// Deployment, Service, JWT key and auth-store Secrets and data volume, and
// projects the Registry's Ready tokens into the auth store.
type RegistryReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder record.EventRecorder
	// DefaultImage runs Registries that do not name one.
	DefaultImage string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// +kubebuilder:rbac:groups=unireg.dev,resources=registries,verbs=get;list;watch
// +kubebuilder:rbac:groups=unireg.dev,resources=registries/status,verbs=update
// +kubebuilder:rbac:groups=unireg.dev,resources=registries/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
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
	if errors.As(err, &conflict) {
		r.setConflict(reg, conflict)
		// Nothing but its deletion ends a conflict, and an object not the
		// Registry's wakes no reconcile: look again in a while.
		result, err = ctrl.Result{RequeueAfter: conflictRetry}, nil
	} else if err != nil {
		r.setNotReady(reg, uniregv1.ReasonReconcileError, err.Error())
	} else {
		reg.Status.ObservedGeneration = reg.Generation
	}
	if !equality.Semantic.DeepEqual(before, &reg.Status) {
		if uerr := r.Status().Update(ctx, reg); uerr != nil && err == nil {
			err = uerr
		}
	}
	return result, err
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
	next, err := r.reconcileAuthStore(ctx, reg)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("auth store: %w", err)
	}
	if !nextKeyStep.IsZero() && (next.IsZero() || nextKeyStep.Before(next)) {
		next = nextKeyStep
	}
	if err := r.reconcileAccess(ctx, reg); err != nil {
		return ctrl.Result{}, fmt.Errorf("service account: %w", err)
	}
	if err := r.reconcileClaim(ctx, reg); err != nil {
		return ctrl.Result{}, fmt.Errorf("data volume: %w", err)
	}
	if err := r.reconcileService(ctx, reg); err != nil {
		return ctrl.Result{}, fmt.Errorf("service: %w", err)
	}
	dep, waiting, err := r.reconcileDeployment(ctx, reg)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("deployment: %w", err)
	}
	r.setStatus(reg, dep, waiting)
	var result ctrl.Result
	if !next.IsZero() {
		result.RequeueAfter = next.Sub(r.now()) + time.Second
	}
	if waiting != "" && (result.RequeueAfter <= 0 || result.RequeueAfter > upgradeSlotRetry) {
		result.RequeueAfter = upgradeSlotRetry // the slot frees without an event here
	}
	return result, nil
}

// reconcileAuthStore projects every Ready, unexpired token of the Registry
// (hash, user, its scopes and its RegistryScopes' scopes, expiry) into the
// auth-store Secret, in the format of docs/auth-store.md. It returns the
// earliest expiry to come, so the token drops out on time.
//
// The pods refuse a store that does not parse as a whole and keep the
// previous one, so one bad entry would stop every revocation and new token.
// The store is therefore checked with the server's own parser before it is
// written: entries it would refuse are left out one by one (projection), and
// a store that still does not parse is not written. The TokensProjected
// condition and an event say which.
func (r *RegistryReconciler) reconcileAuthStore(ctx context.Context, reg *uniregv1.Registry) (time.Time, error) {
	file, leftOut, next, err := r.projection(ctx, reg)
	if err != nil {
		return time.Time{}, err
	}
	body, err := authstore.Marshal(file)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := authstore.Parse(body); err != nil {
		r.setTokensProjected(reg, uniregv1.ReasonProjectionRefused, "the auth store built does not parse, so it was not written and the pods keep the previous one: "+err.Error())
		return next, nil
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: reg.Namespace, Name: authSecretName(reg)}}
	if err := r.Get(ctx, client.ObjectKeyFromObject(s), s); err == nil {
		if err := mustControl(reg, s, "Secret"); err != nil {
			return time.Time{}, err
		}
	} else if !apierrors.IsNotFound(err) {
		return time.Time{}, err
	}
	op, err := controllerutil.CreateOrUpdate(ctx, r.Client, s, func() error {
		s.Labels = commonLabels(reg)
		s.Data = map[string][]byte{keyAuthStore: body}
		return controllerutil.SetControllerReference(reg, s, r.Scheme)
	})
	if apierrors.IsAlreadyExists(err) { // there, but not in the cache of what the operator made
		return time.Time{}, &childConflict{kind: "Secret", name: s.Name}
	}
	if err != nil {
		return time.Time{}, err
	}
	if op != controllerutil.OperationResultNone {
		log.FromContext(ctx).Info("auth store projected", "tokens", len(file.Tokens), "operation", op)
	}
	reg.Status.Tokens = int32(len(file.Tokens))
	if len(leftOut) > 0 {
		r.setTokensProjected(reg, uniregv1.ReasonTokensLeftOut, "left out of the auth store: "+summarise(leftOut, 10))
	} else {
		r.setTokensProjected(reg, uniregv1.ReasonProjected, "every Ready token is in the auth store")
	}
	return next, nil
}

// setTokensProjected sets the TokensProjected condition: True only for
// ReasonProjected, with a warning event when a failure is new.
func (r *RegistryReconciler) setTokensProjected(reg *uniregv1.Registry, reason, msg string) {
	if reason == uniregv1.ReasonProjected {
		setCondition(reg, uniregv1.ConditionTokensProjected, metav1.ConditionTrue, reason, msg)
		return
	}
	if was := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionTokensProjected); was == nil || was.Reason != reason || was.Message != msg {
		r.Recorder.Event(reg, corev1.EventTypeWarning, reason, msg)
	}
	setCondition(reg, uniregv1.ConditionTokensProjected, metav1.ConditionFalse, reason, msg)
}

func summarise(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more", strings.Join(items[:max], "; "), len(items)-max)
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

func (r *RegistryReconciler) reconcileService(ctx context.Context, reg *uniregv1.Registry) error {
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
	_, err := r.apply(ctx, reg, svc)
	return err
}

// reconcileDeployment applies the Deployment. While the Registry waits for
// its turn to take a new default image (upgradeSlot), its pods keep the
// image they run and waiting says why.
func (r *RegistryReconciler) reconcileDeployment(ctx context.Context, reg *uniregv1.Registry) (dep *appsv1.Deployment, waiting string, err error) {
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

// SetupWithManager registers the controller: Registries, their children,
// and the tokens, scopes and token Secrets that feed their auth stores.
func (r *RegistryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexTokensByRegistry(mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&uniregv1.Registry{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.Secret{}).
		Owns(&corev1.PersistentVolumeClaim{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Watches(&uniregv1.RegistryToken{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: registryOf(o.(*uniregv1.RegistryToken))}}
		})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			name := o.GetLabels()[labelRegistry]
			if name == "" {
				return nil
			}
			ns := o.GetLabels()[labelRegistryNamespace] // a token of another namespace
			if ns == "" {
				ns = o.GetNamespace()
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
		})).
		Watches(&uniregv1.RegistryScope{}, handler.EnqueueRequestsFromMapFunc(r.registriesInNamespace)).
		Named("registry").
		Complete(r)
}

// registriesInNamespace enqueues every Registry of an object's namespace
// (a RegistryScope may feed any of them) and the Registries of other
// namespaces that tokens of its namespace naming it feed.
func (r *RegistryReconciler) registriesInNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var list uniregv1.RegistryList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, reg := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&reg)})
	}
	var tokens uniregv1.RegistryTokenList
	if err := r.List(ctx, &tokens, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexScopeRef: o.GetName()}); err != nil {
		return out
	}
	for i := range tokens.Items {
		if t := &tokens.Items[i]; crossNamespace(t) {
			out = append(out, reconcile.Request{NamespacedName: registryOf(t)})
		}
	}
	return out
}
