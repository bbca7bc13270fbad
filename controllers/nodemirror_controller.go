package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/controllers/nodemirror"
)

// The node mirror (docs/operator.md "Node mirror"): for a Registry with
// spec.nodeMirror.enabled, a DaemonSet <name>-node-mirror in the
// operator's namespace runs `manager node-mirror` on every node, which
// writes a containerd hosts.toml for each OCI upstream pointing at the
// Registry's ClusterIP (controllers/nodemirror has the agent's contract).
// What the agents write comes from a ConfigMap of the same name; its
// hash in the pod template rolls the agents when it changes, and the
// DaemonSet's rollout status says when every node has it.
//
// Turning the mirror off, or deleting the Registry, rolls the agents into
// a configuration without hosts (they remove exactly what they wrote),
// waits until every node has it, and only then deletes the DaemonSet and
// the ConfigMap and lets the Registry go (the finalizer). The DaemonSet
// and ConfigMap are in another namespace than the Registry, so no owner
// reference can tie them to it: labels name it, and a DaemonSet of the
// name that the labels do not tie to this Registry is never touched.

// NodeMirrorReconciler runs the node mirrors of Registries.
type NodeMirrorReconciler struct {
	client.Client
	Scheme *runtime.Scheme
	// Namespace is the operator's, where the DaemonSets run.
	Namespace string
	// Image runs the agents: the manager's own image.
	Image string
	// AllowedNamespaces may run a node mirror; none when empty. A node
	// mirror decides what image every pod of the cluster gets for the
	// hosts it mirrors, so it is the cluster administrator's to grant.
	AllowedNamespaces []string
	// AllowedHostsDirs are the node directories a node mirror may write
	// (DefaultNodeMirrorHostsDirs when empty).
	AllowedHostsDirs []string
	// CertificateRetry is how soon a mirror waiting for cert-manager to
	// issue the Registry's TLS Secret looks again (the Secret is not
	// watched); 30 s when zero.
	CertificateRetry time.Duration
}

// DefaultNodeMirrorHostsDirs is containerd 2's default config_path.
var DefaultNodeMirrorHostsDirs = []string{"/etc/containerd/certs.d"}

const (
	nodeMirrorFinalizer  = "unireg.dev/node-mirror"
	nodeMirrorFieldOwner = "unireg-operator-node-mirror"
	// The Registry a node mirror's objects belong to is named by
	// labelRegistryNamespace and labelRegistry, as on token Secrets.
	annotationConfigHash = "unireg.dev/node-mirror-config"
	// Paths in the agent's container.
	nodeMirrorConfigMount = "/etc/unireg/node-mirror"
	nodeMirrorWriteDir    = "/host/certs.d"
	nodeMirrorRunDir      = "/run/unireg"
)

// caRecheck is how often a node mirror reads the TLS Secret's CA again.
const caRecheck = 5 * time.Minute

func nodeMirrorName(reg *uniregv1.Registry) string { return reg.Name + "-node-mirror" }

func nodeMirrorLabels(reg *uniregv1.Registry) map[string]string {
	return map[string]string{labelName: "unireg-node-mirror", labelManagedBy: managedBy,
		labelRegistryNamespace: reg.Namespace, labelRegistry: reg.Name}
}

// ours reports whether obj is this Registry's node mirror object.
func nodeMirrorOurs(reg *uniregv1.Registry, obj client.Object) bool {
	l := obj.GetLabels()
	return l[labelManagedBy] == managedBy && l[labelRegistryNamespace] == reg.Namespace && l[labelRegistry] == reg.Name
}

// +kubebuilder:rbac:groups=apps,resources=daemonsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=unireg.dev,resources=registries,verbs=get;list;watch;patch

