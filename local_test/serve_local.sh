#!/usr/bin/env bash
# Serve the model in a test directory's model folder on port $PORT (8080). The test directory stands
# in for /opt/ml: $TEST_DIR, by default local_test/test_dir.
#   serve_local.sh         run container/decision_trees/serve natively (with the repo's .venv if any)
#   serve_local.sh IMAGE   run it in the image as SageMaker does: docker run IMAGE serve
# $BYOC_PREDICTOR, when set, is the model module that trained the model (examples/*/predictor.py);
# with IMAGE it is mounted over the image's /opt/program/predictor.py.
# With IMAGE and no Docker engine that answers, it stops with an error.
# Stop it with Ctrl-C or SIGTERM: it finishes the requests in flight, then exits.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source=local_test/common.sh
source "$here/common.sh"
test_dir="${TEST_DIR:-$here/test_dir}"
port="${PORT:-8080}"
image="${1:-}"

[[ -d "$test_dir" ]] || { echo "error: TEST_DIR=$test_dir is not a directory" >&2; exit 1; }
test_dir="$(cd "$test_dir" && pwd)"
resolve_model_module
predictor="${BYOC_PREDICTOR:-}"

if [[ -n "$image" ]]; then
  if ! docker info >/dev/null 2>&1; then
    echo "error: no Docker engine answers (to serve without the image: $0)" >&2
    exit 1
  fi
  mounts=(-v "$test_dir:/opt/ml:ro")
  [[ -z "$predictor" ]] || mounts+=(-v "$predictor:/opt/program/predictor.py:ro")
  # No --init: serve itself is PID 1, as on SageMaker, and handles SIGTERM and Ctrl-C.
  exec docker run --rm -p "127.0.0.1:$port:8080" "${mounts[@]}" "$image" serve
fi

python="$(repo_python "$repo")"
SAGEMAKER_BASE_DIR="$test_dir" SAGEMAKER_BIND_TO_PORT="$port" \
  exec "$python" "$repo/container/decision_trees/serve"
