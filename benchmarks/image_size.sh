#!/usr/bin/env bash
# Where the image's bytes are: its size, its layers and the largest parts of its virtual environment.
#   docker build -t decision-trees container/ && benchmarks/image_size.sh [IMAGE]
set -euo pipefail

image="${1:-decision-trees}"
size="$(docker image inspect --format '{{.Size}}' "$image")"
echo "$image: $((size / 1000000)) MB"
echo
echo "layers (MB):"
docker history --human=false --format '{{.Size}}\t{{.CreatedBy}}' "$image" |
  awk -F '\t' '$1 > 0 { printf "%8.1f  %s\n", $1 / 1e6, substr($2, 1, 90) }'
echo
echo "virtual environment (MiB): largest packages, then bytecode (__pycache__) in all of it"
docker run --rm --entrypoint sh "$image" -c '
  du -sm /opt/venv/lib/python3*/site-packages/* | sort -rn | head -8
  find /opt/venv -type d -name __pycache__ -prune -exec du -sk {} + | awk "{ s += \$1 } END { print int(s / 1024) \"\tbytecode\" }"'
