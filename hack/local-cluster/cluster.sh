#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, without Docker:
# containerd, runc and the CNI plugins from Debian; etcd and the Kubernetes
# components built from source (hack/build-kube.sh); everything started in
# the background as plain processes.
#
#   cluster.sh up              start it (again: harmless), print the kubeconfig path
#   cluster.sh down            stop every process, remove what up created
#   cluster.sh trust HOST:PORT let the node's containerd pull from a plain-HTTP registry
#   cluster.sh import FILE...  load OCI image archives into the node's containerd
#   cluster.sh kubeconfig      print the kubeconfig path
#
# State (PKI, configs, data, logs) lives in $LOCAL_CLUSTER_DIR (default
# .cache/local-cluster, git-ignored); sockets and containerd's runtime state
# in /run/unireg-local-cluster. Logs: $LOCAL_CLUSTER_DIR/logs/<component>.log.
# Needs root. See docs/local-cluster.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state=${LOCAL_CLUSTER_DIR:-$root/.cache/local-cluster}
run=/run/unireg-local-cluster
logs=$state/logs
pids=$run/pids # on tmpfs: gone after a reboot, so a stale PID never names another process
pki=$state/pki
kubeconfig=$state/kubeconfig
sock=$run/containerd.sock
bridge=unireg0
pod_cidr=10.88.0.0/16
service_cidr=10.0.0.0/24
api_service_ip=10.0.0.1
etcd_port=12379
node=${LOCAL_CLUSTER_NODE:-unireg-node}
pause_image=docker.io/unireg/pause:local
# Started in this order, stopped in the reverse one.
components=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# Folders the node writes outside $state; down removes those up found absent.
outside_dirs=(/var/log/containers /var/log/pods /var/lib/cni /var/lib/kubelet /run/netns)

