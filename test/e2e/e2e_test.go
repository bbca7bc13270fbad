//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
	"github.com/unireg/unireg/hack/imagebuild"
)

const (
	operatorNamespace  = "unireg-system"
	operatorDeployment = "unireg-controller-manager"
	// The objects of config/samples.
	sampleRegistry = "registry-sample"
	sampleToken    = "acme-ci"
	// What the suite publishes.
	workloadRepo = "acme/workload"
	npmPackage   = "@acme/e2e-hello"
)

// TestEndToEnd is the product on a real cluster, in the order a user meets
// it. The steps share state (the operator, the sample registry, what was
// pushed), so a failed step stops the rest.
func TestEndToEnd(t *testing.T) {
	k := newCluster(t)
	managerImage, registryImage := os.Getenv("E2E_MANAGER_IMAGE"), os.Getenv("E2E_REGISTRY_IMAGE")
	if managerImage == "" || registryImage == "" {
		t.Fatal("E2E_MANAGER_IMAGE and E2E_REGISTRY_IMAGE must name the images under test (make test-e2e sets them)")
	}
	ns := "unireg-e2e-" + time.Now().UTC().Format("150405")
	s := &suite{k: k, ns: ns, managerImage: managerImage, registryImage: registryImage,
		hostsDir: os.Getenv("E2E_NODE_HOSTS_DIR"), mirrorNS: ns + "-mirror"}
	s.extraNamespaces = append(s.extraNamespaces, s.mirrorNS)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range append([]string{ns}, s.extraNamespaces...) {
				k.dump(n)
			}
		}
		if os.Getenv("E2E_KEEP") != "" {
			t.Logf("E2E_KEEP is set: leaving namespace %s and the operator in place", ns)
			return
		}
		s.cleanup()
	})
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"1-deploy-operator", s.deployOperator},
		{"2-apply-samples", s.applySamples},
		{"3-push-and-publish-from-host", s.pushAndPublish},
		{"4-kubelet-pulls-from-unireg", s.kubeletPulls},
		{"6-two-replicas-on-s3", s.twoReplicasOnS3},
		{"5-revocation", s.revocation},
		{"7-upgrade", s.upgrade},
		{"8-team-tokens-under-a-policy", s.teamTokensUnderPolicy},
		{"9-node-mirror", s.nodeMirror},
		{"10-node-mirror-tls", s.nodeMirrorTLS},
	}
	for _, step := range steps {
		if !t.Run(step.name, step.run) {
			t.FailNow()
		}
	}
}

// suite is what the steps hand on to each other.
type suite struct {
	k                           *cluster
	ns                          string
	managerImage, registryImage string
	operatorManifests           string

	sample         credential // the sample token's Secret
	sampleAddr     string     // the sample registry's Service, from the host
	nodeHost       string     // the sample registry's ClusterIP:port, what nodes pull from
	workloadDigest string
	workloadLayout string     // the workload image as an OCI layout folder
	keeper         credential // a token that outlives the revocation step
	s3             credential // the S3 registry's token
	s3Pods         map[string]string
	// Namespaces of the steps besides ns, deleted with it.
	extraNamespaces []string

	// The node mirror steps: the node's containerd config_path, the
	// namespace the operator lets enable a node mirror, the stand-in for
	// Docker Hub and the digest of the image it holds.
	hostsDir, mirrorNS string
	upstream           *upstream
	mirrorDigest       string
}