func (r *NodeMirrorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	reg := &uniregv1.Registry{}
	if err := r.Get(ctx, req.NamespacedName, reg); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	want, why := r.wanted(reg)
	if !want && !controllerutil.ContainsFinalizer(reg, nodeMirrorFinalizer) {
		// Never had a node mirror (the finalizer comes before any object
		// is made): nothing on the nodes or in the operator's namespace to
		// look up, which for a miss would be a read from the API server.
		return ctrl.Result{}, r.settle(ctx, reg, why)
	}
	ds := &appsv1.DaemonSet{}
	err := r.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: nodeMirrorName(reg)}, ds)
	switch {
	case apierrors.IsNotFound(err):
		ds = nil
	case err != nil:
		return ctrl.Result{}, err
	case !nodeMirrorOurs(reg, ds):
		// Another Registry's (of the same name in another namespace), or
		// nobody's: never touched.
		return ctrl.Result{}, r.writeCondition(ctx, reg, metav1.ConditionFalse, uniregv1.ReasonChildConflict,
			fmt.Sprintf("DaemonSet %s/%s exists and is not this Registry's node mirror: the operator leaves it untouched", r.Namespace, ds.Name), nil)
	}

	if want {
		if !controllerutil.ContainsFinalizer(reg, nodeMirrorFinalizer) {
			patch := client.MergeFrom(reg.DeepCopy())
			controllerutil.AddFinalizer(reg, nodeMirrorFinalizer)
			if err := r.Patch(ctx, reg, patch); err != nil {
				return ctrl.Result{}, err
			}
		}
		cfg, reason, msg, err := r.config(ctx, reg)
		if err != nil {
			return ctrl.Result{}, err
		}
		if cfg == nil {
			var again ctrl.Result
			if reason == uniregv1.ReasonSecretNotIssued {
				again.RequeueAfter = nonZero(r.CertificateRetry, certificateRetry)
			}
			return again, r.writeCondition(ctx, reg, metav1.ConditionFalse, reason, msg, nil)
		}
		live, err := r.applyMirror(ctx, reg, *cfg)
		if err != nil {
			return ctrl.Result{}, err
		}
		desired, ready, done := rolledOut(live)
		counts := &uniregv1.NodeMirrorStatus{Desired: desired, Ready: ready}
		// The TLS Secret is not watched (the cache holds only the
		// operator's Secrets): a rotated CA reaches the nodes within this.
		recheck := ctrl.Result{RequeueAfter: caRecheck}
		if done {
			return recheck, r.writeCondition(ctx, reg, metav1.ConditionTrue, uniregv1.ReasonNodesConfigured,
				fmt.Sprintf("%d of %d nodes pull %s through this Registry", ready, desired, strings.Join(hostNames(*cfg), ", ")), counts)
		}
		return recheck, r.writeCondition(ctx, reg, metav1.ConditionFalse, uniregv1.ReasonConfiguringNodes,
			fmt.Sprintf("%d of %d nodes configured; a node whose agent stays unready found a hosts.toml it did not write (kubectl describe pod -n %s -l %s=%s shows why)",
				ready, desired, r.Namespace, labelRegistry, reg.Name), counts)
	}

	// Not wanted: clean the nodes first, then the objects, then let go.
	if ds != nil {
		live, err := r.applyMirror(ctx, reg, nodemirror.Config{Owner: reg.Namespace + "/" + reg.Name, HostsDir: hostsDirOf(reg, ds)})
		if err != nil {
			return ctrl.Result{}, err
		}
		desired, ready, done := rolledOut(live)
		if !done {
			return ctrl.Result{}, r.writeCondition(ctx, reg, metav1.ConditionFalse, uniregv1.ReasonCleaningUp,
				fmt.Sprintf("removing the node mirror's files: %d of %d nodes done", ready, desired), &uniregv1.NodeMirrorStatus{Desired: desired, Ready: ready})
		}
		for _, obj := range []client.Object{live, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: nodeMirrorName(reg)}}} {
			if err := r.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
				return ctrl.Result{}, err
			}
		}
	}
	if controllerutil.ContainsFinalizer(reg, nodeMirrorFinalizer) {
		patch := client.MergeFrom(reg.DeepCopy())
		controllerutil.RemoveFinalizer(reg, nodeMirrorFinalizer)
		if err := r.Patch(ctx, reg, patch); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	return ctrl.Result{}, r.settle(ctx, reg, why)
}

