# Sourced by the set-up scripts (bootstrap.sh, build-cnitool.sh), not run: quiet install steps.
#
#   source scripts/quiet-steps.sh
#   quiet_step "installing vpccni into .venv (pip, ~20 s)" .venv/bin/python -m pip install ...
#
# A step prints one line on stderr: "bootstrap: MESSAGE", a dot every 3 s while the command
# runs, then " done in N s". The command's own output (apt-get, pip, go) is appended to the log,
# QUIET_LOG (default .bootstrap.log at the repository's root, git-ignored), under a header
# naming the step. When the command fails, the step prints the last 40 lines it wrote to the log
# and the log's path, and the script exits with the command's status. The command may be a shell
# function; it runs in a subshell with `set -e`, so its first failing command ends it.

QUIET_LOG="${QUIET_LOG:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.bootstrap.log}"
QUIET_PREFIX="${QUIET_PREFIX:-bootstrap}"
QUIET_TAIL_LINES=40
QUIET_LOG_MAX_BYTES=$((4 * 1024 * 1024))

quiet_step() {
  local message="$1"
  shift
  local started=$SECONDS errexit=0 rc ticker from
  [[ $- == *e* ]] && errexit=1
  if [ -f "$QUIET_LOG" ] && [ "$(stat -c %s "$QUIET_LOG")" -gt "$QUIET_LOG_MAX_BYTES" ]; then
    : >"$QUIET_LOG"  # keep the log small: older runs' output is dropped
  fi
  printf '\n=== %s %s: %s\n$ %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$QUIET_PREFIX" "$message" \
    "$*" >>"$QUIET_LOG"
  from=$(($(wc -l <"$QUIET_LOG") + 1))
  printf '%s: %s' "$QUIET_PREFIX" "$message" >&2
  # The ticker stops by itself if this script dies (Ctrl-C) before it is killed below.
  (
    parent=$$
    while sleep 3 >/dev/null 2>&1; do
      kill -0 "$parent" 2>/dev/null || exit 0
      printf '.' >&2
    done
  ) &
  ticker=$!
  set +e
  (set -e; "$@") </dev/null >>"$QUIET_LOG" 2>&1
  rc=$?
  { kill "$ticker" && wait "$ticker"; } 2>/dev/null
  [ "$errexit" -eq 1 ] && set -e
  if [ "$rc" -eq 0 ]; then
    printf ' done in %d s\n' $((SECONDS - started)) >&2
    return 0
  fi
  printf ' failed (exit status %d after %d s)\n' "$rc" $((SECONDS - started)) >&2
  printf '%s: the last lines it wrote:\n' "$QUIET_PREFIX" >&2
  tail -n "+$from" "$QUIET_LOG" | tail -n "$QUIET_TAIL_LINES" | sed 's/^/  | /' >&2
  printf '%s: the full output is in %s; fix the cause above and re-run\n' \
    "$QUIET_PREFIX" "$QUIET_LOG" >&2
  exit "$rc"
}
