"""What a kubelet does with a DaemonSet's pod template, for podman ``kube play``.

No kube-apiserver or kubelet can run here, so the node side of Kubernetes is played by podman
(which consumes Kubernetes YAML itself) plus this small shim, which only does the kubelet's and
the DaemonSet controller's jobs that podman 4.3 lacks — never a hand-copied command line:

* the DaemonSet controller stamps a Pod from ``spec.template`` and binds it to a node
  (``spec.nodeName``);
* the kubelet resolves the downward API (``valueFrom.fieldRef``: podman 4.3 refuses
  ``spec.nodeName``);
* ``restartPolicy: OnFailure`` instead of the template's ``Always``: podman 4.3 re-runs init
  containers forever under ``Always`` and then fails removing them (a podman bug, seen here);
  the main container's restart is exercised by the test itself;
* ``ports`` of a ``hostNetwork`` pod's containers are dropped: Kubernetes treats them as
  informational there (the process binds the node's own ports), podman 4.3 refuses them;
* probes: podman turns a liveness probe into a ``curl`` healthcheck that only systemd timers
  would run, so :func:`run_probe` runs each HTTP probe as the kubelet's prober does — a GET from
  the node's network namespace with the probe's own ``timeoutSeconds``.
"""

from __future__ import annotations

import copy
import http.client
from typing import Any

from tests.e2e.netns_sockets import connect_in

FIELDS = {"spec.nodeName", "metadata.name", "metadata.namespace", "spec.serviceAccountName"}


def pod_from_daemonset(daemonset: dict[str, Any], node_name: str) -> dict[str, Any]:
    """The Pod the DaemonSet controller and kubelet would run on ``node_name``."""
    assert daemonset["kind"] == "DaemonSet", daemonset["kind"]
    template = copy.deepcopy(daemonset["spec"]["template"])
    name = f"{daemonset['metadata']['name']}-{node_name}"
    metadata = {**template.get("metadata", {}), "name": name}
    metadata.setdefault("namespace", daemonset["metadata"].get("namespace", "default"))
    spec = template["spec"]
    spec["nodeName"] = node_name
    spec["restartPolicy"] = "OnFailure"
    values = {
        "spec.nodeName": node_name,
        "metadata.name": name,
        "metadata.namespace": metadata["namespace"],
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
    }
    for container in spec.get("initContainers", []) + spec["containers"]:
        if spec.get("hostNetwork"):
            container.pop("ports", None)
        for variable in container.get("env", []):
            source = variable.pop("valueFrom", None)
            if source is None:
                continue
            field = source.get("fieldRef", {}).get("fieldPath")
            assert field in FIELDS, f"downward API source {source} is not resolved by this shim"
            variable["value"] = values[field]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def run_probe(probe: dict[str, Any], netns: str) -> tuple[bool, str]:
    """One probe attempt, as kubelet's prober makes it: (succeeded, what was seen)."""
    get = probe["httpGet"]
    timeout = float(probe.get("timeoutSeconds", 1))
    host = get.get("host", "127.0.0.1")
    try:
        sock = connect_in(netns, host, int(get["port"]), timeout)
    except OSError as error:
        return False, f"connect {host}:{get['port']}: {error}"
    connection = http.client.HTTPConnection(host, int(get["port"]), timeout=timeout)
    connection.sock = sock
    try:
        connection.request("GET", get.get("path", "/"), headers={"User-Agent": "kube-probe/1.33"})
        response = connection.getresponse()
        body = response.read(4096).decode(errors="replace")
    except OSError as error:
        return False, f"GET {get.get('path')}: {error}"
    finally:
        connection.close()
    # kubelet: 200 <= code < 400 is success
    return 200 <= response.status < 400, f"{response.status} {body.strip()}"
