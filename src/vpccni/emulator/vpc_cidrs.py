"""Which IPv4 CIDR blocks EC2 lets a VPC have: sizes, the association restrictions, the quota.

Owns :func:`parse_vpc_cidr` (a block as CreateVpc and AssociateVpcCidrBlock read it: canonical
form, /16../28) and :func:`check_association` (may this block join a VPC's blocks?), with the
rules of the Amazon VPC User Guide, "VPC CIDR blocks":

* the block size is /16 to /28 (``InvalidVpc.Range``); host bits are dropped, as EC2 "modifies
  the CIDR block to its canonical form" (100.68.0.18/18 -> 100.68.0.0/18);
* a block must not overlap a block already associated with the VPC;
* at most :data:`MAX_BLOCKS` IPv4 blocks per VPC, the primary included (the default quota "IPv4
  CIDR blocks per VPC"; ``CidrLimitExceeded``, "This network '<vpc>' has met its maximum number
  of allowed CIDRs: 5");
* "IPv4 CIDR block association restrictions", by the range the VPC's primary block lies in:

  ============================== ==================================================
  primary block in               may not add
  ============================== ==================================================
  10.0.0.0/8                     172.16.0.0/12, 192.168.0.0/16, 198.19.0.0/16; and
                                 10.0.0.0/16 if any block lies in 10.0.0.0/15
  172.16.0.0/12                  10.0.0.0/8, 192.168.0.0/16, 172.31.0.0/16,
                                 198.19.0.0/16
  192.168.0.0/16                 10.0.0.0/8, 172.16.0.0/12, 198.19.0.0/16
  198.19.0.0/16                  any RFC 1918 block
  anything else (public,         any RFC 1918 block, 198.19.0.0/16
  100.64.0.0/10)
  ============================== ==================================================

  and 169.254.0.0/16 (link local) never, not even as a primary block. 100.64.0.0/10 and publicly
  routable blocks are allowed beside any primary. A refused block answers ``InvalidVpc.Range`` with
  EC2's message ("The CIDR '10.0.0.0/16' is restricted. Use a CIDR from the same private address
  range as the current VPC CIDR, or use a publicly-routable CIDR. ...").

Not modelled: route-table destinations (no route tables), ClassicLink, peering and Direct Connect
gateway overlaps. EC2 does not document the error code for a block overlapping one of the VPC's
own blocks; ``InvalidVpc.Range`` is used. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network

from vpccni.emulator.errors import Ec2Error, invalid_parameter

MIN_PREFIX_LENGTH = 16
MAX_PREFIX_LENGTH = 28
MAX_BLOCKS = 5
"""Default quota of IPv4 CIDR blocks per VPC (primary included)."""
RESTRICTIONS_URL = "https://docs.aws.amazon.com/vpc/latest/userguide/vpc-cidr-blocks.html"

TEN = IPv4Network("10.0.0.0/8")
ONE_SEVENTY_TWO = IPv4Network("172.16.0.0/12")
ONE_NINETY_TWO = IPv4Network("192.168.0.0/16")
RFC_1918 = (TEN, ONE_SEVENTY_TWO, ONE_NINETY_TWO)
BENCHMARK = IPv4Network("198.19.0.0/16")
LINK_LOCAL = IPv4Network("169.254.0.0/16")
TEN_SLASH_15 = IPv4Network("10.0.0.0/15")
TEN_SLASH_16 = IPv4Network("10.0.0.0/16")
DEFAULT_VPC_RANGE = IPv4Network("172.31.0.0/16")


def parse_vpc_cidr(text: str) -> IPv4Network:
    """A VPC block in canonical form; InvalidParameterValue for junk, InvalidVpc.Range for a size
    outside /16../28 or a link-local block (169.254.0.0/16 "cannot be assigned to VPCs")."""
    try:
        network = IPv4Network(text, strict=False)
    except ValueError as error:
        raise invalid_parameter(f"Value ({text}) for parameter cidrBlock is invalid.") from error
    if not MIN_PREFIX_LENGTH <= network.prefixlen <= MAX_PREFIX_LENGTH:
        raise Ec2Error(
            "InvalidVpc.Range",
            f"The CIDR '{text}' is invalid: the block size must be between /16 and /28.",
        )
    if network.overlaps(LINK_LOCAL):
        raise Ec2Error(
            "InvalidVpc.Range",
            f"The CIDR '{text}' is invalid: link-local addresses (169.254.0.0/16) cannot be "
            "assigned to a VPC.",
        )
    return network


def restricted(primary: IPv4Network, present: Sequence[IPv4Network], new: IPv4Network) -> bool:
    """True when the association table refuses ``new`` beside a VPC whose primary block is
    ``primary`` and whose blocks are ``present`` (the primary among them)."""
    home = next((r for r in RFC_1918 if primary.subnet_of(r)), None)
    if home is None:
        # 198.19.0.0/16, a public block or 100.64.0.0/10: no RFC 1918 block may join; only a
        # public (non-RFC 1918) primary also keeps 198.19.0.0/16 out.
        if any(new.overlaps(r) for r in RFC_1918):
            return True
        return not primary.subnet_of(BENCHMARK) and new.overlaps(BENCHMARK)
    if new.overlaps(BENCHMARK) or any(new.overlaps(r) for r in RFC_1918 if r != home):
        return True
    if home == TEN:
        in_slash_15 = any(block.subnet_of(TEN_SLASH_15) for block in present)
        return in_slash_15 and new.overlaps(TEN_SLASH_16)
    if home == ONE_SEVENTY_TWO:
        return new.overlaps(DEFAULT_VPC_RANGE)
    return False


def check_association(vpc_id: str, blocks: Sequence[str], text: str) -> IPv4Network:
    """The block ``text`` as it would be associated with VPC ``vpc_id`` (whose blocks are
    ``blocks``, the primary first), or EC2's refusal."""
    new = parse_vpc_cidr(text)
    present = [IPv4Network(block) for block in blocks]
    if len(present) >= MAX_BLOCKS:
        raise Ec2Error(
            "CidrLimitExceeded",
            f"This network '{vpc_id}' has met its maximum number of allowed CIDRs: {MAX_BLOCKS}",
        )
    clash = next((block for block in present if block.overlaps(new)), None)
    if clash is not None:
        raise Ec2Error(
            "InvalidVpc.Range",
            f"The CIDR '{new}' conflicts with the CIDR block {clash} already associated with "
            f"{vpc_id}: a VPC's blocks must not overlap.",
        )
    if restricted(present[0], present, new):
        raise Ec2Error(
            "InvalidVpc.Range",
            f"The CIDR '{new}' is restricted. Use a CIDR from the same private address range as "
            f"the current VPC CIDR, or use a publicly-routable CIDR. For additional restrictions, "
            f"see {RESTRICTIONS_URL}",
        )
    return new
