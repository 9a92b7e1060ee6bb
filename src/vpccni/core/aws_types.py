"""What vpccni knows about EC2 and IMDS: descriptions of ENIs and instances, tags, and errors.

Pure values returned by the EC2 and IMDS ports (``vpccni.ports``), plus the error family their
adapters raise. The error classes group EC2's codes by what the daemon does about them: a subnet
that ran out (pause growth 120 s), an instance or ENI limit (stop growing), throttling (retry
later), a resource that is gone (treat as already done). The one table from EC2's codes to those
classes is here too (:func:`error_for_code`, :func:`ec2_error`): the boto3 adapter and the
simulator's EC2 both translate through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from vpccni.errors import VpccniError

TAG_INSTANCE_ID = "node.k8s.amazonaws.com/instance_id"
TAG_CREATED_AT = "node.k8s.amazonaws.com/createdAt"
TAG_NO_MANAGE = "node.k8s.amazonaws.com/no_manage"
TAG_CLUSTER_NAME = "cluster.k8s.amazonaws.com/name"
TAG_ENI_OWNER = "eks:eni:owner"
ENI_OWNER_VALUE = "amazon-vpc-cni"
ENI_DESCRIPTION_PREFIX = "aws-K8S-"
LEAKED_ENI_MIN_AGE_SECONDS = 300.0


@dataclass(frozen=True)
class EniAttachment:
    """Where an ENI is attached."""

    attachment_id: str
    instance_id: str
    device_index: int
    network_card: int = 0
    status: str = "attached"
    delete_on_termination: bool = False


@dataclass(frozen=True)
class EniDescription:
    """An ENI as EC2 describes it."""

    eni_id: str
    subnet_id: str
    vpc_id: str
    status: str
    primary_ip: IPv4Address
    secondary_ips: tuple[IPv4Address, ...] = ()
    prefixes: tuple[IPv4Network, ...] = ()
    mac: str = ""
    description: str = ""
    interface_type: str = "interface"
    security_groups: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    attachment: EniAttachment | None = None


@dataclass(frozen=True)
class InstanceDescription:
    """An instance as EC2 describes it, with the device indexes its ENIs occupy."""

    instance_id: str
    instance_type: str
    subnet_id: str
    vpc_id: str
    private_ip: IPv4Address
    security_groups: tuple[str, ...] = ()
    enis: tuple[EniAttachment, ...] = ()

    def free_device_index(self, network_card: int = 0, limit: int = 100) -> int | None:
        """The lowest device index no ENI on ``network_card`` uses (upstream searches 0..99)."""
        used = {a.device_index for a in self.enis if a.network_card == network_card}
        return next((index for index in range(limit) if index not in used), None)


@dataclass(frozen=True)
class ImdsInterface:
    """One attached ENI as the instance metadata service lists it."""

    mac: str
    eni_id: str
    device_number: int
    network_card: int
    local_ipv4s: tuple[IPv4Address, ...]
    ipv4_prefixes: tuple[IPv4Network, ...]
    subnet_id: str
    subnet_cidr: IPv4Network | None
    vpc_id: str
    vpc_cidrs: tuple[IPv4Network, ...]
    security_group_ids: tuple[str, ...]

    @property
    def primary_ip(self) -> IPv4Address | None:
        return self.local_ipv4s[0] if self.local_ipv4s else None


@dataclass(frozen=True)
class InstanceIdentity:
    """The node's own facts from IMDS."""

    instance_id: str
    instance_type: str
    region: str
    availability_zone: str
    primary_mac: str
    local_ipv4: IPv4Address


class CloudError(VpccniError):
    """An EC2 or IMDS call failed; ``code`` is EC2's error code when there is one."""

    def __init__(self, message: str, *, code: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation


class SubnetExhausted(CloudError):
    """InsufficientFreeAddressesInSubnet / InsufficientCidrBlocks: pause growth for 120 s."""


class LimitExceeded(CloudError):
    """AttachmentLimitExceeded / PrivateIpAddressLimitExceeded: the instance limit is reached."""


class Throttled(CloudError):
    """RequestLimitExceeded after the SDK's retries: back off and retry later."""


class NotFound(CloudError):
    """The ENI, attachment or instance no longer exists."""


class Unauthorized(CloudError):
    """UnauthorizedOperation: the node's IAM role lacks a permission."""


# EC2's error codes with a meaning for vpccni (behaviour reference section 8.7): the class the
# adapters raise and what happens next, in words a person can act on.
_CODES: dict[str, tuple[type[CloudError], str]] = {
    "InsufficientFreeAddressesInSubnet": (
        SubnetExhausted,
        "the subnet has no free addresses; pool growth pauses for 120 s - add addresses "
        "(a larger or additional subnet) or enable prefix delegation",
    ),
    "InsufficientCidrBlocks": (
        SubnetExhausted,
        "the subnet has no free aligned /28 although single addresses remain (fragmentation); "
        "pool growth pauses for 120 s - use a subnet CIDR reservation for prefixes",
    ),
    "AttachmentLimitExceeded": (LimitExceeded, "the instance holds its maximum number of ENIs"),
    "PrivateIpAddressLimitExceeded": (
        LimitExceeded,
        "the ENI holds its maximum number of addresses and prefixes",
    ),
    "RequestLimitExceeded": (
        Throttled,
        "EC2 throttled the request after the SDK's retries; it is retried on a later tick",
    ),
    "Throttling": (Throttled, "EC2 throttled the request; it is retried on a later tick"),
    "InvalidNetworkInterfaceID.NotFound": (NotFound, "the ENI no longer exists"),
    "InvalidAttachmentID.NotFound": (NotFound, "the attachment no longer exists"),
    "InvalidInstanceID.NotFound": (NotFound, "the instance does not exist"),
    "UnauthorizedOperation": (
        Unauthorized,
        "the node's IAM role lacks this permission - attach the AmazonEKS_CNI_Policy",
    ),
}
_OTHER_CODE = (CloudError, "see EC2's message")


def error_for_code(code: str) -> type[CloudError]:
    """The cloud error class for an EC2 error code (``CloudError`` for codes with no meaning)."""
    return _CODES.get(code, _OTHER_CODE)[0]


def ec2_error(operation: str, code: str, message: str) -> CloudError:
    """An EC2 error answer as the cloud error vpccni raises, its message naming the operation,
    EC2's code and message, and what happens next."""
    kind, hint = _CODES.get(code, _OTHER_CODE)
    return kind(
        f"EC2 {operation} failed: {code}: {message}; {hint}", code=code, operation=operation
    )
