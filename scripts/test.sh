#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   1. the unit (cmocka) and Python tests against Debian's python3;
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer, less
#      the 'big' suite (10M objects, containers of 10M entries: once is
#      enough, and ASan would take an hour);
#   3. the Python tests on every other CPython 3.9-3.13 that pyenv has
#      (3.11 is Debian's);
#   4. the unit and Python tests on Debian sid's CPython 3.14 and 3.15, in
#      a chroot (scripts/sid.sh), and applications on both streaming to
#      this build's daemon (tests/pipeline/test_newer_pythons.py);
#   5. `pip install --no-build-isolation .` into a venv, then an import
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

# Commands of run_suite run through this prefix (the sid chroot's runner
# for 3.14 and 3.15).
runner=()

# run_suite NAME PYTHON BUILDDIR [meson test args]
run_suite() {
  local name=$1 py=$2 dir=$3; shift 3
  local env=(env $(ml_meson_env "$py"))
  echo "== $name" >&2
  local log
  log=$(mktemp)
  if "${runner[@]}" "${env[@]}" ninja -C "$dir" >"$log" 2>&1 \
     && "${runner[@]}" "${env[@]}" meson test -C "$dir" --print-errorlogs "$@" >>"$log" 2>&1; then
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

# The scanner with today's numpy and pandas (pinned in
# tests/py/requirements-numpy.txt), beside Debian's older ones above.
echo "== numpy and pandas from the package index" >&2
npvenv=${ML_NUMPY_VENV:-/var/cache/meliae/numpy-venv}
if { [ -x "$npvenv/bin/python" ] || "$ML_PY" -m venv "$npvenv"; } \
   && "$npvenv/bin/pip" install -q -r tests/py/requirements-numpy.txt >/dev/null 2>&1 \
   && (cd tests/py && PYTHONPATH="$ML_ROOT/build/scanner" PYTHONDONTWRITEBYTECODE=1 \
       MELIAE_REQUIRE_NUMPY=1 "$npvenv/bin/python" -m unittest -v test_scanner_numpy 2>&1 | tail -n 15 >&2; \
       exit "${PIPESTATUS[0]}"); then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  failures+=("numpy/pandas from the index")
fi

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

# CPython 3.14 and 3.15: Debian packages them only in sid, whose builds
# need sid's glibc, so they run in a chroot made by debootstrap
# (scripts/sid.sh; about a minute the first time, then reused).
source "$ML_ROOT/scripts/sid.sh"
if ml_sid_setup; then
  runner=(ml_sid_run "$ML_ROOT")
  for minor in "${ML_SID_PYTHONS[@]}"; do
    if "${runner[@]}" sh -c '
         if [ -f "$0/build.ninja" ]; then r=--reconfigure; else r=; fi
         meson setup $r "$0" -Dpython="$1" -Dtests=enabled -Dman=disabled \
           -Dsystemd=disabled >/dev/null' "build-py$minor" "/usr/bin/python$minor"; then
      run_suite "python $minor (Debian sid, chroot)" "/usr/bin/python3" \
        "build-py$minor" --suite python --suite unit
    else
      failures+=("python $minor setup")
      failed=$((failed + 1))
    fi
  done
  runner=()
  export MELIAE_SID_RUN="$ML_ROOT/scripts/sid.sh" MELIAE_SID_PYTHONS="${ML_SID_PYTHONS[*]}"
  run_suite "3.14 and 3.15 applications -> this build's daemon" "$ML_PY" build --suite sid
  unset MELIAE_SID_RUN MELIAE_SID_PYTHONS
  # meliae-cli attach into unmodified 3.14 and 3.15 processes (PEP 768),
  # with the meliae built for each in the chroot
  export ML_SID_ROOT MELIAE_TEST_BUILD_314="$ML_ROOT/build-py3.14/scanner" \
    MELIAE_TEST_BUILD_315="$ML_ROOT/build-py3.15/scanner"
  run_suite "attach to 3.14 and 3.15 (PEP 768)" "$ML_PY" build daemon_attach
  unset MELIAE_TEST_BUILD_314 MELIAE_TEST_BUILD_315
else
  failures+=("sid chroot")
  failed=$((failed + 1))
fi

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

# `pip install .` as a pyenv user would, with build isolation: pip fetches
# meson-python and a meson that inspects 3.12+ without distutils; no
# PYTHONPATH, no shim.  On the newest pyenv interpreter here.
py=$(ls -d "$pyenv_versions"/3.1[2-9].*/bin/python3.1[2-9] 2>/dev/null | sort -V | tail -n 1 || true)
if [ -n "$py" ]; then
  echo "== pip install . ($py, build isolation)" >&2
  venv=$(mktemp -d)
  if "$py" -m venv "$venv" \
     && (cd "$venv" && env -u PYTHONPATH "$venv/bin/pip" install -q "$ML_ROOT" >"$venv/pip.log" 2>&1 \
         || { tail -n 30 "$venv/pip.log" >&2; false; }) \
     && (cd "$venv" && "$venv/bin/python" -c '
import gc, os, tempfile, meliae.scanner as s, meliae.loader as l
p = os.path.join(tempfile.mkdtemp(), "x.json")
s.dump_all_objects(p)
om = l.load(p, show_prog=False)
assert len(om) > len(gc.get_objects()), len(om)
print("pip-installed meliae dumps and loads", len(om), "objects")') \
     && "$venv/bin/meliae-cli" --version; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("pip install . ($py)")
  fi
  rm -rf "$venv"
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo "failed: ${failures[*]}" >&2
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
