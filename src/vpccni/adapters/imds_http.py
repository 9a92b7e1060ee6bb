"""The IMDS port over IMDSv2 (HTTP, stdlib only): a session token, then metadata GETs.

The endpoint is ``http://169.254.169.254/`` on EC2; botocore's
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` convention overrides it (the settings pass it in), which
is how a node reaches its slice of ``vpccni emulator`` (``http://127.0.0.1:PORT/imds/<id>/``).
A 401 (expired token) refreshes the token once; other failures raise :class:`CloudError` naming
the path.

After a detach IMDS may keep listing the ENI's MAC for a while with no ``device-number`` (and,
once it is gone, no ``interface-id``); :meth:`ImdsV2.interfaces` skips such a secondary MAC
instead of failing the whole listing, as upstream does since PR #194.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from ipaddress import IPv4Address, IPv4Network

from vpccni.core.aws_types import CloudError, ImdsInterface, InstanceIdentity

DEFAULT_ENDPOINT = "http://169.254.169.254/"
TOKEN_TTL_SECONDS = 21600
HTTP_UNAUTHORIZED = 401
HTTP_NOT_FOUND = 404


class ImdsV2:
    """Implements ``vpccni.ports.Imds``."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout_seconds: float = 5.0) -> None:
        self.endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        self.timeout = timeout_seconds
        self._token: str | None = None

    def identity(self) -> InstanceIdentity:
        zone = self.get("meta-data/placement/availability-zone")
        region = self.get_optional("meta-data/placement/region") or zone[:-1]
        return InstanceIdentity(
            instance_id=self.get("meta-data/instance-id"),
            instance_type=self.get("meta-data/instance-type"),
            region=region,
            availability_zone=zone,
            primary_mac=self.get("meta-data/mac"),
            local_ipv4=IPv4Address(self.get("meta-data/local-ipv4")),
        )

    def interfaces(self) -> list[ImdsInterface]:
        primary_mac = self.get("meta-data/mac")
        macs = [m.strip("/") for m in self.get("meta-data/network/interfaces/macs/").split()]
        found = (self._interface(mac, mac == primary_mac) for mac in macs if mac)
        return [interface for interface in found if interface is not None]

    def _interface(self, mac: str, primary: bool) -> ImdsInterface | None:
        """The ENI behind ``mac``; None for a secondary MAC still listed after its detach
        (its ``device-number`` or ``interface-id`` answers 404: upstream PR #194)."""
        base = f"meta-data/network/interfaces/macs/{mac}/"
        if primary:
            eni_id, device_number = self.get(base + "interface-id"), 0
        else:
            device = self.get_optional(base + "device-number")
            interface_id = self.get_optional(base + "interface-id")
            if device is None or interface_id is None:
                return None
            eni_id, device_number = interface_id, int(device)
        prefixes = self.get_optional(base + "ipv4-prefix") or ""
        subnet_cidr = self.get_optional(base + "subnet-ipv4-cidr-block")
        return ImdsInterface(
            mac=mac,
            eni_id=eni_id,
            device_number=device_number,
            network_card=int(self.get_optional(base + "network-card") or 0),
            local_ipv4s=tuple(
                IPv4Address(a) for a in (self.get_optional(base + "local-ipv4s") or "").split()
            ),
            ipv4_prefixes=tuple(IPv4Network(p) for p in prefixes.split()),
            subnet_id=self.get(base + "subnet-id"),
            subnet_cidr=IPv4Network(subnet_cidr) if subnet_cidr else None,
            vpc_id=self.get(base + "vpc-id"),
            vpc_cidrs=tuple(
                IPv4Network(c)
                for c in (self.get_optional(base + "vpc-ipv4-cidr-blocks") or "").split()
            ),
            security_group_ids=tuple(
                (self.get_optional(base + "security-group-ids") or "").split()
            ),
        )

    def get(self, path: str) -> str:
        """The text at ``latest/<path>``; a missing path is an error."""
        found = self.get_optional(path)
        if found is None:
            raise CloudError(f"IMDS has no {path} at {self.endpoint}latest/{path}")
        return found

    def get_optional(self, path: str) -> str | None:
        """The text at ``latest/<path>``, or None when IMDS answers 404."""
        for attempt in range(2):
            request = urllib.request.Request(
                self.endpoint + "latest/" + path,
                headers={"X-aws-ec2-metadata-token": self._session_token(refresh=attempt > 0)},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return str(response.read().decode("utf-8"))
            except urllib.error.HTTPError as error:
                if error.code == HTTP_NOT_FOUND:
                    return None
                if error.code != HTTP_UNAUTHORIZED:
                    raise self._error(path, f"HTTP {error.code}") from None
            except (urllib.error.URLError, OSError) as error:
                raise self._error(path, str(error)) from None
        raise self._error(path, "the session token was refused twice")

    def _session_token(self, refresh: bool = False) -> str:
        if self._token is None or refresh:
            request = urllib.request.Request(
                self.endpoint + "latest/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    self._token = response.read().decode("utf-8")
            except (urllib.error.URLError, OSError) as error:
                raise self._error("api/token", str(error)) from None
        assert self._token is not None
        return self._token

    def _error(self, path: str, why: str) -> CloudError:
        return CloudError(
            f"IMDS request for {path} at {self.endpoint} failed: {why}; on EC2 check the "
            "instance's metadata options (IMDSv2, hop limit); elsewhere check "
            "AWS_EC2_METADATA_SERVICE_ENDPOINT"
        )
