#!/usr/bin/env bash
# The whole job locally: train on a test directory, serve the model, predict a payload, print, stop.
#   TEST_DIR        the directory standing in for /opt/ml (default local_test/test_dir)
#   PAYLOAD         the CSV rows to predict (default local_test/payload.csv)
#   BYOC_PREDICTOR  the model module (default container/decision_trees/predictor.py)
# `make demo EXAMPLE=<name>` sets all three to one of examples/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

# shellcheck source=local_test/common.sh
source "$here/common.sh"
payload="${PAYLOAD:-$here/payload.csv}"
[[ -f "$payload" ]] || { echo "error: PAYLOAD=$payload is not a file" >&2; exit 1; }
payload="$(absolute_file "$payload")"
test_dir="${TEST_DIR:-$here/test_dir}"
[[ -d "$test_dir" ]] || { echo "error: TEST_DIR=$test_dir is not a directory" >&2; exit 1; }
export TEST_DIR
TEST_DIR="$(cd "$test_dir" && pwd)"
resolve_model_module

# Port 8080 unless PORT says otherwise or 8080 is taken, in which case any free port will do.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port="${PORT:-8080}"
if [[ -z "${PORT:-}" ]] && (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  port="$(free_port)"
fi
export PORT="$port"

"$here/train_local.sh"

"$here/serve_local.sh" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true' EXIT

ready=false
for _ in $(seq 600); do
  curl --silent --fail --max-time 2 "http://127.0.0.1:$port/ping" >/dev/null && { ready=true; break; }
  kill -0 "$server" 2>/dev/null || { echo "demo: serve exited before answering /ping" >&2; exit 1; }
  sleep 0.1
done
$ready || { echo "demo: serve did not answer /ping on port $port within 60 s" >&2; exit 1; }

echo "predictions for ${payload#"$repo/"}:"
"$here/predict.sh" "$payload"
