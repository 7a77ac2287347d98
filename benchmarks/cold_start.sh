#!/usr/bin/env bash
# How fast the image starts, as SageMaker starts it: the time from `docker run IMAGE serve` to the first
# /ping answered 200, and the wall time of `docker run IMAGE train` on local_test/test_dir. Both are
# dominated by importing the libraries, so they show what the image's bytecode is worth.
# --serverless serves as a serverless endpoint may run the image: a read-only root, /tmp the only
# writable place, an unprivileged user and 1 GB (ModelSetupTime bills this start).
#   docker build -t decision-trees container/ && benchmarks/cold_start.sh [--serverless] [IMAGE] [RUNS]
set -euo pipefail

serve_options=()
mode="default"
if [[ "${1:-}" == "--serverless" ]]; then
  serve_options=(--read-only --tmpfs /tmp --user 1000:1000 --memory 1g)
  mode="serverless"
  shift
fi
image="${1:-decision-trees}"
runs="${2:-3}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d)"
container=""
cleanup() {
  if [[ -n "$container" ]]; then docker rm -f "$container" >/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT

milliseconds() { echo $(($(date +%s%N) / 1000000)); }

for run in $(seq "$runs"); do
  rm -rf "$work/ml" && mkdir "$work/ml" && cp -r "$repo/local_test/test_dir/input" "$work/ml/"
  start="$(milliseconds)"
  docker run --rm --volume "$work/ml:/opt/ml" "$image" train >/dev/null
  train_ms=$(($(milliseconds) - start))

  start="$(milliseconds)"
  container="$(docker run --detach --publish 127.0.0.1::8080 "${serve_options[@]}" \
    --volume "$work/ml/model:/opt/ml/model:ro" "$image" serve)"
  port="$(docker port "$container" 8080/tcp | head -n 1)"
  port="${port##*:}"
  # Bounded: a server that never answers ends the benchmark after 60 s.
  for _ in $(seq 3000); do
    if curl --silent --fail --output /dev/null "http://127.0.0.1:$port/ping"; then break; fi
    sleep 0.02
  done
  ping_ms=$(($(milliseconds) - start))
  curl --silent --fail --output /dev/null "http://127.0.0.1:$port/ping"
  docker rm -f "$container" >/dev/null
  container=""
  echo "$image ($mode) run $run: train ${train_ms} ms, first /ping 200 after ${ping_ms} ms"
done
