"""The EC2 Query protocol on the wire, driven by botocore's own EC2 service model.

Owns :func:`decode_request` (form fields such as ``PrivateIpAddress.1`` or
``Filter.1.Value.1`` -> the nested parameter dict boto3 was called with) and
:func:`encode_response` / :func:`encode_error` (a result dict -> EC2's XML). Nothing is written
per action: both walk the operation's input or output shape, using each member's serialized name
the way botocore's EC2 serializer and parser do (lists flattened as ``Name.N`` on input; ``<item>``
children on output). So whatever boto3 sends decodes, and whatever we send boto3 parses.
``DryRun`` on an action whose API has none is refused (``UnknownParameter``) rather than
ignored, so it never acts.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from functools import cache
from typing import Any
from xml.etree import ElementTree

import botocore.session

from vpccni.emulator.errors import Ec2Error

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_LIST_INDEX = 999_999_999
LIST_INDEX = re.compile(r"[1-9][0-9]{0,8}")
SIGNED_REGION = re.compile(r"Credential=[^/,\s]*/[0-9]{8}/([^/,\s]+)/")


@cache
def service_model() -> Any:
    """botocore's EC2 service model (loaded once; it is large)."""
    return botocore.session.get_session().get_service_model("ec2")


def operation(action: str) -> Any:
    """botocore's model of ``action``, or EC2's InvalidAction error."""
    model = service_model()
    if action not in model.operation_names:
        raise Ec2Error("InvalidAction", f"The action {action} is not valid for this web service.")
    return model.operation_model(action)


# -- input ------------------------------------------------------------------------------------


