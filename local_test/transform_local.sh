#!/usr/bin/env bash
# A batch transform job, locally, as SageMaker runs one: every file of INPUT_DIR through N
# instances of `serve`, one OUTPUT_DIR/<file>.out per input file (local_test/transform.py).
#   transform_local.sh INPUT_DIR OUTPUT_DIR [--instances N] [--join-source Input] ...
# The model is the one in $TEST_DIR/model (default local_test/test_dir: run train_local.sh first).
# `transform_local.sh --help` lists every option (SplitType, BatchStrategy, MaxPayloadInMB, ...).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source=local_test/common.sh
source "$here/common.sh"
test_dir="${TEST_DIR:-$here/test_dir}"

[[ -d "$test_dir" ]] || { echo "error: TEST_DIR=$test_dir is not a directory" >&2; exit 1; }
resolve_model_module
SAGEMAKER_BASE_DIR="$(cd "$test_dir" && pwd)" exec "$(repo_python "$repo")" "$here/transform.py" "$@"
