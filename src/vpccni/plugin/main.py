"""Entry point of ``vpccni-cni`` (placeholder until the plugin issue lands).

Today it answers VERSION as the CNI spec requires; DEL succeeds (DEL must never fail); every
other verb returns CNI error 11 ("try again later") because no daemon can serve it yet. Output
is always valid CNI JSON; no traceback is ever printed.
"""

from __future__ import annotations

import json
import os
import sys

SPEC_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
CODE_INVALID_ENV = 4
CODE_TRY_AGAIN_LATER = 11


def error(code: int, msg: str, details: str = "") -> int:
    """Print a CNI error object and return the exit code."""
    body = {"cniVersion": SPEC_VERSION, "code": code, "msg": msg}
    if details:
        body["details"] = details
    print(json.dumps(body))
    return 1


def main() -> int:
    """Dispatch on CNI_COMMAND."""
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        print(
            json.dumps({"cniVersion": SPEC_VERSION, "supportedVersions": list(SUPPORTED_VERSIONS)})
        )
        return 0
    if command == "DEL":
        return 0
    if command in ("ADD", "CHECK", "STATUS", "GC"):
        return error(
            CODE_TRY_AGAIN_LATER,
            f"vpccni-cni cannot serve {command} yet",
            "this build ships only the VERSION verb; the ipamd daemon is not implemented yet",
        )
    return error(
        CODE_INVALID_ENV,
        f"invalid CNI_COMMAND {command!r}",
        "expected one of ADD, DEL, CHECK, VERSION, STATUS, GC",
    )


if __name__ == "__main__":
    sys.exit(main())
