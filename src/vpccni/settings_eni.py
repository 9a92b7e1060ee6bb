"""The daemon's ENI-provisioning settings: what ipamd may do to EC2 (upstream's awsutils variables).

Parsed by :func:`vpccni.settings.parse_settings` through its one reader, into
:class:`ProvisioningSettings` (``Settings.provisioning``):

* ``DISABLE_NETWORK_RESOURCE_PROVISIONING`` (false): true - no ENI or address is created,
  assigned, freed or tagged; the pool manager only reconciles what is attached;
* ``ENABLE_IMDS_ONLY_MODE`` (false): true - provisioning off as above, and the node's ENIs are
  read from IMDS only (no EC2 Describe);
* ``MANAGE_UNTAGGED_ENI`` (true): false - an attached ENI without this node's
  ``node.k8s.amazonaws.com/instance_id`` tag is not managed unless tagged
  ``node.k8s.amazonaws.com/no_manage=false``;
* ``DISABLE_LEAKED_ENI_CLEANUP`` (false): true - no hourly sweep of leaked ENIs (also off when
  provisioning is off);
* ``ADDITIONAL_ENI_TAGS`` (``{}``): a JSON object of extra tags on every ENI the daemon creates;
* ``VPC_CNI_VERSION`` (empty): added to the EC2 user agent, as upstream does.

vpccni refuses what upstream silently drops: bad JSON, a non-string value, and keys upstream
would drop (those containing ``k8s.amazonaws.com``, which name the CNI's own tags) or EC2 would
reject (``aws:`` prefix, over-long keys or values, more tags than an ENI may carry).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from vpccni.core.config import SettingsReader

MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_TAGS_PER_RESOURCE = 50
OWN_TAGS = 4
"""The tags vpccni itself puts on an ENI (instance id, cluster name, owner, creation time)."""
MAX_ADDITIONAL_TAGS = MAX_TAGS_PER_RESOURCE - OWN_TAGS
TAGS_ACCEPTED = (
    'a JSON object of string keys and values, such as {"team": "net"}; keys at most '
    f"{MAX_TAG_KEY} characters, not starting with aws: and not containing k8s.amazonaws.com; "
    f"values at most {MAX_TAG_VALUE} characters; at most {MAX_ADDITIONAL_TAGS} tags"
)
_VERSION = re.compile(r"[A-Za-z0-9._+-]{1,64}")


@dataclass(frozen=True)
class ProvisioningSettings:
    """What the daemon may do to EC2 for this node."""

    provisioning: bool = True
    """False: ``DISABLE_NETWORK_RESOURCE_PROVISIONING`` or ``ENABLE_IMDS_ONLY_MODE`` is true."""
    imds_only: bool = False
    """``ENABLE_IMDS_ONLY_MODE``: the node's ENIs are read from IMDS only."""
    manage_untagged: bool = True
    """``MANAGE_UNTAGGED_ENI``."""
    leaked_eni_cleanup: bool = True
    """Not ``DISABLE_LEAKED_ENI_CLEANUP``, and provisioning on (upstream skips it then too)."""
    additional_tags: Mapping[str, str] = field(default_factory=dict)
    """``ADDITIONAL_ENI_TAGS``."""
    cni_version: str = ""
    """``VPC_CNI_VERSION``: added to the EC2 user agent."""

    def document(self) -> dict[str, object]:
        """The values as ``/v1/ipamd-env-settings`` reports them (upstream's names)."""
        return {
            "DISABLE_NETWORK_RESOURCE_PROVISIONING": not self.provisioning and not self.imds_only,
            "ENABLE_IMDS_ONLY_MODE": self.imds_only,
            "MANAGE_UNTAGGED_ENI": self.manage_untagged,
            "DISABLE_LEAKED_ENI_CLEANUP": not self.leaked_eni_cleanup,
            "ADDITIONAL_ENI_TAGS": dict(self.additional_tags),
            "VPC_CNI_VERSION": self.cni_version,
        }


def read_provisioning(env: SettingsReader) -> ProvisioningSettings:
    """The provisioning variables through ``env`` (refused values are left in its problems)."""
    disabled = env.flag("DISABLE_NETWORK_RESOURCE_PROVISIONING", False)
    imds_only = env.flag("ENABLE_IMDS_ONLY_MODE", False)
    provisioning = not (disabled or imds_only)
    return ProvisioningSettings(
        provisioning=provisioning,
        imds_only=imds_only,
        manage_untagged=env.flag("MANAGE_UNTAGGED_ENI", True),
        leaked_eni_cleanup=provisioning and not env.flag("DISABLE_LEAKED_ENI_CLEANUP", False),
        additional_tags=env.value("ADDITIONAL_ENI_TAGS", parse_tags, {}, TAGS_ACCEPTED),
        cni_version=env.value(
            "VPC_CNI_VERSION",
            _version,
            "",
            "1 to 64 letters, digits, '.', '_', '+' or '-', such as v1.19.2",
        ),
    )


def parse_tags(raw: str) -> dict[str, str]:
    """``ADDITIONAL_ENI_TAGS``: a JSON object of tags, each checked against EC2's rules."""
    try:
        found = json.loads(raw)
    except ValueError:
        raise ValueError("is not JSON") from None
    if not isinstance(found, dict):
        raise ValueError("is not a JSON object")
    tags: dict[str, str] = {}
    for key, value in found.items():
        if not isinstance(value, str):
            raise ValueError(f"gives tag {key!r} a {type(value).__name__}, not a string")
        if not key or len(key) > MAX_TAG_KEY:
            raise ValueError(f"has the tag key {key!r}, not 1 to {MAX_TAG_KEY} characters")
        if key.lower().startswith("aws:"):
            raise ValueError(f"has the tag key {key!r}: EC2 reserves the aws: prefix")
        if "k8s.amazonaws.com" in key:
            raise ValueError(
                f"has the tag key {key!r}: keys containing k8s.amazonaws.com name the CNI's own "
                "tags (upstream drops them)"
            )
        if len(value) > MAX_TAG_VALUE:
            raise ValueError(f"gives tag {key!r} a value longer than {MAX_TAG_VALUE} characters")
        tags[key] = value
    if len(tags) > MAX_ADDITIONAL_TAGS:
        raise ValueError(
            f"has {len(tags)} tags; an ENI carries at most {MAX_TAGS_PER_RESOURCE}, "
            f"{OWN_TAGS} of them vpccni's own"
        )
    return tags


def _version(raw: str) -> str:
    if not _VERSION.fullmatch(raw):
        raise ValueError("is not a version name")
    return raw
