"""The policy every vpccni DaemonSet must follow, as data: least privilege, probes that survive
busy nodes, requests, and the node-critical scheduling a CNI needs.

:func:`daemon_set_problems` reads a DaemonSet (a dict, as parsed from YAML) and returns every
rule it breaks as a :class:`PolicyProblem` (what is wrong, and the one-line fix), never raising
on a missing or mistyped field: a field that is absent is itself a problem. The manifest tests
apply it to the checked-in overlays and to ``vpccni manifests``; ``vpccni doctor --manifest``
applies it to the DaemonSet a cluster runs.

Where a rule has an exception it is named here: the init container is privileged (it writes the
host's network sysctls - rp_filter of the primary interface, ip_forward, tcp_early_demux - which
a container can only write through a writable /proc/sys) and, being an init container, has no
probes (Kubernetes runs it to completion instead). Every container, the init one included, runs
on a read-only root filesystem: both write only to host mounts and /tmp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vpccni.deploy.manifests import INIT_CONTAINER, MAIN_CAPABILITIES, MAIN_CONTAINER
from vpccni.deploy.rbac import needs_token

MIN_PROBE_TIMEOUT_SECONDS = 10
"""kubelet's probe deadline: a daemon busy with EC2 calls on a loaded node answers in seconds,
and a 1 s timeout restarts a healthy daemon (upstream raised its own to 10 s for this)."""
MIN_LIVENESS_DELAY_SECONDS = 60
MAX_UNAVAILABLE_PERCENT = 25
MAX_GRACE_SECONDS = 30
PROBES = (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"))
RULES = ("probes", "capabilities", "security", "scheduling", "resources", "layout")
"""Problem kinds, in the order they are reported."""


@dataclass(frozen=True)
class PolicyProblem:
    """One broken rule: its kind (one of :data:`RULES`), what is wrong, and how to fix it."""

    rule: str
    problem: str
    fix: str


def daemon_set_problems(daemon_set: Any) -> list[PolicyProblem]:
    """Every rule ``daemon_set`` breaks (empty: it follows the policy)."""
    problems: list[PolicyProblem] = []
    if not isinstance(daemon_set, Mapping) or daemon_set.get("kind") != "DaemonSet":
        return [
            PolicyProblem(
                "layout",
                "not a DaemonSet",
                "give the vpccni DaemonSet (`vpccni manifests` prints it)",
            )
        ]
    spec = _mapping(daemon_set.get("spec"))
    pod = _mapping(_mapping(spec.get("template")).get("spec"))
    problems += _scheduling(spec, pod)
    init = _containers(pod.get("initContainers"))
    main = _containers(pod.get("containers"))
    names = (
        [c.get("name") for c in init],
        [c.get("name") for c in main],
    )
    if names != ([INIT_CONTAINER], [MAIN_CONTAINER]):
        problems.append(
            PolicyProblem(
                "layout",
                f"containers are init {names[0]} and main {names[1]}; expected init "
                f"[{INIT_CONTAINER!r}] and main [{MAIN_CONTAINER!r}]",
                "render the DaemonSet with `vpccni manifests` instead of editing it by hand",
            )
        )
    volumes = {
        str(volume.get("name")) for volume in _list(pod.get("volumes")) if isinstance(volume, dict)
    }
    for container in init:
        problems += container_problems(container, volumes, is_init=True)
    for container in main:
        problems += container_problems(container, volumes, is_init=False)
    return sorted(problems, key=lambda p: RULES.index(p.rule))


def _scheduling(spec: Mapping[str, Any], pod: Mapping[str, Any]) -> list[PolicyProblem]:
    found: list[PolicyProblem] = []

    def want(ok: bool, problem: str, fix: str, rule: str = "scheduling") -> None:
        if not ok:
            found.append(PolicyProblem(rule, problem, fix))

    want(
        pod.get("hostNetwork") is True,
        f"hostNetwork is {pod.get('hostNetwork')!r}: the daemon must run in the node's network "
        "namespace",
        "set spec.template.spec.hostNetwork: true",
        "layout",
    )
    want(
        pod.get("priorityClassName") == "system-node-critical",
        f"priorityClassName is {pod.get('priorityClassName')!r}: a node without its CNI runs no "
        "pod, so it must not be evicted or preempted",
        "set priorityClassName: system-node-critical",
    )
    want(
        pod.get("tolerations") == [{"operator": "Exists"}],
        f"tolerations are {pod.get('tolerations')!r}: a tainted node still needs pod networking",
        "set tolerations: [{operator: Exists}]",
    )
    token = needs_token()
    want(
        pod.get("automountServiceAccountToken") is token,
        f"automountServiceAccountToken is {pod.get('automountServiceAccountToken')!r}; expected "
        f"{str(token).lower()} (the daemon {'calls' if token else 'calls no'} Kubernetes API)",
        f"set automountServiceAccountToken: {str(token).lower()}",
        "security",
    )
    grace = pod.get("terminationGracePeriodSeconds")
    want(
        isinstance(grace, int) and 0 < grace <= MAX_GRACE_SECONDS,
        f"terminationGracePeriodSeconds is {grace!r}; expected 1 to {MAX_GRACE_SECONDS}",
        "set terminationGracePeriodSeconds: 10",
    )
    strategy = _mapping(spec.get("updateStrategy"))
    limit = _mapping(strategy.get("rollingUpdate")).get("maxUnavailable")
    percent = _percent(limit)
    want(
        strategy.get("type") == "RollingUpdate"
        and percent is not None
        and 0 < percent <= MAX_UNAVAILABLE_PERCENT,
        f"updateStrategy is {strategy.get('type')!r} with maxUnavailable {limit!r}; expected a "
        f"RollingUpdate of at most {MAX_UNAVAILABLE_PERCENT}% of the nodes at a time",
        'set updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: "10%"}}',
    )
    return found


def container_problems(
    container: Mapping[str, Any], volumes: set[str], *, is_init: bool
) -> list[PolicyProblem]:
    """The rules one container breaks; ``volumes``: the pod's volume names."""
    name = str(container.get("name"))
    found: list[PolicyProblem] = []

    def want(ok: bool, rule: str, problem: str, fix: str) -> None:
        if not ok:
            found.append(PolicyProblem(rule, f"{name}: {problem}", fix))

    resources = _mapping(container.get("resources"))
    requests = _mapping(resources.get("requests"))
    want(
        set(requests) == {"cpu", "memory"},
        "resources",
        f"requests {sorted(requests)}; expected cpu and memory",
        f"set {name}'s resources.requests cpu and memory (e.g. 25m, 64Mi)",
    )
    want(
        "cpu" not in _mapping(resources.get("limits")),
        "resources",
        "has a CPU limit: throttling delays pod ADDs and probes",
        f"remove {name}'s resources.limits.cpu",
    )
    security = _mapping(container.get("securityContext"))
    added = _list(_mapping(security.get("capabilities")).get("add"))
    want(
        security.get("readOnlyRootFilesystem") is True,
        "security",
        "root filesystem is writable",
        f"set {name}'s securityContext.readOnlyRootFilesystem: true",
    )
    mounted = {
        str(mount.get("name"))
        for mount in _list(container.get("volumeMounts"))
        if isinstance(mount, dict)
    }
    want(
        mounted <= volumes,
        "layout",
        f"mounts volumes the pod does not define: {sorted(mounted - volumes)}",
        "add the volumes to the pod spec or drop the mounts",
    )
    want(
        "SYS_ADMIN" not in added,
        "capabilities",
        "adds SYS_ADMIN: the daemon gets pod namespaces as file descriptors and never needs it",
        f"remove SYS_ADMIN from {name}'s securityContext.capabilities.add",
    )
    if is_init:
        want(
            security.get("privileged") is True,
            "security",
            "is not privileged: it writes the host's network sysctls",
            f"set {name}'s securityContext.privileged: true",
        )
        want(
            "capabilities" not in security,
            "capabilities",
            "lists capabilities although privileged already has every one",
            f"remove {name}'s securityContext.capabilities",
        )
        probes = sorted({"livenessProbe", "readinessProbe", "startupProbe"} & set(container))
        want(
            not probes,
            "probes",
            f"an init container has {probes}: Kubernetes runs it to completion instead",
            f"remove the probes from {name}",
        )
        return found
    found += _main_security(name, security)
    found += _probes(name, container)
    return found


