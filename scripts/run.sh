#!/usr/bin/env bash
# The main job. Today: what vpccni can already answer without a node - instance limits and max
# pods per node (the daemon and the emulator-backed demo arrive with later issues).
# With arguments, runs `vpccni ARGS...` instead, e.g. scripts/run.sh max-pods c5.xlarge --format json
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
vpccni="$root/.venv/bin/vpccni"
if [ "$#" -gt 0 ]; then exec "$vpccni" "$@"; fi

step() { printf '\n$ vpccni %s\n' "$*"; "$vpccni" "$@"; }
step limits m5.large
step max-pods m5.large
step max-pods m5.large --prefix-delegation
step max-pods m5.large --custom-networking --prefix-delegation --recommended --format json
step max-pods m4.large --prefix-delegation
step max-pods p5.48xlarge
printf '\n$ vpccni max-pods m5.larg   (a typo: clear error, non-zero exit)\n'
if "$vpccni" max-pods m5.larg; then exit 1; fi
printf '\n$ vpccni max-pods --all --format json | head -5\n'
"$vpccni" max-pods --all --format json | head -5
