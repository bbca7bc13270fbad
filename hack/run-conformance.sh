#!/usr/bin/env bash
# Runs the OCI conformance suite, every toggle on, against a freshly started
# registry, and fails unless every test passed and none was skipped.
# Usage: hack/run-conformance.sh token|anonymous
#   token:     the server bootstraps its admin token; the suite authenticates
#              with it (Basic at the token realm, then Bearer JWTs).
#   anonymous: the server grants `*` to anonymous callers; no credentials.
# With UNIREG_S3_ENDPOINT set (hack/with-minio.sh does), the server stores
# everything in a fresh bucket there instead of the filesystem.
# Needs bin/registry and bin/oci-conformance (make build conformance-tool).
# KEEP=1 keeps the work folder (logs, results) even on success.
set -euo pipefail
mode=${1:-token}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/unireg-conformance.XXXXXX")
args=(--listen 127.0.0.1:0 --data-dir "$work/data" --oci-allow-sparse --log-format json)
[ "$mode" = anonymous ] && args+=(--anonymous '*')
backend=filesystem
if [ -n "${UNIREG_S3_ENDPOINT:-}" ]; then
  backend=s3
  args+=(--s3-endpoint "$UNIREG_S3_ENDPOINT" --s3-bucket "conformance-$mode-$$")
fi

"$root/bin/registry" "${args[@]}" >"$work/registry.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
addr=
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*"msg":"listening","address":"\([^"]*\)".*/\1/p' "$work/registry.log")
  [ -n "$addr" ] && break
  kill -0 $pid 2>/dev/null || { cat "$work/registry.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "registry did not start" >&2; cat "$work/registry.log" >&2; exit 1; }

export OCI_REGISTRY="$addr" OCI_TLS=disabled OCI_VERSION=${OCI_VERSION:-1.1}
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
count() { grep -E "^\s*$1\.+:" "$work/conformance.log" | grep -oE '[0-9]+$' || echo 0; }
pass=$(count Pass) fail=$(count FAIL) skip=$(count Skip)
echo "OCI conformance ($mode, $backend, every toggle on): pass=$pass fail=$fail skip=$skip (exit $rc)"
if [ "$rc" -ne 0 ] || [ "$fail" != 0 ] || [ "$skip" != 0 ] || [ "$pass" = 0 ]; then
  grep 'failed test' "$work/conformance.log" | head -40 || true
  echo "conformance ($mode) FAILED; logs and results in $work" >&2
  exit 1
fi
[ -n "${KEEP:-}" ] || rm -rf "$work"
