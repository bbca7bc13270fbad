#!/usr/bin/env bash
# make bench: starts a fresh registry (filesystem storage, token auth on) and
# the bare baseline server (`loadgen bare`), runs the standard scenarios of
# hack/loadgen against both, and writes bin/bench/results.{json,md} plus the
# targets of docs/performance.md. Not part of make test.
# The pull-through cache is measured with two more registries: an upstream
# (token auth, like the first) and a cache whose --oci-upstream names it.
# CNCF Distribution (bin/distribution, `make distribution`, pinned in
# hack/distribution) runs beside them with filesystem storage and no auth,
# and every OCI scenario it supports runs against it too (label
# distribution); so does Zot when ZOT names its binary (label zot). The
# targets report ends with the ratios unireg/distribution and unireg/zot.
# The growth scenarios (issue 21: catalog and tag lists at N repositories
# and tags, npm search at N packages, publish and packument at V versions,
# the rollout storm) populate each server through its API first, for at
# most BENCH_POPULATE_TIMEOUT a scenario.
#   BENCH_DURATION  how long each scenario runs (default 10s)
#   BENCH_ONLY      "cache": only the pull-through scenarios (and the local
#                   blob pulls the warm pull is compared with); "growth":
#                   only the growth scenarios; "s3": only the growth
#                   scenarios of a unireg on S3 (make bench-s3)
#   UNIREG_S3_ENDPOINT  set (hack/with-minio.sh sets it, with the AWS_*
#                   credentials): a unireg on that S3 (label unireg-s3) runs
#                   the catalog and tag growth scenarios at BENCH_S3_SCALE
#                   (default "100 1k": populating MinIO is slow here) and
#                   the rollout storm
#   BENCH_SCALE     the growth sizes N (default "100 10k"); "100 10k 100k"
#                   adds 100,000 repositories and tags: opt-in, populating
#                   them takes several minutes per server
#   BENCH_POPULATE_TIMEOUT  the cap on one scenario's population (default
#                   10m); a capped one is reported with the count reached
#   BENCH_WALK_TIMEOUT  the cap on one catalog or tag walk (default 10m; at
#                   100k a walk whose every page reads the whole tree takes
#                   longer); a growth scenario that fails is reported in
#                   results.md and does not stop the bench
#   BENCH_CACHE_FLAGS  more flags for the pull-through cache's registry
#                   (an A/B run: BENCH_CACHE_FLAGS="--cache-memory-bytes 0")
#   ZOT             a Zot binary (its minimal build: `GOEXPERIMENT=jsonv2
#                   CGO_ENABLED=0 go build ./cmd/zot` in its source tree);
#                   it runs twice: as zot (its defaults) and, for the push
#                   scenarios, as zot-commit (storage "commit": true, which
#                   syncs each blob before answering, as unireg does)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${BENCH_OUT:-$root/bin/bench}
duration=${BENCH_DURATION:-10s}
only=${BENCH_ONLY:-}
scale=${BENCH_SCALE:-100 10k}
populate_timeout=${BENCH_POPULATE_TIMEOUT:-10m}
walk_timeout=${BENCH_WALK_TIMEOUT:-10m}
zot=${ZOT:-}
s3_scale=${BENCH_S3_SCALE:-100 1k}
case "$only" in ""|cache|growth|s3) ;; *) echo "BENCH_ONLY=$only: want cache, growth, s3 or nothing" >&2; exit 2 ;; esac
if [ "$only" = s3 ] && [ -z "${UNIREG_S3_ENDPOINT:-}" ]; then
  echo "BENCH_ONLY=s3 needs UNIREG_S3_ENDPOINT: run it through hack/with-minio.sh (make bench-s3)" >&2; exit 2
fi
cd "$root"
go build -o bin/registry ./cmd/registry
go build -o bin/loadgen ./hack/loadgen
[ -x bin/distribution ] || { echo "no bin/distribution: run make distribution (make bench does)" >&2; exit 1; }
mkdir -p "$out" .cache
rm -f "$out/results.json" "$out/results.md"
work=$(mktemp -d "$root/.cache/bench.XXXXXX")
pids=()
# The servers' logs are kept in $out/logs (an error a scenario saw is
# explained there); their data goes.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$out/logs"; mkdir -p "$out/logs"; cp "$work"/*.log "$out/logs/" 2>/dev/null || true
  rm -rf "$work"
}
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
  --anonymous 'oci:repository:up/*:pull' ${BENCH_CACHE_FLAGS:-} >"$work/cache.log" 2>&1 &
