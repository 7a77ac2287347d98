#!/usr/bin/env bash
# The whole job locally: train on test_dir, serve the model, predict payload.csv, print, stop.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${PORT:-8080}"
export PORT="$port"

"$here/train_local.sh"

"$here/serve_local.sh" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true' EXIT

for _ in $(seq 600); do
  curl --silent --fail "http://127.0.0.1:$port/ping" >/dev/null && break
  kill -0 "$server" 2>/dev/null || { echo "demo: serve exited before answering /ping" >&2; exit 1; }
  sleep 0.1
done

echo "predictions for local_test/payload.csv:"
"$here/predict.sh" "$here/payload.csv"
