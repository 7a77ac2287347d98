#!/usr/bin/env bash
# Serve the model in local_test/test_dir/model (test_dir stands in for /opt/ml) on port $PORT (8080).
#   serve_local.sh         run container/decision_trees/serve natively (with the repo's .venv if any)
#   serve_local.sh IMAGE   run it in the image as SageMaker does: docker run IMAGE serve
# With IMAGE and no Docker engine that answers, it stops with an error.
# Stop it with Ctrl-C or SIGTERM: it finishes the requests in flight, then exits.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
test_dir="$here/test_dir"
port="${PORT:-8080}"
image="${1:-}"

if [[ -n "$image" ]]; then
  if ! docker info >/dev/null 2>&1; then
    echo "error: no Docker engine answers (to serve without the image: $0)" >&2
    exit 1
  fi
  # No --init: serve itself is PID 1, as on SageMaker, and handles SIGTERM and Ctrl-C.
  exec docker run --rm -p "127.0.0.1:$port:8080" -v "$test_dir:/opt/ml:ro" "$image" serve
fi

python="$repo/.venv/bin/python"
[[ -x "$python" ]] || python=python3
SAGEMAKER_BASE_DIR="$test_dir" SAGEMAKER_BIND_TO_PORT="$port" \
  exec "$python" "$repo/container/decision_trees/serve"