// settle writes the status of a Registry without a node mirror: why it
// may not have the one it asks for, or nothing.
func (r *NodeMirrorReconciler) settle(ctx context.Context, reg *uniregv1.Registry, why string) error {
	switch {
	case !reg.DeletionTimestamp.IsZero():
		return nil
	case why != "":
		return r.writeCondition(ctx, reg, metav1.ConditionFalse, uniregv1.ReasonNodeMirrorNotAllowed, why, nil)
	}
	return r.clearCondition(ctx, reg)
}

// wanted reports whether reg's node mirror should run; when it is
// enabled but may not, why says so.
func (r *NodeMirrorReconciler) wanted(reg *uniregv1.Registry) (bool, string) {
	m := reg.Spec.NodeMirror
	if !reg.DeletionTimestamp.IsZero() || m == nil || !m.Enabled {
		return false, ""
	}
	if !slices.Contains(r.AllowedNamespaces, reg.Namespace) {
		return false, fmt.Sprintf("namespace %s may not run a node mirror: the operator's --node-mirror-namespaces does not list it (a node mirror decides what every pod of the cluster runs)", reg.Namespace)
	}
	allowed := r.AllowedHostsDirs
	if len(allowed) == 0 {
		allowed = DefaultNodeMirrorHostsDirs
	}
	if dir := hostsDirOf(reg, nil); !slices.Contains(allowed, dir) {
		return false, fmt.Sprintf("spec.nodeMirror.hostsDir %s is not one of the operator's --node-mirror-hosts-dirs (%s)", dir, strings.Join(allowed, ", "))
	}
	if reg.Spec.Upstreams == nil || len(reg.Spec.Upstreams.OCI) == 0 {
		return false, "spec.upstreams.oci is empty: there is nothing to mirror"
	}
	return true, ""
}

// hostsDirOf is the node directory of reg's mirror; when cleaning up, the
// one the running DaemonSet writes (the spec may have changed since).
func hostsDirOf(reg *uniregv1.Registry, ds *appsv1.DaemonSet) string {
	if ds != nil {
		for _, v := range ds.Spec.Template.Spec.Volumes {
			if v.Name == "hosts" && v.HostPath != nil {
				return v.HostPath.Path
			}
		}
	}
	if m := reg.Spec.NodeMirror; m != nil && m.HostsDir != "" {
		return m.HostsDir
	}
	return DefaultNodeMirrorHostsDirs[0]
}

// config is what the agents write: one host per OCI upstream, mirrored by
// the Service's ClusterIP (nodes do not resolve cluster DNS). Nil, with the
// reason for the condition, while there is nothing to write: the Service
// has no ClusterIP, or spec.tls.issuerRef names a Secret cert-manager did
// not issue for the Registry (no registry pod serves it, and its ca.crt is
// not what nodes should trust for the Registry).
func (r *NodeMirrorReconciler) config(ctx context.Context, reg *uniregv1.Registry) (cfg *nodemirror.Config, reason, msg string, err error) {
	waitingForService := func() (*nodemirror.Config, string, string, error) {
		return nil, uniregv1.ReasonWaitingForService, "waiting for the Registry's Service to have a ClusterIP", nil
	}
	svc := &corev1.Service{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: reg.Name}, svc); err != nil {
		if apierrors.IsNotFound(err) {
			return waitingForService()
		}
		return nil, "", "", err
	}
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone {
		return waitingForService()
	}
	self := hostPort(ip, servicePort(reg))
	mirror := scheme(reg) + "://" + self
	var ca []byte
	if t := reg.Spec.TLS; t != nil {
		// What the nodes trust: the Secret's ca.crt, else the certificate
		// itself (a self-signed one).
		sec := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: reg.Namespace, Name: t.SecretName}, sec); err != nil {
			return nil, "", "", fmt.Errorf("tls secret %s: %w", t.SecretName, err)
		}
		if !issuedForRegistry(reg, sec) {
			return nil, uniregv1.ReasonSecretNotIssued, fmt.Sprintf("Secret %s was not issued for Certificate %s: the nodes are not pointed at a certificate the Registry does not serve", t.SecretName, certificateName(reg)), nil
		}
		ca = sec.Data["ca.crt"]
		if len(ca) == 0 {
			ca = sec.Data[corev1.TLSCertKey]
		}
	}
	cfg = &nodemirror.Config{Owner: reg.Namespace + "/" + reg.Name, HostsDir: hostsDirOf(reg, nil)}
	for _, u := range reg.Spec.Upstreams.OCI {
		cfg.Hosts = append(cfg.Hosts, nodemirror.Host{Name: u.Name, Server: strings.TrimSuffix(u.URL, "/"), Mirror: mirror, CA: ca})
	}
	if ca != nil {
		// Pod images name the Registry by ClusterIP:port: that host needs
		// the CA too.
		cfg.Hosts = append(cfg.Hosts, nodemirror.Host{Name: self, Mirror: mirror, CA: ca})
	}
	if err := cfg.Validate(); err != nil {
		return nil, "", "", fmt.Errorf("node mirror configuration: %w", err)
	}
	return cfg, "", "", nil
}