log() { echo "local-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

kube_bin() { "$root/hack/build-kube.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; }

kctl() { "$bins/kubectl" --kubeconfig "$kubeconfig" "$@"; }

running() { # component
  local f="$pids/$1.pid"
  [ -f "$f" ] && ours "$1" "$(cat "$f")"
}

# ours tells whether pid is alive and runs the component's binary.
ours() { # component pid
  [ -r "/proc/$2/cmdline" ] && tr '\0' ' ' <"/proc/$2/cmdline" | grep -- "$1" >/dev/null
}

start() { # component command...
  local name=$1; shift
  running "$name" && return
  log "starting $name"
  setsid "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pids/$name.pid"
}

wait_for() { # description seconds command...
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what (logs in $logs)"
    sleep 0.5
  done
}

host_ip() {
  local ip
  ip=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
  [ -n "$ip" ] || ip=$(hostname -I | awk '{print $1}')
  [ -n "$ip" ] || die "cannot find this machine's IPv4 address"
  echo "$ip"
}

install_runtime() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v ip >/dev/null || missing+=(iproute2)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# PKI: one CA; the API server's serving certificate; one admin client
# certificate in system:masters that every component uses; the service
# account key pair. Generated once.
make_pki() {
  local ip=$1
  [ -f "$pki/admin.crt" ] && [ "$(cat "$pki/ip" 2>/dev/null)" = "$ip" ] && return
  log "generating PKI"
  rm -rf "$pki" && mkdir -p "$pki" && chmod 700 "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj "/CN=unireg-local-cluster-ca" 2>/dev/null
    cat >apiserver.ext <<EOF
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$node,IP:$api_service_ip,IP:$ip,IP:127.0.0.1
extendedKeyUsage=serverAuth
EOF
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 3650 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    echo "$ip" >ip
  )
}

write_configs() {
  local ip=$1
  mkdir -p "$state/cni/net.d" "$state/containerd/certs.d" "$state/volumes"
  cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$ip:6443
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
EOF
  chmod 600 "$kubeconfig"
  # restrict_oom_score_adj: this VM lacks CAP_SYS_RESOURCE, and runc fails to
  # start the pause container at oom_score_adj -998 without it.
  cat >"$state/containerd/config.toml" <<EOF
version = 2
root = "$state/containerd/root"
state = "$run/containerd"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$run/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$state/containerd/certs.d"
EOF
  cat >"$state/cni/net.d/10-unireg.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "unireg-local",
  "plugins": [
    {
      "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "$state/cni/ipam", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
address: 0.0.0.0
readOnlyPort: 0
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$sock
podLogsDir: $state/pod-logs
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
EOF
}

# record_outside_dirs remembers which of the node's outside folders were
# absent before the first up, so that down removes exactly those; and
# whether iptables already had KUBE-/CNI- rules (another cluster's), which
# down then leaves alone.
record_outside_dirs() {
  [ -f "$state/created-dirs" ] && return
  : >"$state/created-dirs"
  for d in "${outside_dirs[@]}"; do [ -e "$d" ] || echo "$d" >>"$state/created-dirs"; done
  rm -f "$state/iptables-foreign"
  for tool in iptables ip6tables; do
    command -v "$tool-save" >/dev/null || continue
    if "$tool-save" | grep -E 'KUBE-|CNI-' >/dev/null; then echo "$tool" >>"$state/iptables-foreign"; fi
  done
}

all_running() {
  for c in "${components[@]}"; do running "$c" || return 1; done
}

node_ready() {
  [ "$(kctl get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

pause_archive() {
  local out=$root/bin/images/pause.tar
  if [ ! -f "$out" ]; then
    log "building the pause image"
    mkdir -p "$root/bin/static"
    (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/static/pause ./hack/pause &&
      go run ./hack/images -out bin/images "$pause_image=bin/static/pause" >/dev/null)
  fi
  echo "$out"
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "needs root"
  mkdir -p "$logs" "$pids" "$run"
  bins=$(kube_bin | tail -1)
  if all_running && node_ready; then
    log "already up"
    echo "$kubeconfig"
    return
  fi
  if [ -n "$(ls "$pids" 2>/dev/null)" ]; then
    log "a previous cluster is partly running; stopping it first"
    cmd_down
    mkdir -p "$logs" "$pids" "$run"
  fi
  install_runtime
  local ip
  ip=$(host_ip)
  record_outside_dirs
  make_pki "$ip"
  write_configs "$ip"
  for f in "$logs"/*.log; do [ -f "$f" ] && mv "$f" "$f.previous"; done

  start containerd containerd --config "$state/containerd/config.toml"
  wait_for containerd 30 ctr --address "$sock" version
  ctr --address "$sock" -n k8s.io images import "$(pause_archive)" >/dev/null

  start etcd "$bins/etcd" --name local --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
    --initial-cluster local=http://127.0.0.1:12380 --unsafe-no-fsync
  start kube-apiserver "$bins/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 0.0.0.0 --secure-port 6443 --advertise-address "$ip" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
    --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range "$service_cidr" \
    --authorization-mode Node,RBAC --allow-privileged --enable-priority-and-fairness=false
  wait_for "the API server" 120 "$bins/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz
  start kube-controller-manager "$bins/kube-controller-manager" --kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --controllers '*,-nodeipam' --root-ca-file "$pki/ca.crt" \
    --service-account-private-key-file "$pki/sa.key" --use-service-account-credentials=false \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" --leader-elect=false
  start kube-scheduler "$bins/kube-scheduler" --kubeconfig "$kubeconfig" --bind-address 127.0.0.1 --leader-elect=false
  start kubelet "$bins/kubelet" --config "$state/kubelet.yaml" --kubeconfig "$kubeconfig" \
    --root-dir "$state/kubelet" --cert-dir "$state/kubelet/pki" --node-ip "$ip" --hostname-override "$node"
  start kube-proxy "$bins/kube-proxy" --kubeconfig "$kubeconfig" --proxy-mode iptables \
    --cluster-cidr "$pod_cidr" --hostname-override "$node" \
    --metrics-bind-address 127.0.0.1:10249 --healthz-bind-address 127.0.0.1:10256
  wait_for "node $node to be Ready" 180 node_ready
  local_volumes
  log "up: node $node is Ready; KUBECONFIG=$kubeconfig"
  echo "$kubeconfig"
}

# local_volumes: there is no storage provisioner, so up provides a few
# hostPath PersistentVolumes without a class, which claims that name no
# class (like a Registry's filesystem storage here) bind to.
local_volumes() {
  local i
  for i in 1 2 3 4; do
    mkdir -p "$state/volumes/pv$i" && chmod 0777 "$state/volumes/pv$i"
    cat <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-pv$i
  labels: {unireg.dev/local-cluster: "true"}
spec:
  capacity: {storage: 50Gi}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $state/volumes/pv$i, type: Directory}
---
EOF
  done | kctl apply -f - >/dev/null
}

stop_pid() { # component
  local f="$pids/$1.pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if ours "$1" "$pid"; then
    log "stopping $1"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

cmd_down() {
  [ "$(id -u)" = 0 ] || die "needs root"
  stop_pid kubelet
  # Containers: kill every task, then the shims exit when their task is deleted.
  if running containerd; then
    local ids id
    ids=$(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null || true)
    for id in $ids; do ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
    for id in $ids; do
      for _ in $(seq 1 20); do
        ctr --address "$sock" -n k8s.io tasks delete "$id" >/dev/null 2>&1 && break
        sleep 0.25
      done
    done
  fi
  local c i
  for ((i = ${#components[@]} - 1; i >= 0; i--)); do
    c=${components[$i]}
    [ "$c" = kubelet ] || stop_pid "$c"
  done
  # Shims left behind (say, containerd died first) still name our socket.
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
  # Pod network namespaces, the bridge, and the rules kube-proxy and the
  # CNI plugins wrote.
  for ns in /run/netns/cni-*; do
    [ -e "$ns" ] && [ -f "$state/created-dirs" ] || continue
    [ "$ns" -nt "$state/created-dirs" ] || continue # older than the cluster: not ours
    umount "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
  ip link del "$bridge" 2>/dev/null || true
  for tool in iptables ip6tables; do
    command -v "$tool-save" >/dev/null || continue
    if grep -qx "$tool" "$state/iptables-foreign" 2>/dev/null; then
      log "$tool had KUBE-/CNI- rules before this cluster: leaving them all in place"
      continue
    fi
    # (grep without -q: an early exit would fail iptables-save under pipefail)
    if "$tool-save" | grep -E 'KUBE-|CNI-' >/dev/null; then
      "$tool-save" | grep -vE 'KUBE-|CNI-' | "$tool-restore" || log "$tool-restore failed: remove the KUBE-/CNI- rules by hand"
    fi
  done
  # Mounts under our folders (kubelet volumes, containerd snapshots), deepest first.
  local m
  for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E "^($state|$run)/" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
  # cgroups the kubelet created (cgroup v1 and v2 layouts).
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/kubepods.slice; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  if [ -f "$state/created-dirs" ]; then
    while read -r d; do rm -rf "$d"; done <"$state/created-dirs"
  fi
  rm -rf "$run"
  # Keep the PKI (reused by the next up) and the logs (for the post-mortem).
  rm -rf "$state/containerd" "$state/etcd" "$state/kubelet" "$state/pod-logs" \
    "$state/cni" "$state/volumes" "$state/created-dirs" "$state/iptables-foreign"
  log "down"
}

cmd_trust() { # HOST:PORT
  local host=${1:?usage: cluster.sh trust HOST:PORT}
  mkdir -p "$state/containerd/certs.d/$host"
  cat >"$state/containerd/certs.d/$host/hosts.toml" <<EOF
server = "http://$host"

[host."http://$host"]
  capabilities = ["pull", "resolve"]
EOF
}

cmd_import() {
  local f
  for f in "$@"; do ctr --address "$sock" -n k8s.io images import "$f"; done
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  trust) shift; cmd_trust "$@" ;;
  import) shift; cmd_import "$@" ;;
  kubeconfig) echo "$kubeconfig" ;;
  hosts-dir) echo "$state/containerd/certs.d" ;; # containerd's config_path
  ctr) shift; exec ctr --address "$sock" "$@" ;;
  *) echo "usage: $0 up|down|trust HOST:PORT|import FILE...|kubeconfig|hosts-dir|ctr ARGS..." >&2; exit 2 ;;
esac
