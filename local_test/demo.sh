#!/usr/bin/env bash
# The whole job locally: train on test_dir, serve the model, predict payload.csv, print, stop.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
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

echo "predictions for local_test/payload.csv:"
"$here/predict.sh" "$here/payload.csv"
