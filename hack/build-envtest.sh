#!/usr/bin/env bash
# Builds the envtest control plane (etcd and kube-apiserver) from source into
# bin/k8s/<versions>/ (setup-envtest's download bucket is unreachable here)
# and prints the folder for KUBEBUILDER_ASSETS. See hack/build-kube.sh.
exec "$(dirname "$0")/build-kube.sh" kube-apiserver etcd
