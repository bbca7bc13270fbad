//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uniregv1 "github.com/unireg/unireg/api/v1alpha1"
)

// cluster is the cluster under test and the ways the suite talks to it.
type cluster struct {
	t       *testing.T // the running step: failures go here
	root    *testing.T // the whole suite: cleanups go here
	cfg     *rest.Config
	c       client.Client
	cs      *kubernetes.Clientset
	kubectl string
}

func newCluster(t *testing.T) *cluster {
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("KUBECONFIG is not set: the e2e suite runs against a real cluster (make test-e2e-local brings one up)")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(uniregv1.AddToScheme(scheme))
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	kubectl := os.Getenv("E2E_KUBECTL")
	if kubectl == "" {
		kubectl = "kubectl"
	}
	return &cluster{t: t, root: t, cfg: cfg, c: c, cs: kubernetes.NewForConfigOrDie(cfg), kubectl: kubectl}
}

// run runs kubectl and returns its standard output; stdin may be empty.
func (k *cluster) run(stdin string, args ...string) (string, error) {
	cmd := exec.Command(k.kubectl, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func (k *cluster) mustRun(stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.run(stdin, args...)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

// eventually polls cond until it holds or the timeout passes; the last
// error or state it reported goes into the failure.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		if state != "" {
			last = state
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (k *cluster) get(ns, name string, obj client.Object) error {
	return k.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj)
}

// waitDeploymentRolledOut waits until every replica of a Deployment runs its
// latest template and is available.
func (k *cluster) waitDeploymentRolledOut(ns, name string, timeout time.Duration) {
	k.t.Helper()
	eventually(k.t, timeout, "Deployment "+ns+"/"+name+" rolled out", func() (bool, string) {
		d := &appsv1.Deployment{}
		if err := k.get(ns, name, d); err != nil {
			return false, err.Error()
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		s := d.Status
		state := fmt.Sprintf("generation %d observed %d, replicas %d updated %d available %d", d.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas)
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == want && s.Replicas == want && s.AvailableReplicas == want, state
	})
}

// waitRegistryReady waits for a Registry's Ready condition at its current
// generation, with the given number of ready replicas.
func (k *cluster) waitRegistryReady(ns, name string, replicas int32, timeout time.Duration) *uniregv1.Registry {
	k.t.Helper()
	reg := &uniregv1.Registry{}
	eventually(k.t, timeout, "Registry "+name+" Ready", func() (bool, string) {
		if err := k.get(ns, name, reg); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(reg.Status.Conditions, uniregv1.ConditionReady)
		if c == nil {
			return false, "no Ready condition"
		}
		state := fmt.Sprintf("Ready=%s %s: %s; readyReplicas %d; observedGeneration %d of %d", c.Status, c.Reason, c.Message, reg.Status.ReadyReplicas, reg.Status.ObservedGeneration, reg.Generation)
		return c.Status == "True" && c.ObservedGeneration == reg.Generation && reg.Status.ReadyReplicas == replicas, state
	})
	return reg
}

// readyPods lists the Ready pods of a Registry.
func (k *cluster) readyPods(ns, registry string) []corev1.Pod {
	k.t.Helper()
	var list corev1.PodList
	err := k.c.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{
		"app.kubernetes.io/name": "unireg", "app.kubernetes.io/instance": registry,
	})
	if err != nil {
		k.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			out = append(out, p)
		}
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// portForward forwards a local port to a pod's port, the way `kubectl
// port-forward` does (through the API server and the kubelet), and returns
// the local host:port. It works on any cluster, whatever the network.
func (k *cluster) portForward(ns, pod string, port int) string {
	k.t.Helper()
	transport, upgrader, err := spdy.RoundTripperFor(k.cfg)
	if err != nil {
		k.t.Fatal(err)
	}
	req := k.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward")
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, req.URL())
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		k.t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		k.t.Fatalf("port-forward to %s/%s: %v", ns, pod, err)
	case <-time.After(30 * time.Second):
		k.t.Fatalf("port-forward to %s/%s: not ready after 30s", ns, pod)
	}
	k.root.Cleanup(func() { close(stop) })
	ports, err := fw.GetPorts()
	if err != nil {
		k.t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local)
}

// serviceAddress is how the host reaches a Registry through its Service:
// the ClusterIP when this host routes to it (a node of the cluster, like the
// local cluster), else a port-forward to one of the Service's pods.
func (k *cluster) serviceAddress(ns, registry string) string {
	k.t.Helper()
	svc := &corev1.Service{}
	if err := k.get(ns, registry, svc); err != nil {
		k.t.Fatal(err)
	}
	addr := net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(svc.Spec.Ports[0].Port))
	if conn, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		conn.Close()
		return addr
	}
	pods := k.readyPods(ns, registry)
	if len(pods) == 0 {
		k.t.Fatalf("no ready pod behind Service %s", registry)
	}
	return k.portForward(ns, pods[0].Name, int(svc.Spec.Ports[0].TargetPort.IntVal))
}

// nodeAddress is where pods reach this host (MinIO runs here): E2E_HOST_IP,
// else the first node's InternalIP (right when the host is the node).
func (k *cluster) nodeAddress() string {
	k.t.Helper()
	if ip := os.Getenv("E2E_HOST_IP"); ip != "" {
		return ip
	}
	var nodes corev1.NodeList
	if err := k.c.List(context.Background(), &nodes); err != nil {
		k.t.Fatal(err)
	}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				return a.Address
			}
		}
	}
	k.t.Fatal("no node has an InternalIP; set E2E_HOST_IP")
	return ""
}

// dump logs what a person needs to see why a step failed: the operator's
// and the registries' logs, the events, and the objects.
func (k *cluster) dump(ns string) {
	for _, args := range [][]string{
		{"get", "nodes", "-o", "wide"},
		{"get", "all,registries,registrytokens,registryscopes,pvc,secrets", "-n", ns, "-o", "wide"},
		{"describe", "pods", "-n", ns},
		{"get", "pods", "-n", operatorNamespace, "-o", "wide"},
		{"logs", "-n", operatorNamespace, "deploy/unireg-controller-manager", "--tail", "200"},
		{"logs", "-n", ns, "-l", "app.kubernetes.io/name=unireg", "--all-containers", "--prefix", "--tail", "100"},
		{"get", "events", "-A", "--sort-by", ".lastTimestamp"},
	} {
		out, err := k.run("", args...)
		k.t.Logf("$ kubectl %s\n%s%v", strings.Join(args, " "), out, errOrEmpty(err))
	}
}

func errOrEmpty(err error) any {
	if err == nil {
		return ""
	}
	return err
}
