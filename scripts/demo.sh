#!/usr/bin/env bash
# The main job, for now: build the scanner, run a small program that leaks,
# dump its heap and show what holds the memory.
set -euo pipefail
source "$(dirname "$0")/deps.sh"
ml_install_deps
cd "$ML_ROOT"
ml_setup build "$ML_PY" >/dev/null
ninja -C build >/dev/null
PYTHONPATH=build/scanner "$ML_PY" examples/leaky.py "${1:-build/leaky-dump.json}"
