#!/usr/bin/env bash
# The main job on the embedded default: starts `vpccni emulator` (a VPC, a subnet and a c5.large)
# and `vpccni ipamd` for that node, drives pod ADD/DEL through the plugin API and prints the
# warm pool as it grows, holds and shrinks, then stops everything (vpccni demo --keep leaves it
# running). With arguments, runs `vpccni ARGS...` instead, e.g. scripts/run.sh max-pods m5.large
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
vpccni="$root/.venv/bin/vpccni"
if [ "$#" -gt 0 ]; then exec "$vpccni" "$@"; fi

printf '$ vpccni max-pods c5.large\n'
"$vpccni" max-pods c5.large
printf '\n$ vpccni demo\n'
exec "$vpccni" demo