def _main_security(name: str, security: Mapping[str, Any]) -> list[PolicyProblem]:
    found: list[PolicyProblem] = []
    capabilities = _mapping(security.get("capabilities"))
    least = {"drop": ["ALL"], "add": list(MAIN_CAPABILITIES)}
    if dict(capabilities) != least:
        found.append(
            PolicyProblem(
                "capabilities",
                f"{name}: capabilities are {dict(capabilities)!r}; expected drop ALL, add "
                f"{' and '.join(MAIN_CAPABILITIES)} only",
                f"set {name}'s securityContext.capabilities: {{drop: [ALL], add: "
                f"[{', '.join(MAIN_CAPABILITIES)}]}}",
            )
        )
    run_as = security.get("runAsUser")
    for key, ok, wanted, why in (
        (
            "privileged",
            security.get("privileged") is False,
            "false",
            "it needs only NET_ADMIN and NET_RAW",
        ),
        (
            "allowPrivilegeEscalation",
            security.get("allowPrivilegeEscalation") is False,
            "false",
            "nothing in it needs to gain privileges",
        ),
        (
            "runAsUser",
            type(run_as) is int and run_as == 0,
            "0",
            "it writes root-owned host directories",
        ),
    ):
        if not ok:
            found.append(
                PolicyProblem(
                    "security",
                    f"{name}: securityContext.{key} is {security.get(key)!r}; expected {wanted}: "
                    f"{why}",
                    f"set {name}'s securityContext.{key}: {wanted}",
                )
            )
    return found


