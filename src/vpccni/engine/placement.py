"""Where the engine puts a new ENI, and which ENIs take no pod address: the I/O around
``vpccni.core.subnets``.

:class:`Placement` keeps what EC2 said about subnets (``DescribeSubnets``: zone, VPC, tags, free
addresses) and reads the cluster view (the node's labels and the ENIConfigs) when it needs it:

* :meth:`Placement.targets` - the subnets (with security groups) a new ENI may go to, in order:
  the ENIConfig's subnet under custom networking (checked against EC2: known, this VPC, this
  zone; without any cluster source - the planner - the node's subnet stands in), the
  discovered subnets of the node's zone (one ``DescribeSubnets`` per ENI creation, as
  upstream; a failed read falls back to the node's subnet), else the node's subnet - or a
  :class:`~vpccni.core.subnets.PlacementProblem`.
* :meth:`Placement.block` / :meth:`Placement.held_back` - after a problem no ENI creation is
  tried again until the cluster view changes (a relabelled node, an edited ENIConfig: a new
  ``generation``) or :data:`RETRY_SECONDS` passed (a subnet fixed on the EC2 side), so a broken
  ENIConfig costs no EC2 call per tick.
* :meth:`Placement.excluded` - an ENI joining the pool takes no pod address when it is the
  primary ENI under custom networking, or (subnet discovery on) its subnet is excluded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from vpccni.cloud.lifecycle import NodeContext
from vpccni.core.aws_types import CloudError
from vpccni.core.cluster import ClusterView
from vpccni.core.config import IpamConfig
from vpccni.core.subnets import (
    ROLE_TAG,
    EniConfigChoice,
    PlacementProblem,
    Subnet,
    Target,
    check_eniconfig_subnet,
    discovery_targets,
    eniconfig_choice,
    node_eniconfig,
    node_subnet_target,
    subnet_excluded,
    subnet_verdict,
)
from vpccni.engine.state import EngineState
from vpccni.ports import Clock, ClusterSource, Ec2

log = logging.getLogger("vpccni.ipamd")
RETRY_SECONDS = 300.0
"""A placement problem is looked at again after this long even if the cluster view is unchanged
(the subnet may have been created or re-tagged in EC2)."""
UNKNOWN_SUBNET_CODES = frozenset({"InvalidSubnetID.NotFound", "InvalidSubnetID.Malformed"})


class Placement:
    """The pod-subnet choices of one node's engine."""

    def __init__(
        self, ec2: Ec2, config: IpamConfig, node: NodeContext, clock: Clock, state: EngineState
    ) -> None:
        self.ec2 = ec2
        self.state = state
        self.config = config
        self.node = node
        self.clock = clock
        self.cluster: ClusterSource | None = None
        """Where the node's labels and the ENIConfigs come from (None: no cluster source)."""
        self.subnets: dict[str, Subnet] = {}
        """Every subnet EC2 described, as last described."""
        self.problem: PlacementProblem | None = None
        self._blocked: tuple[int, float] | None = None
        self._checked: dict[str, int] = {}
        """ENIConfig subnets described for a view generation (re-read when the view changes)."""
        self.choice: EniConfigChoice | None = None
        """The ENIConfig the last custom-networking placement used."""
        self.last_targets: tuple[Target, ...] = ()
        self.log: logging.Logger = log
        """The engine's logger (``PoolEngine.log`` sets it: the planners quiet both at once)."""

    # -- the cluster view ------------------------------------------------------------------------

    def view(self) -> ClusterView | None:
        source = self.cluster
        return source.view() if source is not None else None

    def generation(self) -> int:
        view = self.view()
        return view.generation if view is not None else 0

    # -- subnets ---------------------------------------------------------------------------------

    def remember(self, subnets: Iterable[Subnet]) -> None:
        for subnet in subnets:
            self.subnets[subnet.subnet_id] = subnet

    def describe(self, subnet_ids: Iterable[str]) -> None:
        """Describe the subnets by id (one call); unknown ones are left out. Raises CloudError
        for any other failure."""
        wanted = sorted(set(subnet_ids))
        if not wanted:
            return
        try:
            self.remember(self.ec2.describe_subnets(wanted))
        except CloudError as error:
            if error.code not in UNKNOWN_SUBNET_CODES:
                raise
            for subnet_id in wanted:  # one of them is unknown: find which, one by one
                try:
                    self.remember(self.ec2.describe_subnets([subnet_id]))
                except CloudError as single:
                    if single.code not in UNKNOWN_SUBNET_CODES:
                        raise
                    self.subnets.pop(subnet_id, None)

    def zone(self) -> str:
        """The node's availability zone (the node subnet's, when the context does not say)."""
        if self.node.availability_zone:
            return self.node.availability_zone
        subnet = self.subnets.get(self.node.subnet_id)
        if subnet is None:
            self.describe([self.node.subnet_id])
            subnet = self.subnets.get(self.node.subnet_id)
        return subnet.availability_zone if subnet is not None else ""

    def read_zone(self) -> list[Subnet]:
        """``DescribeSubnets(vpc-id, availability-zone)``: every subnet of the node's zone."""
        filters = {"vpc-id": [self.node.vpc_id], "availability-zone": [self.zone()]}
        found = self.ec2.describe_subnets(filters=filters)
        self.remember(found)
        return found

    # -- exclusion ---------------------------------------------------------------------------------

    def excluded(self, subnet_id: str, primary: bool) -> bool:
        """Whether an ENI joining the pool must take no pod address."""
        if primary and self.config.custom_networking:
            return True
        if not self.config.subnet_discovery or not subnet_id:
            return False
        if subnet_id not in self.subnets:
            try:
                self.describe([subnet_id])
            except CloudError as error:
                self.log.warning("cannot tell whether %s is excluded: %s", subnet_id, error)
                return False  # upstream: an unknown subnet is not excluded
        return subnet_excluded(self.subnets.get(subnet_id), self.node.cluster_name)

    # -- new ENIs ----------------------------------------------------------------------------------

    def held_back(self) -> PlacementProblem | None:
        """The problem that keeps ENI creation paused (view unchanged, retry time not reached)."""
        blocked = self._blocked
        if blocked is None or self.problem is None:
            return None
        generation, at = blocked
        if self.generation() != generation or self.clock.now() - at >= RETRY_SECONDS:
            return None
        return self.problem

    def block(self, problem: PlacementProblem) -> None:
        """No ENI creation until the cluster view changes or the retry time passed."""
        if problem != self.problem:
            self.log.warning("no new ENI: %s; %s", problem.message, problem.action)
        self.problem = self.state.placement_problem = problem
        self._blocked = (self.generation(), self.clock.now())

    def placed(self) -> None:
        """An ENI was created: whatever blocked placement is over."""
        self.problem = self.state.placement_problem = None
        self._blocked = None

    def targets(self) -> list[Target] | PlacementProblem:
        """Where a new ENI may go, in the order to try, or why nowhere."""
        groups = self.node.security_groups
        found: list[Target] | Target | PlacementProblem
        if self.config.custom_networking:
            found = self._eniconfig_target()
        elif self.config.subnet_discovery:
            found = self._discovered()
        else:
            found = node_subnet_target(
                self.subnets.get(self.node.subnet_id), self.node.subnet_id, groups
            )
        if isinstance(found, Target):
            found = [found]
        if isinstance(found, list):
            self.last_targets = tuple(found)
        return found

    def _eniconfig_target(self) -> Target | PlacementProblem:
        if self.cluster is None:
            # no cluster source at all (the planner's convergence, which models only the pool's
            # arithmetic): the node's subnet stands in for the ENIConfig's; the daemon always
            # has a source, and one that cannot read the Node is a problem below
            return Target(
                self.node.subnet_id,
                tuple(sorted(self.node.security_groups)),
                "custom networking without a cluster source: the node's subnet stands in",
            )
        view = self.view()
        choice = node_eniconfig(view, self.config.eniconfig_label, self.config.eniconfig_annotation)
        if isinstance(choice, PlacementProblem):
            return choice
        self.choice = choice
        generation = view.generation if view is not None else 0
        if self._checked.get(choice.subnet_id) != generation or (
            choice.subnet_id not in self.subnets
        ):
            self.describe([choice.subnet_id])
            self._checked[choice.subnet_id] = generation
        zone = self.zone()
        return check_eniconfig_subnet(
            choice,
            self.subnets.get(choice.subnet_id),
            self.node.vpc_id,
            zone,
            self.node.security_groups,
        )

    def _discovered(self) -> list[Target] | Target | PlacementProblem:
        node_subnet = self.node.subnet_id
        groups = self.node.security_groups
        try:
            subnets = self.read_zone()
        except CloudError as error:
            # upstream: DescribeSubnets failed -> the node's subnet, unless it is excluded
            self.log.warning(
                "subnet discovery: DescribeSubnets failed (%s); using %s", error, node_subnet
            )
            known = self.subnets.get(node_subnet)
            if subnet_excluded(known, self.node.cluster_name):
                return PlacementProblem(
                    "pod_subnet",
                    f"subnet discovery could not list subnets ({error}) and the node's subnet "
                    f"{node_subnet} is excluded from pod addresses: no ENI is created",
                    "the pool manager retries on a later pass; check ec2:DescribeSubnets",
                )
            return Target(
                node_subnet, tuple(sorted(groups)), "the node's subnet (discovery failed)"
            )
        return discovery_targets(subnets, node_subnet, self.node.cluster_name, groups)

    # -- what status shows -------------------------------------------------------------------------

    def status(self, eni_subnets: Mapping[str, str]) -> dict[str, Any]:
        """The placement state for ``/v1/explain`` and ``vpccni status``: the mode, the node's
        ENIConfig, the subnets known (free addresses, role tag, whether discovery may use them),
        the last targets and the problem, if any."""
        node_subnet = self.node.subnet_id
        cluster = self.node.cluster_name
        shown = {node_subnet, *eni_subnets.values(), *(t.subnet_id for t in self.last_targets)}
        if self.config.subnet_discovery:
            zone = self.node.availability_zone or (
                self.subnets[node_subnet].availability_zone if node_subnet in self.subnets else ""
            )
            shown |= {s.subnet_id for s in self.subnets.values() if s.availability_zone == zone}
        subnets = []
        for subnet_id in sorted(shown):
            subnet = self.subnets.get(subnet_id)
            entry: dict[str, Any] = {
                "id": subnet_id,
                "free": None if subnet is None else subnet.free,
                "cidr": None if subnet is None else subnet.cidr,
                "zone": None if subnet is None else subnet.availability_zone,
                "role": None if subnet is None else subnet.tags.get(ROLE_TAG),
                "node_subnet": subnet_id == node_subnet,
                "enis": sorted(e for e, s in eni_subnets.items() if s == subnet_id),
                "excluded": self.config.subnet_discovery and subnet_excluded(subnet, cluster),
            }
            if subnet is not None and self.config.subnet_discovery:
                usable, why = subnet_verdict(subnet, node_subnet, cluster)
                entry["for_new_enis"] = usable
                entry["discovery"] = why.split(": ", 1)[1]
            subnets.append(entry)
        choice = self.choice
        if self.config.custom_networking:
            view = self.view()
            named = eniconfig_choice(
                view.node if view is not None else None,
                self.config.eniconfig_label,
                self.config.eniconfig_annotation,
            )
            eniconfig: dict[str, Any] | None = {
                "name": named[0],
                "named_by": named[1],
                "subnet": choice.subnet_id
                if choice is not None and choice.name == named[0]
                else None,
            }
        else:
            eniconfig = None
        problem = self.problem
        return {
            "custom_networking": self.config.custom_networking,
            "subnet_discovery": self.config.subnet_discovery,
            "eniconfig": eniconfig,
            "targets": [t.subnet_id for t in self.last_targets],
            "problem": None
            if problem is None
            else {"reason": problem.reason, "message": problem.message, "action": problem.action},
            "subnets": subnets,
        }
