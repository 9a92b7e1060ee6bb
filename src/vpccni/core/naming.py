"""Names and numbers of the datapath, as upstream computes them.

Host veth: ``<prefix>`` + the first 11 hex digits of sha1("<namespace>.<pod name>") (``eni`` by
default; e.g. default/sample-pod -> ``enicc21c2d7785``). When the runtime gives no pod name or
namespace (cnitool sends none, podman only a name), upstream would hash "." or "<ns>." and make
every such pod collide; we hash "<container id>.<ifname>" instead. Route tables: the primary ENI
(device 0) uses ``main`` (254), device d > 0 uses table d + 1.
"""

from __future__ import annotations

import hashlib

MAIN_TABLE = 254
GATEWAY = "169.254.1.1"
RULE_TO_POD = 512
RULE_FWMARK = 1024
RULE_FROM_POD = 1536
RULE_FROM_ENI = 32765
DEFAULT_VETH_PREFIX = "eni"


def host_veth_name(
    namespace: str, name: str, container_id: str, ifname: str, prefix: str = DEFAULT_VETH_PREFIX
) -> str:
    """The host-side veth name of a pod interface (at most 15 characters)."""
    if namespace and name:
        seed = f"{namespace}.{name}" if ifname == "eth0" else f"{namespace}.{name}.{ifname}"
    else:
        seed = f"{container_id}.{ifname}"
    return prefix + hashlib.sha1(seed.encode()).hexdigest()[:11]


def route_table(device_index: int) -> int:
    """The route table of the ENI at ``device_index`` on network card 0."""
    return MAIN_TABLE if device_index == 0 else device_index + 1
