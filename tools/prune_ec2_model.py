"""Regenerate the pruned EC2 service model the daemon's botocore client loads
(src/vpccni/data/botocore), from the installed botocore's own model.

    python tools/prune_ec2_model.py           # rewrite the files
    python tools/prune_ec2_model.py --check   # exit 1 when the checked-in files differ or an
                                              # operation the daemon calls is missing

botocore's EC2 model holds 830 operations and 4,421 shapes (550 kB gzipped); parsing it costs a
client ~16 MiB of resident memory. The daemon calls the 11 operations of
``vpccni.core.ec2_actions.EC2_ACTIONS``; the pruned model keeps exactly those, the shapes their
inputs, outputs and errors reach, their paginators, and the endpoint rule set (copied byte for
byte), without documentation. ``vpccni.adapters.ec2_boto3.make_ec2_client`` puts the directory
first on botocore's data path. The botocore version it was cut from is recorded in
``pruned-ec2.json`` (with the SHA-256 of every source file), so a botocore upgrade without a
regeneration fails ``--check`` (run by tests/cloud/test_pruned_model.py).
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore
from botocore import xform_name

from vpccni.core.ec2_actions import EC2_ACTIONS

ROOT = Path(__file__).resolve().parent.parent
DIRECTORY = ROOT / "src" / "vpccni" / "data" / "botocore"
API_VERSION = "2016-11-15"
SERVICE_DIR = f"ec2/{API_VERSION}"
SIDECAR = "pruned-ec2.json"
CALLERS = (
    ROOT / "src" / "vpccni" / "adapters" / "ec2_boto3.py",
    ROOT / "src" / "vpccni" / "adapters" / "node_cloud_probe.py",
)
"""The modules that call EC2 through ``make_ec2_client``'s client (``self._client.x`` or
``client.x``): every operation they call must be in the pruned model."""
CLIENT_NAMES = ("_client", "client")
NOT_OPERATIONS = frozenset({"get_paginator", "can_paginate", "meta", "exceptions", "close"})
"""Client attributes that are not EC2 operations."""
KEPT_EXTRAS = ("paginators-1.sdk-extras.json",)
"""botocore ``*.sdk-extras.json`` files this tool knows how to prune (merged over the base file
by botocore's loader, from any directory on the path: the pruned one shadows botocore's)."""


class PruneError(Exception):
    """The installed botocore cannot give the model the daemon needs."""


def source_directory() -> Path:
    """botocore's own EC2 model directory for ``API_VERSION``."""
    return Path(botocore.__file__).resolve().parent / "data" / SERVICE_DIR


def _read_json(directory: Path, stem: str) -> tuple[Any, bytes]:
    """A botocore data file (``.json`` or ``.json.gz``): parsed, and its raw bytes."""
    plain, packed = directory / f"{stem}.json", directory / f"{stem}.json.gz"
    if plain.is_file():
        raw = plain.read_bytes()
        return json.loads(raw), raw
    if packed.is_file():
        raw = packed.read_bytes()
        return json.loads(gzip.decompress(raw)), raw
    raise PruneError(
        f"botocore {botocore.__version__} has no {stem}.json(.gz) in {directory}: install the "
        "botocore version deploy/image/requirements.txt pins"
    )


def _strip(shape_or_ref: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in shape_or_ref.items() if key != "documentation"}


def reachable_shapes(model: Mapping[str, Any], operations: Iterable[str]) -> list[str]:
    """Every shape the operations' inputs, outputs and errors reach, in the model's order."""
    shapes = model["shapes"]
    seen: set[str] = set()
    pending: list[str] = []
    for name in operations:
        operation = model["operations"][name]
        refs = [operation.get("input"), operation.get("output"), *operation.get("errors", [])]
        pending.extend(ref["shape"] for ref in refs if ref)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        shape = shapes[name]
        refs = [*shape.get("members", {}).values()]
        refs += [shape[key] for key in ("member", "key", "value") if key in shape]
        pending.extend(ref["shape"] for ref in refs)
    return [name for name in shapes if name in seen]


