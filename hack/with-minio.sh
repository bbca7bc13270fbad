#!/usr/bin/env bash
# Runs a command with a fresh MinIO server: starts tools/bin/minio (see
# hack/install-minio.sh) on a free loopback port with a temporary data dir,
# exports UNIREG_S3_ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
# runs "$@", and stops MinIO whatever happens.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
minio=${UNIREG_MINIO:-$root/tools/bin/minio}
[ -x "$minio" ] || { echo "no MinIO at $minio: run hack/install-minio.sh" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/unireg-minio.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=unireg-ci AWS_SECRET_ACCESS_KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
for attempt in 1 2 3 4 5; do
  port=$(( 20000 + RANDOM % 20000 ))
  MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off MINIO_UPDATE=off \
    "$minio" server "$dir/data" --address "127.0.0.1:$port" --console-address "127.0.0.1:$((port + 1))" --quiet >"$dir/minio.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/minio/health/live" >/dev/null 2>&1 && break 2
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=
done
[ -n "$pid" ] || { echo "MinIO did not start:" >&2; cat "$dir/minio.log" >&2; exit 1; }
export UNIREG_S3_ENDPOINT="http://127.0.0.1:$port"
"$@"
