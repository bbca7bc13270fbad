package controllers

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// Paths inside the registry container.
const (
	dataMount = "/data"
	// upstreamsMount holds the upstreams' credentials, a directory each.
	upstreamsMount = "/etc/unireg/upstreams"
	// tlsMount holds spec.tls's certificate and key.
	tlsMount = "/etc/unireg/tls"
	jwtMount = "/etc/unireg/jwt"
	tmpMount = "/tmp"
)

// Size limits of the pod's emptyDirs: the kubelet evicts a pod beyond
// them, instead of letting one registry fill the node's disk.
var (
	// tmpLimit bounds /tmp, which the server does not write to itself.
	tmpLimit = resource.MustParse("1Gi")
	// emptyDirDataLimit is the data volume of emptyDir storage when
	// spec.storage.emptyDir.sizeLimit is unset.
	emptyDirDataLimit = resource.MustParse("10Gi")
	// s3LocalStateLimit is the data volume under S3 storage: content is in
	// the bucket, the JWT key and auth store come from Secrets, so only
	// the data dir itself is made there.
	s3LocalStateLimit = resource.MustParse("64Mi")
)

// podTemplate is the registry's pod: cmd/registry with flags from the spec,
// non-root, read-only root filesystem, probes on /healthz and /readyz.
func (r *RegistryReconciler) podTemplate(reg *uniregv1.Registry) corev1.PodTemplateSpec {
	image := reg.Spec.Image
	if image == "" {
		image = r.DefaultImage
	}
	args := []string{
		fmt.Sprintf("--listen=:%d", containerPort),
		"--data-dir=" + dataMount,
		// The auth store comes through the API, not a mounted Secret, so a
		// revoked token stops working within seconds in every replica.
		"--auth-store-secret=" + reg.Namespace + "/" + authSecretName(reg),
		"--jwt-key-file=" + jwtMount + "/" + keyJWT,
		fmt.Sprintf("--oci-enabled=%t", enabled(reg.Spec.OCI.Enabled)),
		fmt.Sprintf("--npm-enabled=%t", enabled(reg.Spec.NPM.Enabled)),
		"--npm-prefix=" + npmPrefix(reg),
		"--log-format=json",
	}
	// Without spec.publicURL the server takes its URL from each request's
	// Host, so the token realm and tarball URLs work under whichever name a
	// client used: the Service's DNS name in pods, its ClusterIP on nodes.
	if reg.Spec.PublicURL != "" {
		args = append(args, "--public-url="+publicURL(reg))
	}
	// Unset keeps the server's default set; an empty list trusts no peer.
	if tp := reg.Spec.TrustedProxies; tp != nil {
		list := strings.Join(*tp, ",")
		if len(*tp) == 0 {
			list = "none"
		}
		args = append(args, "--trusted-proxies="+list)
	}
	if anon := anonymousScopes(reg); len(anon) > 0 {
		args = append(args, "--anonymous="+strings.Join(anon, ","))
	}
	args = append(args, gcArgs(reg)...)
	upArgs, upVolumes, upMounts := upstreams(reg)
	args = append(args, upArgs...)
	if enabled(reg.Spec.NPM.Enabled) {
		upVolumes = append(upVolumes, corev1.Volume{Name: "npm-signing", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: npmSigningSecretName(reg), DefaultMode: ptr.To[int32](0o400)}}})
		upMounts = append(upMounts, corev1.VolumeMount{Name: "npm-signing", MountPath: npmSigningMount, ReadOnly: true})
		args = append(args, "--npm-signing-key-file="+npmSigningMount+"/"+keyNPMSigning)
	}
	probeScheme := corev1.URISchemeHTTP
	if t := reg.Spec.TLS; t != nil {
		// The kubelet updates the mounted Secret when it rotates; the
		// server reads the pair again through these paths.
		upVolumes = append(upVolumes, corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: t.SecretName, DefaultMode: ptr.To[int32](0o400),
			Items: []corev1.KeyToPath{{Key: corev1.TLSCertKey, Path: corev1.TLSCertKey}, {Key: corev1.TLSPrivateKeyKey, Path: corev1.TLSPrivateKeyKey}},
		}}})
		upMounts = append(upMounts, corev1.VolumeMount{Name: "tls", MountPath: tlsMount, ReadOnly: true})
		args = append(args, "--tls-cert-file="+tlsMount+"/"+corev1.TLSCertKey, "--tls-key-file="+tlsMount+"/"+corev1.TLSPrivateKeyKey)
		probeScheme = corev1.URISchemeHTTPS
	}
	var env []corev1.EnvVar
	dataVolume := corev1.Volume{Name: "data"}
	switch st := reg.Spec.Storage; {
	case st.S3 != nil:
		args = append(args, "--s3-endpoint="+st.S3.Endpoint, "--s3-bucket="+st.S3.Bucket)
		if st.S3.Region != "" {
			args = append(args, "--s3-region="+st.S3.Region)
		}
		if st.S3.Prefix != "" {
			args = append(args, "--s3-prefix="+st.S3.Prefix)
		}
		for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
			env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: st.S3.CredentialsSecretRef, Key: k,
			}}})
		}
		dataVolume.EmptyDir = &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(s3LocalStateLimit)} // local state only
	case st.EmptyDir != nil:
		limit := emptyDirDataLimit
		if st.EmptyDir.SizeLimit != nil {
			limit = *st.EmptyDir.SizeLimit
		}
		dataVolume.EmptyDir = &corev1.EmptyDirVolumeSource{SizeLimit: &limit}
	default:
		dataVolume.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: dataClaimName(reg)}
	}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(containerPort), Scheme: probeScheme}},
			PeriodSeconds: 5, TimeoutSeconds: 3, FailureThreshold: 3,
		}
	}
	secretVolume := func(name, secret string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret, DefaultMode: ptr.To[int32](0o400)}}}
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: selectorLabels(reg), Annotations: reg.Spec.PodTemplate.Annotations},
		Spec: corev1.PodSpec{
			NodeSelector:                  reg.Spec.PodTemplate.NodeSelector,
			Tolerations:                   reg.Spec.PodTemplate.Tolerations,
			ImagePullSecrets:              reg.Spec.PodTemplate.ImagePullSecrets,
			Affinity:                      reg.Spec.PodTemplate.Affinity,
			TopologySpreadConstraints:     topologySpread(reg),
			ServiceAccountName:            serviceAccountName(reg),
			AutomountServiceAccountToken:  ptr.To(true), // to watch its auth-store Secret
			TerminationGracePeriodSeconds: ptr.To[int64](40),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
				FSGroup: ptr.To[int64](65532), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "registry", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
				Args: args, Env: env,
				Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: containerPort, Protocol: corev1.ProtocolTCP}},
				LivenessProbe:  probe("/healthz"),
				ReadinessProbe: probe("/readyz"),
				Resources:      containerResources(reg.Spec.Resources),
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts: append([]corev1.VolumeMount{
					{Name: "data", MountPath: dataMount},
					{Name: "jwt", MountPath: jwtMount, ReadOnly: true},
					{Name: "tmp", MountPath: tmpMount},
				}, upMounts...),
			}},
			Volumes: append([]corev1.Volume{
				dataVolume,
				secretVolume("jwt", jwtSecretName(reg)),
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(tmpLimit)}}},
			}, upVolumes...),
		},
	}
}