func (s *suite) cleanup() {
	ctx := context.Background()
	for _, ns := range append([]string{s.ns}, s.extraNamespaces...) {
		s.k.c.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	if s.operatorManifests != "" {
		s.k.run(s.operatorManifests, "delete", "--ignore-not-found", "--wait=false", "-f", "-")
	}
}

// 1. The operator, from config/default with the images under test.
func (s *suite) deployOperator(t *testing.T) {
	s.k.t = t
	manifests := s.k.mustRun("", "kustomize", filepath.Join(repoRoot(t), "config", "default"))
	for from, to := range map[string]string{
		"unireg/manager:latest":                   s.managerImage,
		"--registry-image=unireg/registry:latest": "--registry-image=" + s.registryImage,
	} {
		if !strings.Contains(manifests, from) {
			t.Fatalf("config/default no longer renders %q: update the suite", from)
		}
		manifests = strings.ReplaceAll(manifests, from, to)
	}
	if s.hostsDir != "" {
		// The node mirror's namespace and the node's config_path: nothing
		// else may enable a node mirror, and it writes nowhere else.
		manifests = addArgs(t, manifests, "- --manager-image=",
			"--node-mirror-namespaces="+s.mirrorNS, "--node-mirror-hosts-dirs="+s.hostsDir)
	}
	s.operatorManifests = manifests
	s.k.mustRun(manifests, "apply", "-f", "-")
	if s.hostsDir != "" {
		// What docs/operator.md asks of a cluster that enables node
		// mirrors: their DaemonSets write a hostPath as root, which only
		// the privileged Pod Security level admits.
		s.k.mustRun("", "label", "--overwrite", "namespace", operatorNamespace, "pod-security.kubernetes.io/enforce=privileged")
	}
	for _, crd := range []string{"registries.unireg.dev", "registrytokens.unireg.dev", "registryscopes.unireg.dev"} {
		eventually(t, time.Minute, "CRD "+crd+" established", func() (bool, string) {
			c := &apiextensionsv1.CustomResourceDefinition{}
			if err := s.k.c.Get(context.Background(), types.NamespacedName{Name: crd}, c); err != nil {
				return false, err.Error()
			}
			for _, cond := range c.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, ""
				}
			}
			return false, "not established"
		})
	}
	s.k.waitDeploymentRolledOut(operatorNamespace, operatorDeployment, 3*time.Minute)
	d := &appsv1.Deployment{}
	if err := s.k.get(operatorNamespace, operatorDeployment, d); err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != s.managerImage {
		t.Fatalf("operator runs %s, want %s", got, s.managerImage)
	}
}

// 2. config/samples: a Registry, a RegistryScope and a RegistryToken. The
// Registry is Ready only when its pod runs and passes its readiness probe.
func (s *suite) applySamples(t *testing.T) {
	s.k.t = t
	s.k.mustRun("", "create", "namespace", s.ns)
	s.k.mustRun("", "apply", "-n", s.ns, "-k", filepath.Join(repoRoot(t), "config", "samples"))
	reg := s.k.waitRegistryReady(s.ns, sampleRegistry, 1, 5*time.Minute)
	if want := fmt.Sprintf("http://%s.%s.svc:5000", sampleRegistry, s.ns); reg.Status.URL != want {
		t.Fatalf("status.url = %q, want %q", reg.Status.URL, want)
	}
	pods := s.k.readyPods(s.ns, sampleRegistry)
	if len(pods) != 1 || pods[0].Spec.Containers[0].Image != s.registryImage {
		t.Fatalf("want one ready pod running %s, got %d", s.registryImage, len(pods))
	}
	s.sample = s.tokenCredential(t, sampleToken)
}

// tokenCredential waits for a RegistryToken to be Ready and reads its Secret.
func (s *suite) tokenCredential(t *testing.T, name string) credential {
	t.Helper()
	tok := &uniregv1.RegistryToken{}
	eventually(t, 2*time.Minute, "RegistryToken "+name+" Ready", func() (bool, string) {
		if err := s.k.get(s.ns, name, tok); err != nil {
			return false, err.Error()
		}
		for _, c := range tok.Status.Conditions {
			if c.Type == uniregv1.ConditionReady {
				return c.Status == metav1.ConditionTrue, c.Reason + ": " + c.Message
			}
		}
		return false, "no Ready condition"
	})
	sec := &corev1.Secret{}
	if err := s.k.get(s.ns, tok.Status.SecretName, sec); err != nil {
		t.Fatal(err)
	}
	return credentialFrom(t, sec)
}

// 3. From the host, with only the token's Secret: push an image with crane
// through the Service, publish and install an npm package with its .npmrc.
func (s *suite) pushAndPublish(t *testing.T) {
	s.k.t = t
	s.sampleAddr = s.k.serviceAddress(s.ns, sampleRegistry)
	cfg := s.sample.dockerConfigDir(t, s.sampleAddr)

	// The workload image of step 4: the pause binary (it sleeps until
	// stopped) as a non-root image, written as an OCI layout for crane.
	dir := filepath.Join(s.k.root.TempDir(), "workload") // step 5 pushes it again
	s.workloadDigest, s.workloadLayout = pauseImageLayout(t, "pause", "e2e", dir), dir
	ref := s.sampleAddr + "/" + workloadRepo + ":v1"
	if out, err := crane(t, cfg, "push", dir, ref); err != nil {
		t.Fatalf("crane push %s: %v\n%s", ref, err, out)
	}
	out, err := crane(t, cfg, "digest", ref)
	if err != nil || strings.TrimSpace(out) != s.workloadDigest {
		t.Fatalf("crane digest %s = %q (%v), want %s", ref, out, err, s.workloadDigest)
	}

	npmrc := s.sample.npmrcFile(t, s.sampleAddr)
	pkg := t.TempDir()
	os.WriteFile(filepath.Join(pkg, "package.json"), []byte(`{"name": "`+npmPackage+`", "version": "1.0.0", "main": "index.js"}`), 0o644)
	os.WriteFile(filepath.Join(pkg, "index.js"), []byte("module.exports = 'hello from unireg';\n"), 0o644)
	if out, err := npm(t, pkg, npmrc, "publish"); err != nil {
		t.Fatalf("npm publish: %v\n%s", err, out)
	}
	s.npmInstall(t, npmrc)
}

