# Sourced by train_local.sh, serve_local.sh and demo.sh: what they resolve alike.
# shellcheck shell=bash

# An existing file's absolute path: a docker mount needs one, and serve runs from its own folder.
absolute_file() {
  echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
}

# $BYOC_PREDICTOR, when set, checked and exported as an absolute path.
resolve_model_module() {
  [[ -n "${BYOC_PREDICTOR:-}" ]] || return 0
  [[ -f "$BYOC_PREDICTOR" ]] || { echo "error: BYOC_PREDICTOR=$BYOC_PREDICTOR is not a file" >&2; exit 1; }
  BYOC_PREDICTOR="$(absolute_file "$BYOC_PREDICTOR")"
  export BYOC_PREDICTOR
}

# The repository's virtual environment's Python, else the system's.
repo_python() {
  local python="$1/.venv/bin/python"
  [[ -x "$python" ]] || python=python3
  echo "$python"
}