// defaultRequests are the registry container's requests when the spec
// leaves them unset, so the scheduler counts the registry: enough for an
// idle registry and a few concurrent pushes.
var defaultRequests = corev1.ResourceList{
	corev1.ResourceCPU:    resource.MustParse("100m"),
	corev1.ResourceMemory: resource.MustParse("128Mi"),
}

// containerResources is spec.resources with the default requests filled in
// key by key: a request the user gives wins, the others are the defaults.
// Limits are the user's alone.
func containerResources(spec corev1.ResourceRequirements) corev1.ResourceRequirements {
	out := *spec.DeepCopy()
	if out.Requests == nil {
		out.Requests = corev1.ResourceList{}
	}
	for name, q := range defaultRequests {
		if _, set := out.Requests[name]; set {
			continue
		}
		// A limit below the default request would make the pod invalid:
		// the request follows such a limit instead.
		if l, ok := out.Limits[name]; ok && l.Cmp(q) < 0 {
			q = l
		}
		out.Requests[name] = q
	}
	return out
}

// upgradeSlotRetry is how often a waiting Registry looks again.
const upgradeSlotRetry = 15 * time.Second

// gcArgs are the server flags of spec.gc and spec.retention.
func gcArgs(reg *uniregv1.Registry) []string {
	var args []string
	if gc := reg.Spec.GC; gc != nil {
		if gc.Interval != nil {
			args = append(args, "--gc-interval="+gc.Interval.Duration.String())
		}
		if gc.Grace != nil {
			args = append(args, "--gc-grace="+gc.Grace.Duration.String())
		}
	}
	for _, r := range reg.Spec.Retention {
		var rules []string
		if r.KeepLast != nil {
			rules = append(rules, fmt.Sprintf("keep-last=%d", *r.KeepLast))
		}
		if r.KeepTags != "" {
			rules = append(rules, "keep-tags="+r.KeepTags)
		}
		if r.UntaggedAfter != nil {
			rules = append(rules, "untagged-after="+r.UntaggedAfter.Duration.String())
		}
		args = append(args, "--retention="+r.Repositories+"="+strings.Join(rules, ","))
	}
	return args
}