cache_pid=$!; pids+=("$cache_pid")
wait_http "http://127.0.0.1:$cache_port/healthz"
# CNCF Distribution: the minimal configuration registry/internal/cachetest
# uses, filesystem storage in the work dir, no auth. REGISTRY_* in the
# environment would override it, and OpenTelemetry would try to export.
dist_port=$(free_port)
mkdir -p "$work/distribution"
cat >"$work/distribution/config.yml" <<END
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: "$work/distribution/storage"
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: "127.0.0.1:$dist_port"
  secret: bench
health:
  storagedriver:
    enabled: false
END
env $(env | sed -n 's/^\(REGISTRY_[^=]*\)=.*/-u \1/p') \
  OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
  bin/distribution serve "$work/distribution/config.yml" >"$work/distribution.log" 2>&1 &
dist_pid=$!; pids+=("$dist_pid")
wait_http "http://127.0.0.1:$dist_port/v2/"
# Zot, when given: storage in the work dir, no auth, the smallest
# configuration its documentation shows (not run here: this machine has no
# Zot binary).
if [ -n "$zot" ]; then
  zot_port=$(free_port)
  mkdir -p "$work/zot"
  cat >"$work/zot/config.json" <<END
{"distSpecVersion": "1.1.0",
 "storage": {"rootDirectory": "$work/zot/storage"},
 "http": {"address": "127.0.0.1", "port": "$zot_port"},
 "log": {"level": "error"}}
END
  "$zot" serve "$work/zot/config.json" >"$work/zot.log" 2>&1 &
  zot_pid=$!; pids+=("$zot_pid")
  wait_http "http://127.0.0.1:$zot_port/v2/"
  # The durable Zot: its storage option commit syncs each blob before it
  # answers, as unireg does; it runs the push scenarios (label zot-commit).
  zotc_port=$(free_port)
  mkdir -p "$work/zot-commit"
  cat >"$work/zot-commit/config.json" <<END
{"distSpecVersion": "1.1.0",
 "storage": {"rootDirectory": "$work/zot-commit/storage", "commit": true},
 "http": {"address": "127.0.0.1", "port": "$zotc_port"},
 "log": {"level": "error"}}
END
  "$zot" serve "$work/zot-commit/config.json" >"$work/zot-commit.log" 2>&1 &
  zotc_pid=$!; pids+=("$zotc_pid")
  wait_http "http://127.0.0.1:$zotc_port/v2/"
fi

# unireg on S3: the same server with its content in a bucket of the MinIO
# hack/with-minio.sh started.
if [ -n "${UNIREG_S3_ENDPOINT:-}" ]; then
  s3_port=$(free_port)
  bin/registry --listen "127.0.0.1:$s3_port" --data-dir "$work/registry-s3" \
    --s3-bucket unireg-bench --s3-endpoint "$UNIREG_S3_ENDPOINT" >"$work/registry-s3.log" 2>&1 &
  s3_pid=$!; pids+=("$s3_pid")
  wait_http "http://127.0.0.1:$s3_port/healthz"
