#!/usr/bin/env bash
# CPython 3.14 and 3.15 as Debian packages them, in a Debian unstable (sid)
# chroot: Debian 12 has neither, and sid's builds need sid's glibc.  The
# chroot is made once with debootstrap from Debian's archive (nothing else
# is downloaded) and reused while its package list is unchanged; the tests
# run inside it natively, on this checkout and /tmp bind-mounted at the
# same paths, in a private mount namespace (nothing stays mounted).
#
# Sourced by scripts/test.sh; also runnable:
#   bash scripts/sid.sh setup             # make or check the chroot
#   bash scripts/sid.sh run CMD [ARGS..]  # run CMD in it (cwd: this checkout)
# ML_SID_ROOT chooses the folder (default /var/cache/meliae/sid).  Root only.

ML_SID_ROOT=${ML_SID_ROOT:-/var/cache/meliae/sid}
ML_SID_MIRROR=${ML_SID_MIRROR:-http://deb.debian.org/debian}
ML_SID_PYTHONS=(3.14 3.15)
ML_SID_DEBS=(
  python3.14 libpython3.14-dev python3.15 libpython3.15-dev
  gcc libc6-dev meson ninja-build pkg-config
  zlib1g-dev libuv1-dev liblmdb-dev libcjson-dev libcmocka-dev gdb
  libbz2-dev liblzma-dev python3-numpy python3-pandas
)

# Makes the chroot unless one with the same package list is there.  A
# partial one (an interrupted debootstrap) is never used: it is built in
# ROOT.new and renamed when complete.
ml_sid_setup() {
  local stamp="$ML_SID_ROOT/.meliae-debs" want
  want=$(printf '%s\n' "${ML_SID_DEBS[@]}")
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  command -v debootstrap >/dev/null || {
    echo "meliae: installing debootstrap" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  local tmp="$ML_SID_ROOT.new" log
  rm -rf "$tmp"
  mkdir -p "$(dirname "$ML_SID_ROOT")"
  log=$(mktemp)
  echo "meliae: debootstrap of Debian sid into $ML_SID_ROOT (once; a few minutes)" >&2
  if ! debootstrap --variant=minbase \
       --include="$(IFS=,; echo "${ML_SID_DEBS[*]}")" \
       sid "$tmp" "$ML_SID_MIRROR" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    echo "meliae: debootstrap of sid failed" >&2
    return 1
  fi
  rm -f "$log"
  printf '%s\n' "$want" >"$tmp/.meliae-debs"
  rm -rf "$ML_SID_ROOT"
  mv "$tmp" "$ML_SID_ROOT"
}

# ml_sid_run DIR CMD...: runs CMD inside the chroot, in DIR (a path of this
# machine under the checkout or /tmp), with a clean environment plus the
# MELIAE_* / PYTHON* variables of the caller.
ml_sid_run() {
  local dir=$1; shift
  local keep=() v
  for v in $(compgen -e); do
    case $v in MELIAE_*|PYTHON*|ASAN_*|UBSAN_*) keep+=("$v=${!v}");; esac
  done
  unshare --mount --propagation private -- /bin/sh -c '
    r=$1 top=$2 dir=$3; shift 3
    mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" \
      && mkdir -p "$r$top" && mount --bind "$top" "$r$top" \
      && mount --bind /tmp "$r/tmp" || exit 125
    exec chroot "$r" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root \
      LANG=C.UTF-8 /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$dir" "$@"
  ' sh "$ML_SID_ROOT" "$ML_ROOT" "$dir" env "${keep[@]}" "$@"
}

ML_ROOT=${ML_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case ${1:-} in
    setup) ml_sid_setup ;;
    run) shift; ml_sid_run "$PWD" "$@" ;;
    *) echo "usage: $0 setup | run CMD [ARGS...]" >&2; exit 2 ;;
  esac
fi
