#!/usr/bin/env bash
# Checks the serving configuration without serving: `nginx -t` on the rendered nginx.conf, then
# `gunicorn --check-config`, which also loads the app (with a small model made for the purpose).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
program="$repo/container/decision_trees"
python="$repo/.venv/bin/python"
nginx="$(command -v nginx || echo /usr/sbin/nginx)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

export SAGEMAKER_BASE_DIR="$work/opt_ml" SERVE_RUNTIME_DIR="$work/runtime"
mkdir -p "$SERVE_RUNTIME_DIR"
"$python" "$program/serve" --print-nginx-config >"$SERVE_RUNTIME_DIR/nginx.conf"
"$nginx" -t -q -e stderr -c "$SERVE_RUNTIME_DIR/nginx.conf"

PYTHONPATH="$program" "$python" "$repo/tests/iris_model.py" "$SAGEMAKER_BASE_DIR/model"
cd "$program"
"$python" -m gunicorn --check-config --config gunicorn.conf.py
echo "nginx.conf and gunicorn.conf.py are valid"
