#!/usr/bin/env bash
# Train on local_test/test_dir, which stands in for /opt/ml.
#   train_local.sh         run container/decision_trees/train natively (with the repo's .venv if any)
#   train_local.sh IMAGE   run it in the image as SageMaker does: docker run IMAGE train
# With IMAGE and no Docker engine that answers, it stops with an error before touching test_dir.
# Only the outputs of the previous run (test_dir/model, test_dir/output) are removed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
test_dir="$here/test_dir"
image="${1:-}"

if [[ -n "$image" ]] && ! docker info >/dev/null 2>&1; then
  echo "error: no Docker engine answers (to train without the image: $0)" >&2
  exit 1
fi

rm -rf "$test_dir/model" "$test_dir/output"
mkdir -p "$test_dir/model" "$test_dir/output"

if [[ -n "$image" ]]; then
  exec docker run --rm -v "$test_dir:/opt/ml" "$image" train
fi

python="$repo/.venv/bin/python"
[[ -x "$python" ]] || python=python3
SAGEMAKER_BASE_DIR="$test_dir" exec "$python" "$repo/container/decision_trees/train"
