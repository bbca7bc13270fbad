#!/usr/bin/env bash
# make bench: starts a fresh registry (filesystem storage, token auth on) and
# the bare baseline server (`loadgen bare`), runs the standard scenarios of
# hack/loadgen against both, and writes bin/bench/results.{json,md} plus the
# targets of docs/performance.md. Not part of make test.
# The pull-through cache is measured with two more registries: an upstream
# (token auth, like the first) and a cache whose --oci-upstream names it.
#   BENCH_DURATION  how long each scenario runs (default 10s)
#   BENCH_ONLY      "cache": only the pull-through scenarios (and the local
#                   blob pulls the warm pull is compared with)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${BENCH_OUT:-$root/bin/bench}
duration=${BENCH_DURATION:-10s}
only=${BENCH_ONLY:-}
case "$only" in ""|cache) ;; *) echo "BENCH_ONLY=$only: want cache or nothing" >&2; exit 2 ;; esac
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
# The durable baseline: the same bare server syncing each file before its
# rename and the folder after it (issue 21 measures push against it).
durable_port=$(free_port)
mkdir -p "$work/bare-fsync"
bin/loadgen bare --fsync --listen "127.0.0.1:$durable_port" --dir "$work/bare-fsync" >"$work/bare-fsync.log" 2>&1 &
durable_pid=$!; pids+=("$durable_pid")
wait_http "http://127.0.0.1:$durable_port/"
# The pull-through cache: the upstream is a second unireg with token auth;
# the cache logs in to it with the upstream's admin token (the Docker token
# flow) and lets anyone pull through it, as nodes do (so it pulls
# anonymously: with --anonymous no admin token is made).
up_port=$(free_port)
bin/registry --listen "127.0.0.1:$up_port" --data-dir "$work/upstream" >"$work/upstream.log" 2>&1 &
up_pid=$!; pids+=("$up_pid")
wait_http "http://127.0.0.1:$up_port/healthz"
printf 'admin:%s\n' "$(cat "$work/upstream/admin-token")" >"$work/upstream-credentials"
cache_port=$(free_port)
bin/registry --listen "127.0.0.1:$cache_port" --data-dir "$work/cache" \
  --oci-upstream "up=http://127.0.0.1:$up_port" --oci-upstream-credentials "up=$work/upstream-credentials" \
  --anonymous 'oci:repository:up/*:pull' >"$work/cache.log" 2>&1 &
cache_pid=$!; pids+=("$cache_pid")
wait_http "http://127.0.0.1:$cache_port/healthz"

unireg() {
  bin/loadgen --url "http://127.0.0.1:$reg_port" --user admin --password-file "$work/registry/admin-token" \
    --pid "$reg_pid" --label unireg --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
bare() {
  bin/loadgen --bare --url "http://127.0.0.1:$bare_port" --pid "$bare_pid" --label bare \
    --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
bare_fsync() {
  bin/loadgen --bare --url "http://127.0.0.1:$durable_port" --pid "$durable_pid" --label bare-fsync \
    --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
upstream() {
  bin/loadgen --url "http://127.0.0.1:$up_port" --user admin --password-file "$work/upstream/admin-token" \
    --pid "$up_pid" --label upstream-direct --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
cache() {
  bin/loadgen --url "http://127.0.0.1:$cache_port" --user "" \
    --upstream-url "http://127.0.0.1:$up_port" --upstream-password-file "$work/upstream/admin-token" --cache-namespace up \
    --pid "$cache_pid" --label unireg-cache --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
{
  echo "| target | scenario | conc | requests | errors | throughput | p50 | p90 | p99 | server RSS above idle (peak) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$out/results.md"
if [ -z "$only" ]; then
# Pushes run from a clean page cache (sync first), alternating between the
# two servers, so that neither inherits the other's write-back.
for size in 1MiB 64MiB 256MiB; do
  sync; bare --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
  sync; bare_fsync --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
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
else
  unireg --concurrency 1 --duration "$duration" --scenarios blob-pull-64MiB,blob-pull-256MiB
fi
# Pull-through: the upstream pulled directly, then cold pulls through the
# cache (a blob it has never seen per operation, so a bounded count of
# them: --requests) and warm ones (a blob it holds).
sync
upstream --concurrency 1 --duration "$duration" --scenarios blob-pull-64MiB,blob-pull-256MiB
sync; cache --concurrency 1 --requests 8 --scenarios cache-pull-cold-64MiB
sync; cache --concurrency 1 --requests 4 --scenarios cache-pull-cold-256MiB
sync; cache --concurrency 1 --duration "$duration" --scenarios cache-pull-warm-64MiB,cache-pull-warm-256MiB
bin/loadgen targets "$out/results.json" | tee "$out/targets.md"
echo "results: $out/results.md, $out/results.json, $out/targets.md"
