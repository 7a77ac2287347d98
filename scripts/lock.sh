#!/usr/bin/env bash
# `make lock`: pins every package the image and the tests install, dependencies included, with the
# hashes of their files. requirements-dev.in, which includes container/requirements.in, becomes
# requirements-dev.txt; then container/requirements.in becomes container/requirements.txt (what the
# image installs), held to the dev lock's versions. The tests thus run what the image runs, and the
# one resolution that has them both decides the versions: resolving the image first could pick a
# version that a tool excludes, and leave no dev lock at all. A pin already in a lock stays unless
# an edit of the inputs moves it; UPGRADE=1 lets every pin move to the newest version allowed.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}

# The image's Python: CPython 3.11 (Debian bookworm's python3, glibc 2.36), installing wheels only.
# Images are built on x86_64 and on aarch64 (Graviton, Apple silicon): each lock is resolved for the
# first, then again for the second, which must pick the same pins. A lock lists the hashes of every
# file of each pinned version, so the one lock installs on both.
PLATFORM=x86_64-manylinux_2_36
ALSO_ON=aarch64-manylinux_2_36
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

compile() {
    "$UV" pip compile --quiet --generate-hashes --only-binary :all: --python-version 3.11 \
        --custom-compile-command "make lock" "$@"
}

lock() {  # lock OUTPUT INPUT... : resolve INPUT into OUTPUT, and check it on $ALSO_ON
    local output=$1 again
    shift
    again="$work/$(basename "$output")"
    local upgrade=()
    if [[ ${UPGRADE:-} == 1 ]]; then
        upgrade=(--upgrade)
    fi
    compile "${upgrade[@]}" --python-platform "$PLATFORM" --output-file "$output" "$@"
    cp "$output" "$again"
    compile --python-platform "$ALSO_ON" --output-file "$again" "$@"
    if ! diff -u "$output" "$again"; then
        echo "error: $output: $ALSO_ON needs other pins (the diff above); the image would differ" >&2
        return 1
    fi
}

lock requirements-dev.txt requirements-dev.in
lock container/requirements.txt container/requirements.in --constraint requirements-dev.txt
