"""Errors the emulator answers with, carrying EC2's own error codes.

An :class:`Ec2Error` is what a real EC2 endpoint would send back: a code such as
``AttachmentLimitExceeded``, a message in EC2's words and the HTTP status (400 for client
errors, 401 for ``AuthFailure``, 403 for ``UnauthorizedOperation``, 412 for
``DryRunOperation``, 500 for ``InternalError``, 503 for ``RequestLimitExceeded`` and
``Unavailable``). The model raises them before changing any state, so a refused call leaves
the model as it was.
"""

from __future__ import annotations

import re

from vpccni.errors import VpccniError

HTTP_STATUS_BY_CODE = {
    "AuthFailure": 401,
    "UnauthorizedOperation": 403,
    "DryRunOperation": 412,
    "InternalError": 500,
    "RequestLimitExceeded": 503,
    "Unavailable": 503,
    "ServiceUnavailable": 503,
}


class Ec2Error(VpccniError):
    """An EC2 API error: ``code`` and ``message`` as EC2 sends them, and the HTTP status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS_BY_CODE.get(self.code, 400)


class EmulatorSetupError(VpccniError):
    """A scenario, state file or knob given to the emulator cannot be used."""

    exit_code = 2


def invalid_parameter(message: str) -> Ec2Error:
    """EC2's ``InvalidParameterValue``."""
    return Ec2Error("InvalidParameterValue", message)


def missing_parameter(name: str) -> Ec2Error:
    """EC2's ``MissingParameter`` for a required request parameter."""
    return Ec2Error("MissingParameter", f"The request must contain the parameter {name}")


ID_PREFIX = {
    "vpc": "vpc",
    "subnet": "subnet",
    "group": "sg",
    "instance": "i",
    "reservation": "r",
    "eni": "eni",
    "attachment": "eni-attach",
    "cidr-assoc": "vpc-cidr-assoc",
}
ID_SUFFIX = re.compile(r"[0-9a-f]{8}|[0-9a-f]{17}")
MALFORMED_CODES = {
    "vpc": "InvalidVpcID.Malformed",
    "subnet": "InvalidSubnetID.Malformed",
    "instance": "InvalidInstanceID.Malformed",
    "eni": "InvalidNetworkInterfaceID.Malformed",
    "attachment": "InvalidNetworkInterfaceAttachmentId.Malformed",
    "group": "InvalidGroupId.Malformed",
}
NOT_FOUND_CODES = {
    "vpc": ("InvalidVpcID.NotFound", "The vpc ID '{}' does not exist"),
    "subnet": ("InvalidSubnetID.NotFound", "The subnet ID '{}' does not exist"),
    "instance": ("InvalidInstanceID.NotFound", "The instance ID '{}' does not exist"),
    "eni": (
        "InvalidNetworkInterfaceID.NotFound",
        "The networkInterface ID '{}' does not exist",
    ),
    "attachment": (
        "InvalidAttachmentID.NotFound",
        "The attachment ID '{}' does not exist",
    ),
    "group": ("InvalidGroup.NotFound", "The security group '{}' does not exist"),
    "cidr-assoc": (
        "InvalidVpcCidrBlockAssociationID.NotFound",
        "The vpc CIDR block association ID '{}' does not exist",
    ),
}


def well_formed(kind: str, resource_id: str) -> bool:
    """``resource_id`` has EC2's shape for ``kind``: its prefix, a dash, 8 or 17 hex digits."""
    prefix = ID_PREFIX[kind] + "-"
    return resource_id.startswith(prefix) and bool(ID_SUFFIX.fullmatch(resource_id[len(prefix) :]))


def not_found(kind: str, resource_id: str) -> Ec2Error:
    """EC2's error for an id of ``kind`` that names nothing: ``Invalid<Kind>ID.Malformed`` when
    it does not even have an id's shape (for kinds whose Malformed code EC2 documents), else
    ``Invalid<Kind>ID.NotFound``."""
    if kind in MALFORMED_CODES and not well_formed(kind, resource_id):
        shown = resource_id if len(resource_id) <= 40 else resource_id[:40] + "..."
        return Ec2Error(
            MALFORMED_CODES[kind], f'Invalid id: "{shown}" (expecting "{ID_PREFIX[kind]}-...")'
        )
    code, template = NOT_FOUND_CODES[kind]
    return Ec2Error(code, template.format(resource_id))


def invalid_parameter_for(message: str) -> Ec2Error:
    """EC2's ``InvalidParameter`` (a parameter that names something unusable here, such as a
    security group of another VPC; distinct from ``InvalidParameterValue``)."""
    return Ec2Error("InvalidParameter", message)
