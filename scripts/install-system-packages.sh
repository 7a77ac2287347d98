#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages a target needs: `demo` (run the stack natively) or `test` (everything
# the test tiers and linters use). Installs only what is missing; as a normal user it uses sudo if it can,
# otherwise it prints the command to run.
set -euo pipefail

demo_packages=(python3-venv nginx curl)
test_packages=("${demo_packages[@]}" shellcheck wrk docker.io debootstrap docker-registry iproute2 docker-compose)

case "${1:-}" in
  demo) wanted=("${demo_packages[@]}") ;;
  test) wanted=("${test_packages[@]}") ;;
  *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for package in "${wanted[@]}"; do
  # nginx may come from another flavour (nginx-light, nginx-full): the command is what counts.
  if [[ "$package" == nginx ]] && command -v nginx >/dev/null; then continue; fi
  installed "$package" || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "error: these packages are missing and this is not a Debian/Ubuntu system: ${missing[*]}" >&2
  exit 1
fi
if [[ $EUID -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "error: missing packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
