"""What a Kubernetes API client costs the daemon: resident memory and time to import it and make
one client object, for the official ``kubernetes`` client, ``lightkube`` and vpccni's thin
adapter over urllib3 (``vpccni.adapters.kubernetes_api``).

Each measurement is a fresh interpreter: RSS (``VmRSS``) and ``perf_counter`` are read before
and after importing the client (with what it needs to list, get and watch Nodes and a custom
resource) and building one client object against ``http://127.0.0.1:1`` (no request is sent).
Two baselines: a bare interpreter, and one that has already imported boto3 and made an EC2
client, as the daemon has when it opens its cluster source - libraries shared with botocore
(urllib3, dateutil) then cost nothing more. The median of ``--rounds`` runs is printed.

The official client and lightkube are not vpccni dependencies: give each an interpreter that
has it (and boto3, for the second baseline), e.g.::

    python3 -m venv /tmp/k8s && /tmp/k8s/bin/pip install kubernetes==37.0.2 boto3==1.44.5
    python3 -m venv /tmp/lk && /tmp/lk/bin/pip install lightkube==1.0.1 boto3==1.44.5
    .venv/bin/python benchmarks/kube_client_cost.py --official /tmp/k8s/bin/python \\
        --lightkube /tmp/lk/bin/python

A contender whose interpreter is not given is left out. Also printed: whether each installed
client's declared requirements agree with botocore's (``pip check`` style, from package
metadata). Needs no root and no network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys, time
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
which, with_boto = sys.argv[1], sys.argv[2] == "1"
if with_boto:
    import boto3
    boto3.session.Session(region_name="us-west-2").client(
        "ec2", endpoint_url="http://127.0.0.1:1", aws_access_key_id="x", aws_secret_access_key="x")
before, began = rss(), time.perf_counter()
if which == "official":
    from kubernetes import client, watch
    config = client.Configuration()
    config.host = "http://127.0.0.1:1"
    config.api_key = {"authorization": "Bearer x"}
    api = client.ApiClient(config)
    core, custom, w = client.CoreV1Api(api), client.CustomObjectsApi(api), watch.Watch()
elif which == "lightkube":
    from lightkube import Client, KubeConfig
    from lightkube.config.kubeconfig import Cluster, User
    from lightkube.generic_resource import create_global_resource
    from lightkube.resources.core_v1 import Node
    kube = Client(KubeConfig.from_one(cluster=Cluster(server="http://127.0.0.1:1"),
                                      user=User(token="x")))
    ENIConfig = create_global_resource("crd.k8s.amazonaws.com", "v1alpha1", "ENIConfig",
                                       "eniconfigs")
else:
    from vpccni.adapters.kubernetes_api import KubeApi, KubeEndpoint
    from vpccni.adapters.kubernetes_source import KubernetesSource
    api = KubeApi(KubeEndpoint("http://127.0.0.1:1"))
print(json.dumps({"kib": rss() - before, "ms": 1000 * (time.perf_counter() - began),
                  "total_kib": rss()}))
"""

CONFLICTS = r"""
import importlib.metadata as m, json
found = {}
for name in ("kubernetes", "lightkube", "botocore"):
    try:
        found[name] = [r.replace(" ", "") for r in m.requires(name) or []]
    except m.PackageNotFoundError:
        pass
print(json.dumps(found))
"""


def measure(python: str, which: str, with_boto: bool, rounds: int) -> dict[str, float]:
    runs = []
    for _ in range(rounds):
        done = subprocess.run(
            [python, "-c", PROBE, which, "1" if with_boto else "0"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        )
        runs.append(json.loads(done.stdout))
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def requirement_notes(python: str) -> list[str]:
    done = subprocess.run([python, "-c", CONFLICTS], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return []
    found = json.loads(done.stdout)
    notes = []
    for name in ("kubernetes", "lightkube"):
        for requirement in found.get(name, []):
            if requirement.startswith("python-dateutil") and "botocore" in found:
                botocore = [r for r in found["botocore"] if r.startswith("python-dateutil")]
                if botocore and botocore[0] != requirement:
                    notes.append(f"{name} requires {requirement}; botocore requires {botocore[0]}")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", metavar="PYTHON", help="an interpreter with kubernetes")
    parser.add_argument("--lightkube", metavar="PYTHON", help="an interpreter with lightkube")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    contenders = [("thin urllib3 adapter (vpccni)", sys.executable, "thin")]
    if args.official:
        contenders.append(("kubernetes (official)", args.official, "official"))
    if args.lightkube:
        contenders.append(("lightkube", args.lightkube, "lightkube"))
    print(
        "| client | RSS added, bare | import+client, bare | RSS added after boto3 "
        "| import+client after boto3 |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    notes = []
    for label, python, which in contenders:
        bare = measure(python, which, False, args.rounds)
        daemon = measure(python, which, True, args.rounds)
        print(
            f"| {label} | {bare['kib'] / 1024:.1f} MiB | {bare['ms']:.0f} ms "
            f"| {daemon['kib'] / 1024:.1f} MiB | {daemon['ms']:.0f} ms |"
        )
        notes += requirement_notes(python)
    for note in sorted(set(notes)):
        print(f"\nconflict: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
