#!/usr/bin/env bash
# with_daemon.sh SHMD [--expect REGEX]... -- COMMAND [ARGS...]: runs COMMAND beside a shmd
# daemon of its own (a Unix socket and an shm directory in a fresh temporary directory),
# with SHMD_LISTEN pointing at it, as a user's shell would after starting shmd; then stops
# the daemon. Passes (exit 0) when COMMAND exits 0 and its output (stdout and stderr)
# matches every --expect extended regex; otherwise says what was missing and fails. The
# examples' CTest entries use it (CTest's own PASS_REGULAR_EXPRESSION ignores exit codes).
set -euo pipefail

SHMD="${1:?usage: with_daemon.sh SHMD [--expect REGEX]... -- COMMAND [ARGS...]}"
shift
EXPECT=()
while (($#)) && [[ "$1" != "--" ]]; do
  case "$1" in
    --expect) EXPECT+=("${2:?--expect needs a regex}"); shift 2 ;;
    *) echo "with_daemon.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[[ "${1:-}" == "--" ]] && shift
(($#)) || { echo "with_daemon.sh: no command after --" >&2; exit 2; }

DIR="$(mktemp -d /dev/shm/shmd-example-XXXXXX)"
DAEMON_PID=""
cleanup() {
  if [[ -n "$DAEMON_PID" ]]; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT

"$SHMD" --listen "unix://$DIR/shmd.sock" --shm-dir "$DIR" --namespace example \
  --metrics-address 127.0.0.1:0 > "$DIR/shmd.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do
  grep -q serving "$DIR/shmd.log" 2>/dev/null && break
  kill -0 "$DAEMON_PID" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q serving "$DIR/shmd.log" 2>/dev/null; then
  echo "with_daemon.sh: shmd did not start:" >&2
  cat "$DIR/shmd.log" >&2
  exit 1
fi

export SHMD_LISTEN="unix://$DIR/shmd.sock"
set +e
"$@" 2>&1 | tee "$DIR/output.txt"
STATUS=${PIPESTATUS[0]}
set -e
if ((STATUS != 0)); then
  echo "with_daemon.sh: '$1' exited with status $STATUS" >&2
  exit "$STATUS"
fi
for re in "${EXPECT[@]}"; do
  if ! grep -Eq -- "$re" "$DIR/output.txt"; then
    echo "with_daemon.sh: '$1' exited 0 but its output lacks /$re/" >&2
    exit 1
  fi
done
echo "with_daemon.sh: '$1' passed (${#EXPECT[@]} expected patterns found)"
