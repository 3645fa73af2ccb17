#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. the unit (cmocka) and Python tests against Debian's python3;
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer, less
#      the 'big' suite (10M objects, containers of 10M entries: once is
#      enough, and ASan would take an hour);
#   3. the Python tests on every other CPython 3.9-3.13 that pyenv has;
#   4. `pip install --no-build-isolation .` into a venv, then an import
#      smoke test from outside the source tree and both executables from
#      the venv's bin/.
# Ends with one line "N passed, M failed" (meson test runs, counted).
set -euo pipefail
source "$(dirname "$0")/deps.sh"
ml_install_deps
cd "$ML_ROOT"

passed=0
failed=0
failures=()

# run_suite NAME PYTHON BUILDDIR [meson test args]
run_suite() {
  local name=$1 py=$2 dir=$3; shift 3
  local env=(env $(ml_meson_env "$py"))
  echo "== $name" >&2
  local log
  log=$(mktemp)
  if "${env[@]}" ninja -C "$dir" >"$log" 2>&1 \
     && "${env[@]}" meson test -C "$dir" --print-errorlogs "$@" >>"$log" 2>&1; then
    :
  else
    failures+=("$name")
    # Why, in the CI log: each failing test's own output, bounded.
    grep -E -B2 -A40 '^(FAIL|ERROR):|Traceback|^\[  FAILED|runtime error|ERROR: AddressSanitizer' \
      "$log" | head -n 400 >&2 || true
  fi
  tail -n 12 "$log" >&2
  local ok fail timeout
  ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  timeout=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0} + ${timeout:-0}))
  if [ -z "$ok" ]; then failed=$((failed + 1)); fi   # did not even run
  rm -f "$log"
}

ml_setup build "$ML_PY" -Dtests=enabled
run_suite "debian python3 ($("$ML_PY" -V 2>&1))" "$ML_PY" build

ml_setup build-asan "$ML_PY" -Dtests=enabled -Db_sanitize=address,undefined \
  -Db_lundef=false -Dbuildtype=debug
run_suite "asan+ubsan" "$ML_PY" build-asan --no-suite big

pyenv_versions=${PYENV_ROOT:-$HOME/.pyenv}/versions
for minor in 3.9 3.10 3.12 3.13; do
  py=$(ls -d "$pyenv_versions/$minor".*/bin/python"$minor" 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$py" ]; then
    echo "== python $minor: not installed here, skipped" >&2
    continue
  fi
  ml_setup "build-py$minor" "$py" -Dtests=enabled
  run_suite "python $minor ($py)" "$py" "build-py$minor" --suite python
done

echo "== pip install --no-build-isolation . (venv)" >&2
venv=$(mktemp -d)
if "$ML_PY" -m venv --system-site-packages "$venv" \
   && "$venv/bin/pip" install -q --no-build-isolation --no-deps --no-index . >/dev/null \
   && (cd "$venv" && "$venv/bin/python" -c '
import gc, json, os, tempfile, meliae.scanner as s
p = os.path.join(tempfile.mkdtemp(), "x.json")
s.dump_all_objects(p)
n = sum(1 for _ in open(p))
assert n > len(gc.get_objects()), n
print("installed meliae dumps", n, "objects")') \
   && "$venv/bin/meliae-monitord" --version && "$venv/bin/meliae-cli" --version \
   && "$venv/bin/python" -m meliae run --help >/dev/null \
   && test -f "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/meliae.pth"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  failures+=("pip install")
fi
rm -rf "$venv"

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed: ${failures[*]}" >&2
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