// npmInstall installs the published package into a fresh project and checks
// what landed.
func (s *suite) npmInstall(t *testing.T, npmrc string) {
	t.Helper()
	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name": "app", "version": "1.0.0", "private": true}`), 0o644)
	if out, err := npm(t, app, npmrc, "install", npmPackage+"@1.0.0"); err != nil {
		t.Fatalf("npm install: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(app, "node_modules", npmPackage, "index.js"))
	if err != nil || !strings.Contains(string(got), "hello from unireg") {
		t.Fatalf("installed package: %q, %v", got, err)
	}
	// yarn classic with the projected .npmrc alone, as ~/.npmrc (no
	// .yarnrc): it sends the token on reads only because the file says
	// always-auth.
	rc, err := os.ReadFile(npmrc)
	if err != nil {
		t.Fatal(err)
	}
	home, app := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(home, ".npmrc"), rc, 0o600)
	os.WriteFile(filepath.Join(app, "package.json"), []byte(`{"name": "app", "version": "1.0.0", "private": true}`), 0o644)
	yarn := tool(t, "E2E_YARN", "tools/npm-clients/node_modules/yarn/bin/yarn.js")
	out, err := command(t, app, []string{"HOME=" + home, "YARN_CACHE_FOLDER=" + filepath.Join(home, "yarn-cache")},
		"node", yarn, "add", npmPackage+"@1.0.0", "--no-lockfile", "--non-interactive")
	if err != nil {
		t.Fatalf("yarn classic add with the projected .npmrc: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(app, "node_modules", npmPackage, "index.js")); err != nil || !strings.Contains(string(got), "hello from unireg") {
		t.Fatalf("yarn classic installed %q, %v", got, err)
	}
}

// 4. The kubelet pulls the workload from unireg with the token's Secret as
// imagePullSecret, and is refused without it.
func (s *suite) kubeletPulls(t *testing.T) {
	s.k.t = t
	svc := &corev1.Service{}
	if err := s.k.get(s.ns, sampleRegistry, svc); err != nil {
		t.Fatal(err)
	}
	s.nodeHost = fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	// The operator fills the ClusterIP in once the Service has it.
	eventually(t, time.Minute, "the pull secret to carry a credential for "+s.nodeHost, func() (bool, string) {
		s.sample = s.tokenCredential(t, sampleToken)
		_, ok := s.sample.dockerCfg[s.nodeHost]
		return ok, fmt.Sprintf("hosts %v", keys(s.sample.dockerCfg))
	})
	if trust := os.Getenv("E2E_NODE_TRUST"); trust != "" {
		if out, err := exec.Command("sh", "-c", trust+` "$0"`, s.nodeHost).CombinedOutput(); err != nil {
			t.Fatalf("E2E_NODE_TRUST %s: %v\n%s", s.nodeHost, err, out)
		}
	}
	image := s.nodeHost + "/" + workloadRepo + ":v1"
	s.createWorkload(t, "workload", image, sampleToken+"-token")
	s.k.waitDeploymentRolledOut(s.ns, "workload", 3*time.Minute)
	pods := s.workloadPods(t, "workload")
	if len(pods) != 1 || pods[0].Status.Phase != corev1.PodRunning || !strings.HasSuffix(pods[0].Status.ContainerStatuses[0].ImageID, s.workloadDigest) {
		t.Fatalf("workload pod is not running the pushed image %s", s.workloadDigest)
	}

	s.createWorkload(t, "workload-without-secret", image, "")
	eventually(t, 2*time.Minute, "the pull without the Secret to be refused", func() (bool, string) {
		for _, p := range s.workloadPods(t, "workload-without-secret") {
			for _, c := range p.Status.ContainerStatuses {
				if c.State.Running != nil {
					t.Fatalf("a pod without the pull secret runs the private image")
				}
				if w := c.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
					// Refused for want of credentials, not for any other reason.
					msg := strings.ToLower(w.Message)
					return strings.Contains(msg, "authoriz") || strings.Contains(msg, "401"), w.Reason + ": " + w.Message
				} else if w != nil {
					return false, w.Reason + ": " + w.Message
				}
			}
		}
		return false, "no container status yet"
	})
	s.k.c.Delete(context.Background(), &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "workload-without-secret"}})
}

