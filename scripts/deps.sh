#!/usr/bin/env bash
# Installs what building and testing meliae needs, from Debian 12's
# packages, and only what is missing (no apt-get update when all is there).
# Sourced by scripts/demo.sh and scripts/test.sh; run as root (or with sudo
# available).
set -euo pipefail

ML_DEBS=(
  build-essential pkg-config meson ninja-build
  python3 python3-dev python3-pytest python3-mesonpy python3-venv python3-pip
  zlib1g-dev libcmocka-dev libuv1-dev liblmdb-dev libcjson-dev scdoc
  libbz2-dev liblzma-dev   # scanner/hidden.c: bz_stream, lzma_memusage()
  prometheus      # tests/daemon: a real Prometheus scrapes --metrics-listen
  chromium        # tests/cli: meliae-cli report --html in a headless browser
  python3-numpy python3-pandas   # tests/py/test_scanner_numpy.py, Debian's versions
  debootstrap     # scripts/sid.sh: Debian sid's CPython 3.14 and 3.15, in a chroot
  gdb             # meliae-cli attach to Python 3.9-3.13 (and its tests)
)

ml_install_deps() {
  local missing=() p
  for p in "${ML_DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "meliae: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Debian's interpreter is the reference; a pyenv shim may shadow python3.
ML_PY=/usr/bin/python3

# Prints the environment meson needs for interpreter PY: Debian 12's meson
# 1.0.1 imports distutils to inspect an interpreter, and CPython 3.12
# removed it.  The shim answers the two questions it asks.  (Also needed
# when ninja re-runs meson.)
ml_meson_env() {
  if ! "$1" -c 'import distutils' 2>/dev/null; then
    echo "PYTHONPATH=$ML_ROOT/.ci/distutils-shim"
  fi
}

# meson setup for DIR with Python interpreter PY (extra args follow).
ml_setup() {
  local dir=$1 py=$2; shift 2
  local env=(env $(ml_meson_env "$py"))
  if [ -f "$dir/build.ninja" ]; then
    "${env[@]}" meson setup --reconfigure "$dir" -Dpython="$py" "$@" >/dev/null
  else
    "${env[@]}" meson setup "$dir" -Dpython="$py" "$@" >/dev/null
  fi
}

ML_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
