#!/usr/bin/env bash
# Builds Kubernetes components and etcd from source, through the Go module
# proxy (no release bucket is reachable here), into
# bin/k8s/<k8s version>-etcd-<etcd version>/. Only the components missing
# from that folder are built, so a pin change rebuilds and nothing else does.
# Prints the folder.
#
#   hack/build-kube.sh kube-apiserver etcd          # envtest
#   hack/build-kube.sh kubelet kube-proxy kubectl   # the local cluster
#
# Cold: about 12 minutes for kube-apiserver on 2 cores, about 10 more for the
# node components (they share most packages); with a warm cache, seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
k8s_version=${K8S_VERSION:-v1.37.2}
etcd_version=${ETCD_VERSION:-v3.6.16}
dest="$root/bin/k8s/$k8s_version-etcd-$etcd_version"
mkdir -p "$dest"

kube_missing=()
build_etcd=false
for c in "$@"; do
  [ -x "$dest/$c" ] && continue
  case "$c" in
    etcd) build_etcd=true ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kube-proxy | kubelet | kubectl) kube_missing+=("$c") ;;
    *) echo "build-kube.sh: unknown component $c" >&2; exit 2 ;;
  esac
done
if [ ${#kube_missing[@]} -eq 0 ] && ! $build_etcd; then
  echo "$dest"
  exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/unireg-kube.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ ${#kube_missing[@]} -gt 0 ]; then
  # k8s.io/kubernetes replaces its staging modules with local folders; a
  # wrapper module replaces each with the published v0.x.y instead. The list
  # comes from k8s.io/kubernetes's own go.mod.
  staging_version="v0${k8s_version#v1}"
  mkdir -p "$work/kube" && cd "$work/kube"
  go mod init unireg.local/kube >/dev/null 2>&1
  modfile=$(go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  replaces=$(sed -n '/^replace (/,/^)/p' "$modfile" | grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging' | cut -d' ' -f1 | sort -u)
  for m in $replaces; do
    go mod edit -replace "$m=$m@$staging_version"
  done
  go mod edit -require "k8s.io/kubernetes@$k8s_version"
  pkgs=()
  {
    echo '//go:build tools'
    echo
    echo 'package tools'
    echo
    for c in "${kube_missing[@]}"; do
      pkg="k8s.io/kubernetes/cmd/$c"
      pkgs+=("$pkg")
      echo "import _ \"$pkg\""
    done
  } > tools.go
  go mod tidy >/dev/null 2>&1 || go mod tidy
  # Without the version ldflags the binaries report v0.0.0-master+$Format:%H$,
  # which kubectl and the kubelet refuse to parse.
  minor=$(echo "$k8s_version" | cut -d. -f2)
  ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  # One go build for all of them: the shared packages compile once.
  go build -ldflags "$ldflags" -o "$work/out/" "${pkgs[@]}"
  for c in "${kube_missing[@]}"; do mv "$work/out/$c" "$dest/$c"; done
fi

if $build_etcd; then
  # etcd: the server module root is package main.
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init unireg.local/etcd >/dev/null 2>&1
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null 2>&1
  go mod tidy >/dev/null 2>&1 || go mod tidy
  go build -o "$dest/etcd" go.etcd.io/etcd/server/v3
fi
echo "$dest"
