#!/usr/bin/env bash
# Builds the MinIO server the S3 tests run against, from the Go module proxy,
# into tools/bin/minio (about 4.5 minutes cold). Skips the build when the
# pinned version is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=v0.0.0-20260212201848-7aac2a2c5b7c
dest="$root/tools/bin"
stamp="$dest/minio.version"
if [ -x "$dest/minio" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
mkdir -p "$dest"
echo "building MinIO $version into $dest (a few minutes the first time)"
GOBIN="$dest" go install "github.com/minio/minio@$version"
echo "$version" >"$stamp"