def prune_service(model: Mapping[str, Any], operations: Iterable[str]) -> dict[str, Any]:
    """The model with only ``operations`` and their shapes, documentation stripped."""
    kept_operations = [name for name in model["operations"] if name in set(operations)]
    shapes: dict[str, Any] = {}
    for name in reachable_shapes(model, kept_operations):
        shape = _strip(model["shapes"][name])
        if "members" in shape:
            shape["members"] = {key: _strip(ref) for key, ref in shape["members"].items()}
        for key in ("member", "key", "value"):
            if key in shape:
                shape[key] = _strip(shape[key])
        shapes[name] = shape
    pruned = {key: value for key, value in model.items() if key not in ("documentation",)}
    pruned["operations"] = {name: _strip(model["operations"][name]) for name in kept_operations}
    pruned["shapes"] = shapes
    return pruned


def _dump(data: Any) -> bytes:
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()


def generate() -> dict[str, bytes]:
    """Every file of the pruned directory (relative path -> bytes), from the installed botocore."""
    source = source_directory()
    operations = sorted(EC2_ACTIONS)
    service, service_raw = _read_json(source, "service-2")
    missing = [name for name in operations if name not in service["operations"]]
    if missing:
        raise PruneError(
            f"botocore {botocore.__version__}'s EC2 model lacks {', '.join(missing)} "
            "(vpccni.core.ec2_actions.EC2_ACTIONS): use the pinned botocore"
        )
    pruned = prune_service(service, operations)
    paginators, paginators_raw = _read_json(source, "paginators-1")
    kept_paginators = {
        name: config
        for name, config in paginators["pagination"].items()
        if name in pruned["operations"]
    }
    rules = source / "endpoint-rule-set-1.json.gz"
    if not rules.is_file():
        raise PruneError(f"botocore {botocore.__version__} has no {rules}")
    files = {
        f"{SERVICE_DIR}/service-2.json": _dump(pruned),
        f"{SERVICE_DIR}/paginators-1.json": _dump({"pagination": kept_paginators}),
        f"{SERVICE_DIR}/endpoint-rule-set-1.json.gz": rules.read_bytes(),
    }
    sources = {"service-2": service_raw, "paginators-1": paginators_raw}
    for extras in sorted(path.name for path in source.glob("*.sdk-extras.json")):
        if extras not in KEPT_EXTRAS:
            raise PruneError(
                f"botocore {botocore.__version__} has {source / extras}, which this tool does "
                "not prune: teach tools/prune_ec2_model.py its format"
            )
        raw = (source / extras).read_bytes()
        data = json.loads(raw)
        merged = data.get("merge", {}).get("pagination", {})
        data["merge"] = {"pagination": {k: v for k, v in merged.items() if k in kept_paginators}}
        files[f"{SERVICE_DIR}/{extras}"] = _dump(data)
        sources[extras.removesuffix(".json")] = raw
    sources["endpoint-rule-set-1"] = rules.read_bytes()
    sidecar = {
        "botocore": botocore.__version__,
        "api_version": API_VERSION,
        "operations": list(pruned["operations"]),
        "shapes": len(pruned["shapes"]),
        "source_shapes": len(service["shapes"]),
        "paginators": list(kept_paginators),
        "source_sha256": {
            name: hashlib.sha256(raw).hexdigest() for name, raw in sorted(sources.items())
        },
    }
    files[SIDECAR] = _dump(sidecar)
    files["README.md"] = _readme(sidecar).encode()
    return files


def _readme(sidecar: Mapping[str, Any]) -> str:
    operations = ", ".join(sidecar["operations"])
    return f"""# The daemon's pruned EC2 service model (generated: do not edit)

Generated by `tools/prune_ec2_model.py` from botocore {sidecar["botocore"]}'s own EC2 model
(`botocore/data/{SERVICE_DIR}`, Apache-2.0, (c) Amazon.com, Inc. or its affiliates; botocore's
NOTICE applies), the version `deploy/image/requirements.txt` pins. It keeps the
{len(sidecar["operations"])} operations vpccni's daemon calls (`vpccni.core.ec2_actions`:
{operations}), the {sidecar["shapes"]} of {sidecar["source_shapes"]} shapes their inputs,
outputs and errors reach, their paginators ({", ".join(sidecar["paginators"])}) and the endpoint
rule set (copied byte for byte), with the documentation stripped. `{SIDECAR}` records the botocore
version and the SHA-256 of each source file.

`vpccni.adapters.ec2_boto3.make_ec2_client` puts this directory first on botocore's data path,
so the daemon's client parses this model instead of the whole one (830 operations, 4,421 shapes:
~16 MiB of resident memory). The emulator and the tests keep botocore's whole model.

After upgrading botocore, run `python tools/prune_ec2_model.py` and commit the result;
`python tools/prune_ec2_model.py --check` (tests/cloud/test_pruned_model.py) fails until then.
"""


