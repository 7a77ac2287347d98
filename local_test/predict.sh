#!/usr/bin/env bash
# Post FILE to the local server's /invocations and print the answer; exit non-zero on an HTTP error.
#   predict.sh FILE [CONTENT_TYPE] [ACCEPT]     defaults: text/csv, text/csv; port from $PORT (8080)
set -euo pipefail

file="${1:?usage: predict.sh FILE [CONTENT_TYPE] [ACCEPT]}"
content_type="${2:-text/csv}"
accept="${3:-text/csv}"

curl --silent --show-error --fail-with-body \
  --data-binary "@$file" \
  -H "Content-Type: $content_type" \
  -H "Accept: $accept" \
  "http://127.0.0.1:${PORT:-8080}/invocations"