def decode_request(action: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The parameters of an EC2 Query request, nested and typed as boto3 would pass them."""
    shape = operation(action).input_shape
    if "DryRun" in form and (shape is None or "DryRun" not in shape.members):
        raise Ec2Error(
            "UnknownParameter",
            f"The parameter DryRun is not recognized: {action} has no DryRun in EC2's API.",
        )
    if shape is None:
        return {}
    decoded = _decode_structure(shape, form, "")
    return decoded or {}


def _input_name(shape: Any, default: str) -> str:
    if "queryName" in shape.serialization:
        return str(shape.serialization["queryName"])
    name = shape.serialization.get("name")
    if name:
        return str(name[0].upper() + name[1:])
    return default


def _decode(shape: Any, form: Mapping[str, str], key: str) -> Any:
    kind = shape.type_name
    if kind == "structure":
        if not any(name.startswith(key + ".") for name in form):
            return None
        return _decode_structure(shape, form, key)
    if kind == "list":
        indices = {
            _list_index(name, name[len(key) + 1 :].split(".", 1)[0])
            for name in form
            if name.startswith(key + ".")
        }
        if not indices:
            return None
        items = [
            (index, _decode(shape.member, form, f"{key}.{index}")) for index in sorted(indices)
        ]
        for index, item in items:
            if item is None:
                known = ", ".join(_member_names(shape.member)) or "a value"
                raise Ec2Error(
                    "InvalidParameterValue",
                    f"The parameter {key}.{index} is invalid: give it {known}.",
                )
        return [item for _, item in items]
    if key not in form:
        return None
    return _scalar(kind, form[key], key)


def _member_names(shape: Any) -> list[str]:
    if shape.type_name != "structure":
        return []
    return [_input_name(member, name) for name, member in shape.members.items()]


def _list_index(name: str, head: str) -> int:
    """The N of ``List.N...``: ASCII digits, 1 to MAX_LIST_INDEX; anything else is refused."""
    if not LIST_INDEX.fullmatch(head):
        shown = head if len(head) <= 20 else head[:20] + "..."
        shown_name = name if len(name) <= 60 else name[:60] + "..."
        raise Ec2Error(
            "InvalidParameterValue",
            f"The parameter {shown_name} is invalid: its list index '{shown}' is not a whole "
            f"number from 1 to {MAX_LIST_INDEX}. Number list members Name.1, Name.2, ...",
        )
    return int(head)


def _decode_structure(shape: Any, form: Mapping[str, str], prefix: str) -> dict[str, Any] | None:
    result: dict[str, Any] = {}
    for member_name, member in shape.members.items():
        name = _input_name(member, member_name)
        value = _decode(member, form, f"{prefix}.{name}" if prefix else name)
        if value is not None:
            result[member_name] = value
    return result if result or not prefix else None


def _scalar(kind: str, text: str, key: str) -> Any:
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
    except ValueError as error:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise Ec2Error(
            "InvalidParameterValue", f"Value ({shown}) for parameter {key} is invalid."
        ) from error
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise Ec2Error(
                "InvalidParameterValue", f"Value ({text}) for parameter {key} is invalid."
            )
        return text.lower() == "true"
    return text


def signed_region(authorization: str | None, credential: str | None) -> str | None:
    """The region a SigV4 request was signed for: from the ``Authorization`` header's
    ``Credential=KEY/DATE/REGION/SERVICE/aws4_request`` or a presigned ``X-Amz-Credential``;
    None for an unsigned request."""
    if authorization:
        match = SIGNED_REGION.search(authorization)
        if match:
            return match.group(1)
    if credential:
        parts = credential.split("/")
        if len(parts) >= 3:
            return parts[2]
    return None


# -- output -----------------------------------------------------------------------------------


def encode_response(
    action: str, result: Mapping[str, Any], request_id: str, dropped: list[str] | None = None
) -> bytes:
    """EC2's XML answer to ``action``; keys the output shape lacks go to ``dropped``."""
    root = ElementTree.Element(f"{action}Response", {"xmlns": NAMESPACE})
    ElementTree.SubElement(root, "requestId").text = request_id
    shape = operation(action).output_shape
    if shape is None:
        ElementTree.SubElement(root, "return").text = "true"
    else:
        _encode_members(root, shape, result, dropped, action)
    return XML_DECLARATION + ElementTree.tostring(root)


def encode_error(code: str, message: str, request_id: str) -> bytes:
    """EC2's error document (sent with HTTP 400, 500 or 503)."""
    root = ElementTree.Element("Response")
    error = ElementTree.SubElement(ElementTree.SubElement(root, "Errors"), "Error")
    ElementTree.SubElement(error, "Code").text = code
    ElementTree.SubElement(error, "Message").text = message
    ElementTree.SubElement(root, "RequestID").text = request_id
    return XML_DECLARATION + ElementTree.tostring(root)


def _output_name(shape: Any, default: str) -> str:
    return str(shape.serialization.get("name", default))


def _encode_members(
    parent: ElementTree.Element,
    shape: Any,
    value: Mapping[str, Any],
    dropped: list[str] | None,
    path: str,
) -> None:
    members = shape.members
    for key, item in value.items():
        member = members.get(key)
        if member is None:
            if dropped is not None:
                dropped.append(f"{path}.{key}")
            continue
        _encode(
            parent, member, _output_name(member, key), item, dropped=dropped, path=f"{path}.{key}"
        )


def _encode(
    parent: ElementTree.Element,
    shape: Any,
    name: str,
    value: Any,
    *,
    dropped: list[str] | None,
    path: str,
) -> None:
    if value is None:
        return
    kind = shape.type_name
    if kind == "structure":
        element = ElementTree.SubElement(parent, name)
        _encode_members(element, shape, value, dropped, path)
    elif kind == "list":
        item_name = _output_name(shape.member, "member")
        if shape.serialization.get("flattened"):
            for item in value:
                _encode(parent, shape.member, item_name, item, dropped=dropped, path=path)
            return
        element = ElementTree.SubElement(parent, name)
        for item in value:
            _encode(element, shape.member, item_name, item, dropped=dropped, path=path)
    else:
        ElementTree.SubElement(parent, name).text = _scalar_text(kind, value)


def _scalar_text(kind: str, value: Any) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "timestamp" and isinstance(value, datetime.datetime):
        utc = value.astimezone(datetime.UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return str(value)
