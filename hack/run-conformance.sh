#!/usr/bin/env bash
# Runs the OCI conformance suite, every toggle on, against a freshly started
# registry. Usage: hack/run-conformance.sh token|anonymous
#   token:     the server bootstraps its admin token; the suite authenticates
#              with it (Basic at the realm, then Bearer JWTs).
#   anonymous: the server grants `*` to anonymous callers; no credentials.
# Needs bin/registry and bin/oci-conformance (make build conformance-tool).
set -euo pipefail
mode=${1:-token}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/unireg-conformance.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
args=(--listen "127.0.0.1:$port" --data-dir "$work/data" --oci-allow-sparse --log-level warn)
[ "$mode" = anonymous ] && args+=(--anonymous '*')

"$root/bin/registry" "${args[@]}" >"$work/registry.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

export OCI_REGISTRY="127.0.0.1:$port" OCI_TLS=disabled OCI_VERSION=${OCI_VERSION:-1.1}
export OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2
export OCI_RESULTS_DIR="$work/results"
export OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true OCI_DATA_SPARSE=true
export OCI_API_BLOBS_DIGEST_HEADER=true OCI_API_MANIFESTS_DIGEST_HEADER=true
if [ "$mode" = token ]; then
  export OCI_USERNAME=admin OCI_PASSWORD="$(cat "$work/data/admin-token")"
fi
mkdir -p "$OCI_RESULTS_DIR"
set +e
(cd "$OCI_RESULTS_DIR" && "$root/bin/oci-conformance") >"$work/conformance.log" 2>&1
rc=$?
set -e
summary=$(sed -n '/^Summary/,$p' "$work/conformance.log" | head -12)
echo "OCI conformance ($mode):"
grep -E '^\s*(Pass|FAIL|Skip|Error|Total)\.' "$work/conformance.log" || true
pass=$(grep -E '^\s*Pass\.' "$work/conformance.log" | grep -oE '[0-9]+$' || echo 0)
fail=$(grep -E '^\s*FAIL\.' "$work/conformance.log" | grep -oE '[0-9]+$' || echo 0)
skip=$(grep -E '^\s*Skip\.' "$work/conformance.log" | grep -oE '[0-9]+$' || echo 0)
if [ "$rc" -ne 0 ] || [ "$fail" != 0 ] || [ "$skip" != 0 ] || [ "$pass" = 0 ]; then
  grep 'failed test' "$work/conformance.log" | head -40 || true
  echo "conformance ($mode) FAILED; logs in $work" >&2
  exit 1
fi
echo "conformance ($mode): $pass passed, 0 failed, 0 skipped"
[ -n "${KEEP:-}" ] || rm -rf "$work"
