#!/usr/bin/env bash
# Train on local_test/test_dir, which stands in for /opt/ml.
#   train_local.sh         run container/decision_trees/train natively (with the repo's .venv if any)
#   train_local.sh IMAGE   run it in the image as SageMaker does: docker run IMAGE train
# Without a Docker engine that answers, IMAGE is ignored and train runs natively.
# Only the outputs of the previous run (test_dir/model, test_dir/output) are removed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
test_dir="$here/test_dir"
image="${1:-}"

rm -rf "$test_dir/model" "$test_dir/output"
mkdir -p "$test_dir/model" "$test_dir/output"

if [[ -n "$image" ]]; then
  if docker info >/dev/null 2>&1; then
    exec docker run --rm -v "$test_dir:/opt/ml" "$image" train
  fi
  echo "no Docker engine answers: running train natively instead of in $image" >&2
fi

python="$repo/.venv/bin/python"
[[ -x "$python" ]] || python=python3
SAGEMAKER_BASE_DIR="$test_dir" exec "$python" "$repo/container/decision_trees/train"