func hostPort(ip string, port int32) string {
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return ip + ":" + strconv.Itoa(int(port))
}

func hostNames(cfg nodemirror.Config) []string {
	var out []string
	for _, h := range cfg.Hosts {
		out = append(out, h.Name)
	}
	return out
}

// rolledOut reads the DaemonSet's rollout: every scheduled node runs the
// current template and is ready.
func rolledOut(ds *appsv1.DaemonSet) (desired, ready int32, done bool) {
	st := ds.Status
	done = st.ObservedGeneration >= ds.Generation && st.UpdatedNumberScheduled == st.DesiredNumberScheduled &&
		st.NumberReady == st.DesiredNumberScheduled && st.NumberUnavailable == 0
	ready = min(st.NumberReady, st.UpdatedNumberScheduled)
	return st.DesiredNumberScheduled, ready, done
}

// applyMirror writes the ConfigMap of cfg and the DaemonSet that applies
// it, and returns the DaemonSet as the API server has it.
func (r *NodeMirrorReconciler) applyMirror(ctx context.Context, reg *uniregv1.Registry, cfg nodemirror.Config) (*appsv1.DaemonSet, error) {
	body, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	name := nodeMirrorName(reg)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name}}
	if err := r.Get(ctx, client.ObjectKeyFromObject(cm), cm); err == nil && !nodeMirrorOurs(reg, cm) {
		return nil, &childConflict{kind: "ConfigMap", name: r.Namespace + "/" + name}
	} else if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	sum := sha256.Sum256(body)
	if _, err := r.ssa(ctx, &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name, Labels: nodeMirrorLabels(reg)},
		Data:       map[string]string{nodemirror.ConfigFile: string(body)},
	}); err != nil {
		return nil, err
	}
	ds := &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: name, Labels: nodeMirrorLabels(reg)},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{labelRegistryNamespace: reg.Namespace, labelRegistry: reg.Name}},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: ptr.To(intstr.FromString("100%"))}},
			Template: r.agentPod(reg, cfg.HostsDir, fmt.Sprintf("%x", sum[:8])),
		},
	}
	answer, err := r.ssa(ctx, ds)
	if err != nil {
		return nil, err
	}
	// The API server's answer, not the cache: the rollout status must be
	// the one of the template just applied.
	live := &appsv1.DaemonSet{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(answer.Object, live); err != nil {
		return nil, err
	}
	return live, nil
}

// ssa applies obj server-side under the node mirror's field manager and
// returns what the API server answered.
func (r *NodeMirrorReconciler) ssa(ctx context.Context, obj client.Object) (*unstructured.Unstructured, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(u, "status")
	dropNulls(u)
	applied := &unstructured.Unstructured{Object: u}
	err = r.Apply(ctx, client.ApplyConfigurationFromUnstructured(applied), client.FieldOwner(nodeMirrorFieldOwner), client.ForceOwnership)
	return applied, err
}