def called_operations(paths: Iterable[Path] = CALLERS) -> dict[str, set[str]]:
    """The client methods (``describe_instances``) and paginators each caller uses."""
    methods: set[str] = set()
    paginators: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and _client_name(node.value) is not None:
                if node.attr not in NOT_OPERATIONS:
                    methods.add(node.attr)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get_paginator"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                paginators.add(str(node.args[0].value))
    return {"methods": methods, "paginators": paginators}


def _client_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name) and node.id in CLIENT_NAMES:
        return node.id
    if isinstance(node, ast.Attribute) and node.attr in CLIENT_NAMES:
        return node.attr
    return None


def coverage_gaps(directory: Path = DIRECTORY, callers: Iterable[Path] = CALLERS) -> list[str]:
    """What the daemon calls that the checked-in pruned model does not hold."""
    service = json.loads((directory / SERVICE_DIR / "service-2.json").read_text(encoding="utf-8"))
    paginators = json.loads(
        (directory / SERVICE_DIR / "paginators-1.json").read_text(encoding="utf-8")
    )["pagination"]
    by_method = {xform_name(name): name for name in service["operations"]}
    gaps = [f"operation {name}" for name in EC2_ACTIONS if name not in service["operations"]]
    used = called_operations(callers)
    gaps += [f"client method {m}" for m in sorted(used["methods"]) if m not in by_method]
    gaps += [
        f"paginator {p}"
        for p in sorted(used["paginators"])
        if p not in by_method or by_method[p] not in paginators
    ]
    return gaps


def differences(directory: Path = DIRECTORY) -> list[str]:
    """The files that are missing, stale or extra against what the installed botocore gives."""
    wanted = generate()
    present = {
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    drift = sorted(present - set(wanted))
    drift += [
        name
        for name, data in sorted(wanted.items())
        if not (directory / name).is_file() or (directory / name).read_bytes() != data
    ]
    return drift


def recorded_version(directory: Path = DIRECTORY) -> str:
    """The botocore version the checked-in model was cut from ('' if unknown)."""
    try:
        return str(json.loads((directory / SIDECAR).read_text(encoding="utf-8"))["botocore"])
    except (OSError, ValueError, KeyError):
        return ""


def write(directory: Path = DIRECTORY) -> Iterator[str]:
    """Write every generated file (removing stale ones); yields what changed."""
    wanted = generate()
    for path in sorted(directory.rglob("*"), reverse=True):
        relative = path.relative_to(directory).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and relative not in wanted:
            path.unlink()
            yield f"removed {relative}"
    for name, data in wanted.items():
        target = directory / name
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        yield f"wrote {relative_to_root(target)}"


def relative_to_root(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a drift")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = []
            drift = differences()
            if drift:
                recorded = recorded_version() or "an unknown botocore"
                problems.append(
                    f"{relative_to_root(DIRECTORY)} (cut from botocore {recorded}) differs from "
                    f"what the installed botocore {botocore.__version__} gives in: "
                    f"{', '.join(drift)}; run 'python tools/prune_ec2_model.py' and commit the "
                    "result"
                )
            gaps = coverage_gaps()
            if gaps:
                problems.append(
                    f"the pruned EC2 model lacks what the daemon calls: {', '.join(gaps)}; add "
                    "the operation to vpccni.core.ec2_actions.EC2_ACTIONS and run "
                    "'python tools/prune_ec2_model.py'"
                )
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        for line in write():
            print(line)
    except PruneError as error:
        print(f"prune_ec2_model: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
