#!/usr/bin/env bash
# make bench: starts a fresh registry (filesystem storage, token auth on) and
# the bare baseline server (`loadgen bare`), runs the standard scenarios of
# hack/loadgen against both, and writes bin/bench/results.{json,md} plus the
# targets of docs/performance.md. Not part of make test.
#   BENCH_DURATION  how long each scenario runs (default 10s)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${BENCH_OUT:-$root/bin/bench}
duration=${BENCH_DURATION:-10s}
cd "$root"
go build -o bin/registry ./cmd/registry
go build -o bin/loadgen ./hack/loadgen
mkdir -p "$out" .cache
rm -f "$out/results.json" "$out/results.md"
work=$(mktemp -d "$root/.cache/bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_http waits until something answers HTTP at $1 (any status).
wait_http() {
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" != 000 ] && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  exit 1
}

reg_port=$(free_port)
bin/registry --listen "127.0.0.1:$reg_port" --data-dir "$work/registry" >"$work/registry.log" 2>&1 &
reg_pid=$!; pids+=("$reg_pid")
wait_http "http://127.0.0.1:$reg_port/healthz"
bare_port=$(free_port)
mkdir -p "$work/bare"
bin/loadgen bare --listen "127.0.0.1:$bare_port" --dir "$work/bare" >"$work/bare.log" 2>&1 &
bare_pid=$!; pids+=("$bare_pid")
wait_http "http://127.0.0.1:$bare_port/"

unireg() {
  bin/loadgen --url "http://127.0.0.1:$reg_port" --user admin --password-file "$work/registry/admin-token" \
    --pid "$reg_pid" --label unireg --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
bare() {
  bin/loadgen --bare --url "http://127.0.0.1:$bare_port" --pid "$bare_pid" --label bare \
    --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
{
  echo "| target | scenario | conc | requests | errors | throughput | p50 | p90 | p99 | server RSS above idle (peak) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$out/results.md"
# Pushes run from a clean page cache (sync first), alternating between the
# two servers, so that neither inherits the other's write-back.
for size in 1MiB 64MiB 256MiB; do
  sync; bare --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
  sync; unireg --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
done
sync
bare --concurrency 1 --duration "$duration" --scenarios blob-pull-1MiB,blob-pull-64MiB,blob-pull-256MiB
unireg --concurrency 1 --duration "$duration" --scenarios blob-pull-1MiB,blob-pull-64MiB,blob-pull-256MiB
sync
unireg --concurrency 1 --duration "$duration" --scenarios blob-push-chunked-1MiB,blob-push-chunked-64MiB,blob-push-chunked-256MiB
bare --concurrency 32 --duration "$duration" --scenarios manifest-get-tag,packument-full
unireg --concurrency 32 --duration "$duration" --scenarios manifest-get-tag,manifest-get-digest,tag-list,packument-full,packument-abbreviated,tarball-get
unireg --concurrency 4 --duration "$duration" --scenarios npm-publish
# Memory: one 1 GiB push, then 100 concurrent chunked uploads.
unireg --concurrency 1 --requests 2 --scenarios blob-push-1024MiB
unireg --concurrency 100 --requests 200 --scenarios blob-push-chunked-16MiB
bin/loadgen targets "$out/results.json" | tee "$out/targets.md"
echo "results: $out/results.md, $out/results.json, $out/targets.md"