def _probes(name: str, container: Mapping[str, Any]) -> list[PolicyProblem]:
    found: list[PolicyProblem] = []
    for key, path in PROBES:
        probe = _mapping(container.get(key))
        if not probe:
            found.append(
                PolicyProblem(
                    "probes",
                    f"{name}: has no {key}",
                    f"add {name}'s {key}: httpGet 127.0.0.1 {path}, timeoutSeconds "
                    f"{MIN_PROBE_TIMEOUT_SECONDS}",
                )
            )
            continue
        timeout = probe.get("timeoutSeconds", 1)  # Kubernetes' default when unset
        if not isinstance(timeout, int) or timeout < MIN_PROBE_TIMEOUT_SECONDS:
            found.append(
                PolicyProblem(
                    "probes",
                    f"{name}: {key}.timeoutSeconds is {timeout!r}; a busy node answers slower "
                    "and kubelet restarts a healthy daemon",
                    f"set {name}'s {key}.timeoutSeconds: {MIN_PROBE_TIMEOUT_SECONDS}",
                )
            )
        http = _mapping(probe.get("httpGet"))
        if http.get("host") != "127.0.0.1" or http.get("path") != path:
            found.append(
                PolicyProblem(
                    "probes",
                    f"{name}: {key} is not an HTTP GET of 127.0.0.1 {path} (found host "
                    f"{http.get('host')!r}, path {http.get('path')!r})",
                    f"set {name}'s {key}.httpGet host 127.0.0.1 and path {path}",
                )
            )
    liveness = _mapping(container.get("livenessProbe"))
    delay = liveness.get("initialDelaySeconds", 0)
    if liveness and (not isinstance(delay, int) or delay < MIN_LIVENESS_DELAY_SECONDS):
        found.append(
            PolicyProblem(
                "probes",
                f"{name}: livenessProbe.initialDelaySeconds is {delay!r}; start-up (ENIs, "
                f"IMDS) can take a minute",
                f"set {name}'s livenessProbe.initialDelaySeconds: {MIN_LIVENESS_DELAY_SECONDS}",
            )
        )
    return found


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _containers(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in _list(value) if isinstance(item, Mapping)]


def _percent(value: Any) -> int | None:
    if not isinstance(value, str) or not value.endswith("%") or not value[:-1].isdigit():
        return None
    return int(value[:-1])