func (s *suite) createWorkload(t *testing.T, name, image, pullSecret string) {
	t.Helper()
	s.createWorkloadIn(t, s.ns, name, image, pullSecret)
}

func (s *suite) createWorkloadIn(t *testing.T, ns, name, image, pullSecret string) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					SecurityContext:               &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true)},
					Containers: []corev1.Container{{
						Name: "workload", Image: image, ImagePullPolicy: corev1.PullAlways,
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true)},
					}},
				},
			},
		},
	}
	if pullSecret != "" {
		d.Spec.Template.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: pullSecret}}
	}
	if err := s.k.c.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func (s *suite) workloadPods(t *testing.T, app string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := s.k.c.List(context.Background(), &list, client.InNamespace(s.ns), client.MatchingLabels{"app": app}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// 6. Two replicas on S3 (MinIO on this host): both serve the same content,
// and an upload started on one finishes on the other.
func (s *suite) twoReplicasOnS3(t *testing.T) {
	s.k.t = t
	m := startMinIO(t, s.k.root) // outlives this step: step 5 uses the replicas
	ctx := context.Background()
	endpoint := fmt.Sprintf("http://%s:%d", s.k.nodeAddress(), m.port)
	objs := []client.Object{
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "s3-credentials"},
			StringData: map[string]string{"AWS_ACCESS_KEY_ID": m.accessKey, "AWS_SECRET_ACCESS_KEY": m.secretKey},
		},
		&uniregv1.Registry{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "registry-s3"},
			Spec: uniregv1.RegistrySpec{
				Replicas: ptr.To[int32](2),
				Storage: uniregv1.RegistryStorage{S3: &uniregv1.S3Storage{
					Endpoint: endpoint, Bucket: "unireg-e2e", Region: "us-east-1",
					CredentialsSecretRef: corev1.LocalObjectReference{Name: "s3-credentials"},
				}},
			},
		},
		&uniregv1.RegistryToken{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "s3-ci"},
			Spec: uniregv1.RegistryTokenSpec{
				RegistryRef: uniregv1.RegistryReference{Name: "registry-s3"},
				Scopes:      []string{"oci:repository:acme/*:push"},
			},
		},
	}
	for _, o := range objs {
		if err := s.k.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	s.k.waitRegistryReady(s.ns, "registry-s3", 2, 5*time.Minute)
	s.s3 = s.tokenCredential(t, "s3-ci")
	s.s3Pods = map[string]string{}
	for _, p := range s.k.readyPods(s.ns, "registry-s3") {
		s.s3Pods[p.Name] = s.k.portForward(s.ns, p.Name, 5000)
	}
	if len(s.s3Pods) != 2 {
		t.Fatalf("want 2 ready pods, got %d", len(s.s3Pods))
	}
	var a, b string
	for _, addr := range s.s3Pods {
		if a == "" {
			a = addr
		} else {
			b = addr
		}
	}

	// An upload in two chunks: started on a, finished on b.
	jwt, status, err := bearer(a, s.s3, "repository:acme/split:push,pull")
	if err != nil || status != http.StatusOK {
		t.Fatalf("token from %s: %d %v", a, status, err)
	}
	blob := randomBytes(3 << 20)
	digest := sha256Digest(blob)
	half := len(blob) / 2
	code, h, body := do(t, http.MethodPost, "http://"+a+"/v2/acme/split/blobs/uploads/", jwt, nil, nil)
	if code != http.StatusAccepted {
		t.Fatalf("start upload on %s: %d %s", a, code, body)
	}
	loc, err := url.Parse(h.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	session := loc.RequestURI() // the same session path on either replica
	code, _, body = do(t, http.MethodPatch, "http://"+a+session, jwt, blob[:half], map[string]string{
		"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("0-%d", half-1),
	})
	if code != http.StatusAccepted {
		t.Fatalf("first chunk on %s: %d %s", a, code, body)
	}
	code, h, body = do(t, http.MethodPatch, "http://"+b+session, jwt, blob[half:], map[string]string{
		"Content-Type": "application/octet-stream", "Content-Range": fmt.Sprintf("%d-%d", half, len(blob)-1),
	})
	if code != http.StatusAccepted {
		t.Fatalf("second chunk on the other replica %s: %d %s", b, code, body)
	}
	if loc, err = url.Parse(h.Get("Location")); err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", digest)
	code, _, body = do(t, http.MethodPut, "http://"+b+loc.Path+"?"+q.Encode(), jwt, nil, nil)
	if code != http.StatusCreated {
		t.Fatalf("finish upload on %s: %d %s", b, code, body)
	}
	for _, addr := range []string{a, b} {
		code, _, got := do(t, http.MethodGet, "http://"+addr+"/v2/acme/split/blobs/"+digest, jwt, nil, nil)
		if code != http.StatusOK || sha256Digest(got) != digest {
			t.Fatalf("blob from %s: %d, %d bytes, digest %s", addr, code, len(got), sha256Digest(got))
		}
	}

	// An image pushed through one replica is served by the other.
	cfg := s.s3.dockerConfigDir(t, a)
	cfg = addCredential(t, cfg, b, s.s3)
	src := fmt.Sprintf("%s/%s:v1", s.sampleAddr, workloadRepo)
	sampleCfg := s.sample.dockerConfigDir(t, s.sampleAddr)
	dir := t.TempDir()
	if out, err := crane(t, sampleCfg, "pull", "--format", "oci", src, dir); err != nil {
		t.Fatalf("crane pull %s: %v\n%s", src, err, out)
	}
	if out, err := crane(t, cfg, "push", dir, a+"/acme/replicated:v1"); err != nil {
		t.Fatalf("crane push to %s: %v\n%s", a, err, out)
	}
	out, err := crane(t, cfg, "digest", b+"/acme/replicated:v1")
	if err != nil || strings.TrimSpace(out) != s.workloadDigest {
		t.Fatalf("the other replica serves digest %q (%v), want %s", out, err, s.workloadDigest)
	}
}

// addCredential adds the same credential for another address to a docker
// config folder.
func addCredential(t *testing.T, dir, addr string, c credential) string {
	t.Helper()
	c.dockerCfg = map[string]dockerAuth{}
	for host, a := range readDockerConfig(t, dir) {
		c.dockerCfg[host] = a
	}
	return c.dockerConfigDir(t, addr)
}

// 5. Deleting a RegistryToken revokes it within 10 seconds in every replica.
func (s *suite) revocation(t *testing.T) {
	s.k.t = t
	ctx := context.Background()
	// A second token for the sample registry, kept for step 7.
	keeper := &uniregv1.RegistryToken{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: "keeper"},
		Spec: uniregv1.RegistryTokenSpec{
			RegistryRef: uniregv1.RegistryReference{Name: sampleRegistry},
			Scopes:      []string{"oci:repository:acme/*:push", "npm:package:@acme/*:write"},
		},
	}
	if err := s.k.c.Create(ctx, keeper); err != nil {
		t.Fatal(err)
	}
	s.keeper = s.tokenCredential(t, "keeper")

	type replica struct {
		addr string
		cred credential
	}
	var replicas []replica
	for _, p := range s.k.readyPods(s.ns, sampleRegistry) {
		replicas = append(replicas, replica{s.k.portForward(s.ns, p.Name, 5000), s.sample})
	}
	for _, addr := range s.s3Pods {
		replicas = append(replicas, replica{addr, s.s3})
	}
	scope := "repository:acme/revoked:push,pull"
	for _, r := range replicas {
		if _, status, err := bearer(r.addr, r.cred, scope); err != nil || status != http.StatusOK {
			t.Fatalf("before revocation, %s refuses the token: %d %v", r.addr, status, err)
		}
	}

	start := time.Now()
	for _, name := range []string{sampleToken, "s3-ci"} {
		if err := s.k.c.Delete(ctx, &uniregv1.RegistryToken{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range replicas {
		for {
			_, status, err := bearer(r.addr, r.cred, scope)
			if err == nil && status == http.StatusUnauthorized {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s still accepts the deleted token after %s (status %d, %v)", r.addr, time.Since(start), status, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("deleted tokens refused by all %d replicas %s after deletion", len(replicas), time.Since(start).Round(time.Millisecond))

	// A real push with the old token fails, refused by the token flow; npm
	// refuses the token too.
	cfg := s.sample.dockerConfigDir(t, s.sampleAddr)
	out, err := crane(t, cfg, "push", s.workloadLayout, s.sampleAddr+"/acme/revoked:v1")
	if err == nil {
		t.Fatalf("crane push with a deleted token succeeded:\n%s", out)
	}
	if !strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(out, "401") {
		t.Fatalf("crane push with a deleted token failed for another reason:\n%s", out)
	}
	code, _, _ := do(t, http.MethodGet, "http://"+s.sampleAddr+"/npm/-/whoami", s.sample.token, nil, nil)
	if code != http.StatusUnauthorized {
		t.Fatalf("npm whoami with a deleted token: %d, want 401", code)
	}
	// The token's Secret goes with it (owner reference).
	eventually(t, time.Minute, "the deleted token's Secret to be garbage-collected", func() (bool, string) {
		err := s.k.get(s.ns, sampleToken+"-token", &corev1.Secret{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
}

// 7. Upgrade: a spec change (anonymous pull on) rolls the Deployment;
// nothing stored is lost and existing tokens keep working.
func (s *suite) upgrade(t *testing.T) {
	s.k.t = t
	ctx := context.Background()
	before := map[string]bool{}
	for _, p := range s.k.readyPods(s.ns, sampleRegistry) {
		before[p.Name] = true
	}
	reg := &uniregv1.Registry{}
	if err := s.k.get(s.ns, sampleRegistry, reg); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(reg.DeepCopy())
	reg.Spec.AnonymousScopes = []string{"oci:repository:acme/*:pull"}
	if err := s.k.c.Patch(ctx, reg, patch); err != nil {
		t.Fatal(err)
	}
	s.k.waitRegistryReady(s.ns, sampleRegistry, 1, 5*time.Minute)
	s.k.waitDeploymentRolledOut(s.ns, sampleRegistry, 5*time.Minute)
	eventually(t, 3*time.Minute, "the old pods to be replaced", func() (bool, string) {
		var list corev1.PodList
		s.k.c.List(ctx, &list, client.InNamespace(s.ns), client.MatchingLabels{"app.kubernetes.io/instance": sampleRegistry})
		var names []string
		for _, p := range list.Items {
			names = append(names, p.Name)
			if before[p.Name] || !podReady(&p) {
				return false, strings.Join(names, ", ")
			}
		}
		return len(list.Items) == 1, strings.Join(names, ", ")
	})
	addr := s.k.serviceAddress(s.ns, sampleRegistry)

	// Anonymous pull is on, and the image pushed before the upgrade is there.
	code, h, _ := do(t, http.MethodHead, "http://"+addr+"/v2/"+workloadRepo+"/manifests/v1", "", nil, map[string]string{
		"Accept": "application/vnd.oci.image.manifest.v1+json",
	})
	if code != http.StatusOK || h.Get("Docker-Content-Digest") != s.workloadDigest {
		t.Fatalf("anonymous HEAD of the workload after the upgrade: %d, digest %q, want %s", code, h.Get("Docker-Content-Digest"), s.workloadDigest)
	}
	// The kept token pushes and publishes; the package published before is installable.
	cfg := s.keeper.dockerConfigDir(t, addr)
	if out, err := crane(t, cfg, "copy", addr+"/"+workloadRepo+":v1", addr+"/"+workloadRepo+":v2"); err != nil {
		t.Fatalf("crane copy with a token issued before the upgrade: %v\n%s", err, out)
	}
	s.npmInstall(t, s.keeper.npmrcFile(t, addr))
}

// pauseImageLayout builds hack/pause as /<binName> (it sleeps until
// stopped), makes it a non-root image and writes it as an OCI layout folder
// at dir for crane; it returns the image's digest.
func pauseImageLayout(t *testing.T, binName, version, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), binName)
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./hack/pause")
	build.Dir, build.Env = repoRoot(t), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./hack/pause: %v\n%s", err, out)
	}
	img, err := imagebuild.FromBinary(bin, version)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// addArgs adds container arguments after the line of manifests that holds
// marker (a list item of args), at its indentation.
func addArgs(t *testing.T, manifests, marker string, args ...string) string {
	t.Helper()
	i := strings.Index(manifests, marker)
	if i < 0 {
		t.Fatalf("config/default no longer renders %q: update the suite", marker)
	}
	start := strings.LastIndex(manifests[:i], "\n") + 1
	end := i + strings.Index(manifests[i:], "\n")
	indent := manifests[start:i]
	var add strings.Builder
	for _, a := range args {
		add.WriteString("\n" + indent + "- " + a)
	}
	return manifests[:end] + add.String() + manifests[end:]
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
