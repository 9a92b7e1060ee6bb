"""Errors the emulator answers with, carrying EC2's own error codes.

An :class:`Ec2Error` is what a real EC2 endpoint would send back: a code such as
``AttachmentLimitExceeded``, a message in EC2's words and the HTTP status (400 for client
errors, 401 for ``AuthFailure``, 500 for ``InternalError``, 503 for ``RequestLimitExceeded`` and
``Unavailable``). The model raises them before changing any state, so a refused call leaves
the model as it was.
"""

from __future__ import annotations

from vpccni.errors import VpccniError

HTTP_STATUS_BY_CODE = {
    "AuthFailure": 401,
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
}


def not_found(kind: str, resource_id: str) -> Ec2Error:
    """The ``Invalid<Kind>ID.NotFound`` error EC2 gives for an unknown id of ``kind``."""
    code, template = NOT_FOUND_CODES[kind]
    return Ec2Error(code, template.format(resource_id))