// agentPod runs `manager node-mirror` with only what it needs: the
// ConfigMap, the node's hosts directory and a scratch directory; no
// service account token, no network beyond the pod's own, every
// capability dropped. It runs as root, which owns containerd's
// directory, and tolerates every taint: every node pulls images.
func (r *NodeMirrorReconciler) agentPod(reg *uniregv1.Registry, hostsDir, configHash string) corev1.PodTemplateSpec {
	labels := map[string]string{labelName: "unireg-node-mirror", labelRegistryNamespace: reg.Namespace, labelRegistry: reg.Name}
	readyFile := nodeMirrorRunDir + "/ready"
	tiny := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("5m"), corev1.ResourceMemory: resource.MustParse("16Mi")}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{annotationConfigHash: configHash}},
		Spec: corev1.PodSpec{
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			PriorityClassName:             "system-node-critical",
			TerminationGracePeriodSeconds: ptr.To[int64](5),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser: ptr.To[int64](0), RunAsNonRoot: ptr.To(false),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "node-mirror", Image: r.Image, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: []string{"node-mirror",
					"--config=" + nodeMirrorConfigMount + "/" + nodemirror.ConfigFile,
					"--write-dir=" + nodeMirrorWriteDir,
					"--ready-file=" + readyFile,
					"--interval=30s"},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/manager", "node-mirror-probe", "--ready-file=" + readyFile}}},
					PeriodSeconds: 5, TimeoutSeconds: 3,
				},
				Resources: corev1.ResourceRequirements{Requests: tiny, Limits: corev1.ResourceList{
					corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "config", MountPath: nodeMirrorConfigMount, ReadOnly: true},
					{Name: "hosts", MountPath: nodeMirrorWriteDir},
					{Name: "run", MountPath: nodeMirrorRunDir},
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: nodeMirrorName(reg)}}}},
				{Name: "hosts", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
					Path: hostsDir, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
				{Name: "run", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
					Medium: corev1.StorageMediumMemory, SizeLimit: ptr.To(resource.MustParse("1Mi"))}}},
			},
		},
	}
}

// writeCondition applies NodeMirrorReady and the node counts under the
// node mirror's field manager.
func (r *NodeMirrorReconciler) writeCondition(ctx context.Context, reg *uniregv1.Registry, status metav1.ConditionStatus, reason, msg string, counts *uniregv1.NodeMirrorStatus) error {
	meta.SetStatusCondition(&reg.Status.Conditions, metav1.Condition{Type: uniregv1.ConditionNodeMirrorReady, Status: status,
		Reason: reason, Message: msg, ObservedGeneration: reg.Generation})
	conds, err := conditionsOf(reg.Status.Conditions, func(typ string) bool { return typ == uniregv1.ConditionNodeMirrorReady })
	if err != nil {
		return err
	}
	fields := map[string]any{"conditions": conds}
	if counts != nil {
		fields["nodeMirror"] = map[string]any{"desired": int64(counts.Desired), "ready": int64(counts.Ready)}
	}
	return applyStatus(ctx, r.Client, reg, nodeMirrorFieldOwner, fields)
}

// clearCondition gives up the node mirror's status fields.
func (r *NodeMirrorReconciler) clearCondition(ctx context.Context, reg *uniregv1.Registry) error {
	if meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionNodeMirrorReady) == nil && reg.Status.NodeMirror == nil {
		return nil
	}
	return applyStatus(ctx, r.Client, reg, nodeMirrorFieldOwner, map[string]any{})
}

// SetupWithManager watches Registries, their Services, and the node
// mirror DaemonSets (mapped back to their Registry by labels).
func (r *NodeMirrorReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toRegistry := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
		l := obj.GetLabels()
		if l[labelManagedBy] != managedBy || l[labelRegistry] == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[labelRegistryNamespace], Name: l[labelRegistry]}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&uniregv1.Registry{}).
		Watches(&appsv1.DaemonSet{}, toRegistry).
		Watches(&corev1.Service{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &uniregv1.Registry{}, handler.OnlyControllerOwner())).
		Named("nodemirror").
		Complete(r)
}
