// Package e2e is the end-to-end suite: the operator deployed into a real
// cluster (the one in KUBECONFIG) builds a registry from config/samples, and
// real clients on the host and the cluster's own kubelet use it. The tests
// carry the build tag e2e; run them with `make test-e2e` (any cluster that
// has the images) or `make test-e2e-local` (brings up hack/local-cluster).
// docs/e2e.md lists the environment variables.
package e2e
