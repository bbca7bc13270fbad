#!/usr/bin/env bash
# kind-trust.sh CLUSTER HOST:PORT lets every node of a kind cluster pull from
# a plain-HTTP registry at HOST:PORT (the e2e suite's E2E_NODE_TRUST on kind;
# the cluster must use hack/kind.yaml). Not run on the CI machine, which has
# no Docker.
set -euo pipefail
cluster=${1:?usage: kind-trust.sh CLUSTER HOST:PORT}
host=${2:?usage: kind-trust.sh CLUSTER HOST:PORT}
for node in $(${KIND:-kind} get nodes --name "$cluster"); do
  docker exec -i "$node" sh -c "mkdir -p '/etc/containerd/certs.d/$host' && cat > '/etc/containerd/certs.d/$host/hosts.toml'" <<TOML
server = "http://$host"

[host."http://$host"]
  capabilities = ["pull", "resolve"]
TOML
done
