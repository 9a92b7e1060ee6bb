#!/usr/bin/env bash
# The main job on the embedded default. It starts `vpccni emulator` (a VPC, a subnet and a
# c5.large) and `vpccni ipamd` for that node, and prints the warm pool as it changes.
# As root (the usual case on our machines) it runs `vpccni demo --datapath`: a "node" and a "vpc"
# network namespace, the plugin installed and exec'd for every pod as a runtime does, and proofs
# that traffic flows (pod to pod, through a secondary ENI's route table, SNAT to the internet).
# Without root it runs the IPAM-only `vpccni demo`. Everything is torn down at the end
# (add --keep to leave it running). With arguments, runs `vpccni ARGS...` instead.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" -eq 0 ]; then
  bash "$root/scripts/bootstrap.sh" iptables
else
  bash "$root/scripts/bootstrap.sh"
fi
vpccni="$root/.venv/bin/vpccni"
if [ "$#" -gt 0 ]; then exec "$vpccni" "$@"; fi

printf '$ vpccni max-pods c5.large\n'
"$vpccni" max-pods c5.large
if [ "$(id -u)" -eq 0 ]; then
  printf '\n$ vpccni demo --datapath --pods 11\n'
  exec "$vpccni" demo --datapath --pods 11
fi
printf '\n$ vpccni demo   (IPAM only: run as root for real pods and traffic)\n'
exec "$vpccni" demo
