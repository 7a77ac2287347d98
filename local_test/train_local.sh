#!/usr/bin/env bash
# Train on a test directory, which stands in for /opt/ml: $TEST_DIR, by default local_test/test_dir.
#   train_local.sh         run container/decision_trees/train natively (with the repo's .venv if any)
#   train_local.sh IMAGE   run it in the image as SageMaker does: docker run IMAGE train
# $BYOC_PREDICTOR, when set, is the model module to train (examples/*/predictor.py); with IMAGE it
# is mounted over the image's /opt/program/predictor.py.
# With IMAGE and no Docker engine that answers, it stops with an error before touching the directory.
# Only the outputs of the previous run (TEST_DIR/model, TEST_DIR/output) are removed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source=local_test/common.sh
source "$here/common.sh"
test_dir="${TEST_DIR:-$here/test_dir}"
image="${1:-}"

[[ -d "$test_dir/input" ]] || {
  echo "error: TEST_DIR=$test_dir has no input folder (it stands in for /opt/ml)" >&2
  exit 1
}
test_dir="$(cd "$test_dir" && pwd)"
resolve_model_module
predictor="${BYOC_PREDICTOR:-}"

if [[ -n "$image" ]] && ! docker info >/dev/null 2>&1; then
  echo "error: no Docker engine answers (to train without the image: $0)" >&2
  exit 1
fi

rm -rf "$test_dir/model" "$test_dir/output"
mkdir -p "$test_dir/model" "$test_dir/output"

if [[ -n "$image" ]]; then
  mounts=(-v "$test_dir:/opt/ml")
  [[ -z "$predictor" ]] || mounts+=(-v "$predictor:/opt/program/predictor.py:ro")
  exec docker run --rm "${mounts[@]}" "$image" train
fi

python="$(repo_python "$repo")"
SAGEMAKER_BASE_DIR="$test_dir" exec "$python" "$repo/container/decision_trees/train"