// checkRetention refuses rules the server would refuse to start with (a
// keepTags that is no regular expression), before the Deployment rolls.
func checkRetention(reg *uniregv1.Registry) error {
	for i, r := range reg.Spec.Retention {
		if r.KeepTags == "" {
			continue
		}
		if _, err := regexp.Compile(r.KeepTags); err != nil {
			return fmt.Errorf("spec.retention[%d].keepTags %q is not a regular expression: %v", i, r.KeepTags, err)
		}
	}
	return nil
}

// anonymousScopes are spec.anonymousScopes and, for each OCI upstream
// that allows it, the anonymous pull of its namespace: containerd sends no
// credentials to a mirror.
func anonymousScopes(reg *uniregv1.Registry) []string {
	scopes := slices.Clone(reg.Spec.AnonymousScopes)
	if up := reg.Spec.Upstreams; up != nil {
		for _, u := range up.OCI {
			if u.AnonymousPullOf() {
				scopes = append(scopes, "oci:repository:"+u.Name+"/*:pull")
			}
		}
	}
	return scopes
}

// upstreams are the server flags of spec.upstreams, and the Secret
// volumes of their credentials: mounted into the registry's pods only,
// never passed in args or env, and read by the server at every login.
func upstreams(reg *uniregv1.Registry) (args []string, volumes []corev1.Volume, mounts []corev1.VolumeMount) {
	up := reg.Spec.Upstreams
	if up == nil {
		return nil, nil, nil
	}
	secret := func(volume, secretName string, items ...corev1.KeyToPath) {
		volumes = append(volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secretName, Items: items, DefaultMode: ptr.To[int32](0o400)}}})
		mounts = append(mounts, corev1.VolumeMount{Name: volume, MountPath: upstreamsMount + "/" + volume, ReadOnly: true})
	}
	for i, u := range up.OCI {
		args = append(args, "--oci-upstream="+u.Name+"="+strings.TrimSuffix(u.URL, "/"))
		if u.CredentialsSecretRef != nil {
			// The volume is named by position: upstream names hold dots.
			volume := fmt.Sprintf("oci-upstream-%d", i)
			secret(volume, u.CredentialsSecretRef.Name, corev1.KeyToPath{Key: "username", Path: "username"}, corev1.KeyToPath{Key: "password", Path: "password"})
			args = append(args, "--oci-upstream-credentials="+u.Name+"="+upstreamsMount+"/"+volume)
		}
	}
	if n := up.NPM; n != nil {
		args = append(args, "--npm-upstream="+n.URL)
		if n.CredentialsSecretRef != nil {
			secret("npm-upstream", n.CredentialsSecretRef.Name, corev1.KeyToPath{Key: "token", Path: "token"})
			args = append(args, "--npm-upstream-credentials="+upstreamsMount+"/npm-upstream/token")
		}
		for _, scope := range n.LocalScopes {
			args = append(args, "--npm-local-scope="+scope)
		}
		if n.MaxAge != nil {
			args = append(args, "--npm-upstream-max-age="+n.MaxAge.Duration.String())
		}
	}
	return args, volumes, mounts
}

// topologySpread is spec.podTemplate.topologySpreadConstraints; unset, a
// Registry of more than one replica spreads its pods over nodes, as far
// as the nodes allow (ScheduleAnyway: a single-node cluster still runs
// them all).
func topologySpread(reg *uniregv1.Registry) []corev1.TopologySpreadConstraint {
	if c := reg.Spec.PodTemplate.TopologySpreadConstraints; len(c) > 0 || wantedReplicas(reg) <= 1 {
		return c
	}
	return []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector: &metav1.LabelSelector{MatchLabels: selectorLabels(reg)},
	}}
}