fi
unireg_s3() {
  bin/loadgen --url "http://127.0.0.1:$s3_port" --user admin --password-file "$work/registry-s3/admin-token" \
    --pid "$s3_pid" --label unireg-s3 --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
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
distribution() {
  bin/loadgen --url "http://127.0.0.1:$dist_port" --pid "$dist_pid" --label distribution \
    --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
zot() {
  bin/loadgen --url "http://127.0.0.1:$zot_port" --pid "$zot_pid" --label zot \
    --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
zot_commit() {
  bin/loadgen --url "http://127.0.0.1:$zotc_port" --pid "$zotc_pid" --label zot-commit \
    --json "$out/results.json" "$@" | tail -n +3 >>"$out/results.md"
}
# growth runs a growth scenario with its caps; one that fails is reported
# and does not stop the bench.
growth() { "$@" --populate-timeout "$populate_timeout" --walk-timeout "$walk_timeout" || echo "bench: $1 $*: errors, see results.md" >&2; }
# peers runs loadgen against CNCF Distribution and, when given, Zot.
peers() {
  distribution "$@"
  if [ -n "$zot" ]; then zot "$@"; fi
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
# servers, so that none inherits another's write-back.
# A push scenario writes what it pushes: at 600 MB/s, 10 s of 256 MiB
# pushes on each server fill tens of GB, more than this machine's disk
# holds for the whole run. drop_pushed removes the pushed blobs' content
# (files over 512 KiB under a blobs/ folder, and the bare servers' files)
# between push scenarios: nothing reads them again (the pull scenarios push
# their own blobs after), and small objects (manifests, configs) stay.
drop_pushed() {
  find "$work" -type f -size +512k -path '*/blobs/*' -delete 2>/dev/null || true
  find "$work/bare" "$work/bare-fsync" -type f -delete 2>/dev/null || true
}
for size in 1MiB 64MiB 256MiB; do
  drop_pushed
  sync; bare --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
  sync; bare_fsync --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
  sync; unireg --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
  sync; distribution --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
  if [ -n "$zot" ]; then
    sync; zot --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
    sync; zot_commit --concurrency 1 --duration "$duration" --scenarios "blob-push-$size"
  fi
done
sync
bare --concurrency 1 --duration "$duration" --scenarios blob-pull-1MiB,blob-pull-64MiB,blob-pull-256MiB
unireg --concurrency 1 --duration "$duration" --scenarios blob-pull-1MiB,blob-pull-64MiB,blob-pull-256MiB
peers --concurrency 1 --duration "$duration" --scenarios blob-pull-1MiB,blob-pull-64MiB,blob-pull-256MiB
for target in unireg distribution ${zot:+zot zot_commit}; do
  drop_pushed
  sync; "$target" --concurrency 1 --duration "$duration" --scenarios blob-push-chunked-1MiB,blob-push-chunked-64MiB,blob-push-chunked-256MiB
done
bare --concurrency 32 --duration "$duration" --scenarios manifest-get-tag,packument-full
unireg --concurrency 32 --duration "$duration" --scenarios manifest-get-tag,manifest-get-digest,tag-list,packument-full,packument-abbreviated,tarball-get
peers --concurrency 32 --duration "$duration" --scenarios manifest-get-tag,manifest-get-digest,tag-list
unireg --concurrency 4 --duration "$duration" --scenarios npm-publish
# Memory: one 1 GiB push, then 100 concurrent chunked uploads.
unireg --concurrency 1 --requests 2 --scenarios blob-push-1024MiB
unireg --concurrency 100 --requests 200 --scenarios blob-push-chunked-16MiB
elif [ "$only" = cache ]; then
  unireg --concurrency 1 --duration "$duration" --scenarios blob-pull-64MiB,blob-pull-256MiB
fi
if [ -z "$only" ] || [ "$only" = growth ]; then
# Growth: catalog and tag lists at each size of BENCH_SCALE (one loadgen
# per server, so a larger size extends the smaller one's population), then
# the rollout storm; npm search at 10,000 packages, and publish and the
# packument at 1, 100, 1,000 and 3,000 versions (unireg only: the peers
# have no npm).
lists=""
for n in $scale; do
  lists+="catalog-first-page-$n,catalog-walk-$n,tags-list-first-page-$n,tags-walk-$n,"
done
for target in unireg distribution ${zot:+zot}; do
  growth "$target" --concurrency 4 --duration "$duration" --scenarios "${lists%,}"
  growth "$target" --scenarios rollout-storm
done
# The storm again through the pull-through cache, the image cached: against
# the local storm above.
growth cache --scenarios rollout-storm
growth unireg --concurrency 4 --duration "$duration" --scenarios npm-search-10k
for v in 1 100 1000 3000; do
  growth unireg --concurrency 1 --duration "$duration" --scenarios "packument-full-at-$v,packument-abbrev-at-$v,npm-publish-at-$v"
done
fi
if [ -z "$only" ] || [ "$only" = cache ]; then
# Pull-through: the upstream pulled directly, then cold pulls through the
# cache (a blob it has never seen per operation, so a bounded count of
# them: --requests) and warm ones (a blob it holds).
sync
upstream --concurrency 1 --duration "$duration" --scenarios blob-pull-64MiB,blob-pull-256MiB
sync; cache --concurrency 1 --requests 8 --scenarios cache-pull-cold-64MiB
sync; cache --concurrency 1 --requests 4 --scenarios cache-pull-cold-256MiB
sync; cache --concurrency 1 --duration "$duration" --scenarios cache-pull-warm-64MiB,cache-pull-warm-256MiB
fi
if [ -n "${UNIREG_S3_ENDPOINT:-}" ] && { [ -z "$only" ] || [ "$only" = s3 ]; }; then
  s3_lists=""
  for n in $s3_scale; do
    s3_lists+="catalog-first-page-$n,catalog-walk-$n,tags-list-first-page-$n,tags-walk-$n,"
  done
  growth unireg_s3 --concurrency 4 --duration "$duration" --scenarios "${s3_lists%,}"
  growth unireg_s3 --scenarios rollout-storm
fi
bin/loadgen targets "$out/results.json" | tee "$out/targets.md"
echo "results: $out/results.md, $out/results.json, $out/targets.md"
