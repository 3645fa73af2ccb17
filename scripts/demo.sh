#!/usr/bin/env bash
# The main job: build meliae, start meliae-monitord on a temporary store,
# run a small HTTP service that leaks (examples/leaky_service) and stream
# its heap every 3 s while a load client drives it, then ask meliae-cli
# what grew, what is new and who keeps it alive, and what the leak is (the
# report's verdict, its first line).
#
#   bash scripts/demo.sh            # about 30 s of load
#   MELIAE_DEMO_SECONDS=10 bash scripts/demo.sh
#
# Leaves no process, socket or file behind, Ctrl-C included.
set -euo pipefail
source "$(dirname "$0")/deps.sh"
ml_install_deps
cd "$ML_ROOT"
ml_setup build "$ML_PY" >/dev/null
ninja -C build >/dev/null

seconds=${MELIAE_DEMO_SECONDS:-30}
# growth's trend test needs 5 snapshots or more: a short run takes one a
# half second instead of every 3 s
interval=3
[ "${seconds%%.*}" -ge 20 ] 2>/dev/null || interval=0.5
work=$(mktemp -d "${TMPDIR:-/tmp}/meliae-demo.XXXXXX")
export MELIAE_SOCKET=$work/meliae.sock
pids=()
cleanup() {
  local i
  # the service first, then the daemon it streams to
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cli() { build/cli/meliae-cli "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "meliae-monitord --store $work/store --socket \$MELIAE_SOCKET"
build/monitord/meliae-monitord --store "$work/store" --socket "$MELIAE_SOCKET" \
  --foreground --log-level warn &
pids+=($!)
for _ in $(seq 100); do [ -S "$MELIAE_SOCKET" ] && break; sleep 0.05; done

port=$("$ML_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "a leaking HTTP service on 127.0.0.1:$port, streaming a snapshot every $interval s"
PYTHONPATH=build/scanner:examples/leaky_service "$ML_PY" \
  examples/leaky_service/service.py "$port" "$MELIAE_SOCKET" "$interval" &
pids+=($!)
for _ in $(seq 100); do
  "$ML_PY" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" \
    2>/dev/null && break
  sleep 0.05
done

step "load for $seconds s"
"$ML_PY" examples/leaky_service/load.py "$port" "$seconds"
cli snap demo-web >/dev/null          # one last snapshot, now

step "meliae-cli snapshots"
cli snapshots | tail -n 6
step "meliae-cli growth --since 5m --top 8"
cli growth --since 5m --top 8
first=$(cli --json snapshots | "$ML_PY" -c 'import json, sys; print(json.load(sys.stdin)["snapshots"][0]["id"])')
step "meliae-cli diff $first latest --top 5   (the first snapshot against the last)"
cli diff "$first" latest --top 5

# the report's verdict names the leaking type: the referrers of its
# biggest object show the chain that keeps it alive
cli --json report --since 5m --process demo-web >"$work/report.json"
leak=$("$ML_PY" -c '
import json, sys
procs = json.load(open(sys.argv[1]))["processes"]
print(procs[-1]["verdict"].get("type") or "" if procs else "")' "$work/report.json")
if [ -n "$leak" ]; then
  addr=$(cli --json summary latest --top 0 | "$ML_PY" -c '
import json, sys
d = json.load(sys.stdin)
print(next(t["max_address"] for t in d["types"] if t["type"] == sys.argv[1]))' "$leak")
  step "meliae-cli referrers latest $addr   (the biggest $leak)"
  cli referrers latest "$addr"
fi

step "meliae-cli report --top 2   (the leak report; --html FILE writes it as a page)"
cli report --since 5m --process demo-web --top 2 | tee "$work/report.txt"

# the report's first line is its verdict: the answer, said last again
echo
head -n 1 "$work/report.txt"
