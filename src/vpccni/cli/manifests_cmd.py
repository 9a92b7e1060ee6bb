"""``vpccni manifests``: the Kubernetes objects that run vpccni on every node, as YAML.

Prints a multi-document stream (ServiceAccount, ClusterRole, ClusterRoleBinding, DaemonSet), or
with ``--output DIR`` writes one file per object and a ``kustomization.yaml``. Every variable
given (``--set``, ``--env-file``, ``--cluster-name``, ``--region``) is validated first with the
daemon's own parser: a value the daemon would refuse is refused here with the same words, exit 2,
and nothing is printed or written. ``--iam-policy default|tag-scoped`` prints the IAM permission
policy the daemon needs instead, and ``--irsa-trust`` the IRSA trust policy, with the values
given (``--cluster-name``, ``--account-id``, ``--oidc-provider``, ``--namespace``) checked and
filled in (``vpccni.deploy.iam``, deploy/iam/README.md). See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vpccni.deploy import iam, render
from vpccni.deploy.manifests import (
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    ManifestOptions,
    build_objects,
    check_options,
)
from vpccni.deploy.variables import Assignment, check_names, node_environment, parse_assignment
from vpccni.errors import InvalidInput

MAX_ENV_FILE_BYTES = 1024 * 1024


def register(subparsers: Any) -> None:
    """Add the ``manifests`` subcommand."""
    parser = subparsers.add_parser(
        "manifests",
        help="print the Kubernetes manifests (DaemonSet, RBAC) that run vpccni on every node",
        description="Render the ServiceAccount, ClusterRole, ClusterRoleBinding and DaemonSet "
        "that run vpccni on every Linux node (upstream aws-node's shape: host network, "
        "system-node-critical, every taint tolerated). The DaemonSet's environment is "
        "upstream's shipped-manifest defaults for the variables vpccni reads, changed by "
        "--set, --env-file, --cluster-name and --region; every value is checked with the "
        "daemon's own parser before anything is printed. See docs/deploy.md.",
    )
    parser.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        help=f"the vpccni image both containers run (default {DEFAULT_IMAGE})",
    )
    parser.add_argument(
        "--cluster-name",
        metavar="NAME",
        help="sets CLUSTER_NAME: vpccni tags the ENIs it creates with the cluster's name",
    )
    parser.add_argument(
        "--region",
        metavar="REGION",
        help="sets AWS_REGION and AWS_DEFAULT_REGION (default: the node's region, from IMDS)",
    )
    parser.add_argument(
        "--role-arn",
        metavar="ARN",
        help="IRSA: annotate the ServiceAccount with eks.amazonaws.com/role-arn=ARN, so the pods "
        "get that IAM role's credentials (arn:aws:iam::ACCOUNT:role/NAME); without it the pods "
        "use the node's instance role",
    )
    parser.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        help=f"namespace of the ServiceAccount and DaemonSet (default {DEFAULT_NAMESPACE}, "
        "which every cluster has; it is not created)",
    )
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one environment variable of the pods, any of upstream's or vpccni's (e.g. "
        "WARM_IP_TARGET=5); repeatable; an empty VALUE removes a default; wins over "
        "--env-file",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="FILE",
        help="read NAME=VALUE lines (blank lines and lines starting with # are skipped; the "
        "value is taken literally, no quotes or expansion)",
    )
    parser.add_argument(
        "--iam-policy",
        choices=sorted(iam.POLICY_FILES),
        help="print the IAM permission policy for the role vpccni runs with instead of the "
        "manifests: 'default' (every action vpccni calls, as AmazonEKS_CNI_Policy) or "
        "'tag-scoped' (changes only to this cluster's ENIs and nodes; needs --cluster-name)",
    )
    parser.add_argument(
        "--irsa-trust",
        action="store_true",
        help="print the IRSA trust policy of that role instead of the manifests: the "
        "ServiceAccount NAMESPACE/vpccni may assume it (needs --account-id, --oidc-provider)",
    )
    parser.add_argument(
        "--account-id", metavar="ID", help="--irsa-trust: the AWS account (12 digits)"
    )
    parser.add_argument(
        "--oidc-provider",
        metavar="URL",
        help="--irsa-trust: the cluster's OIDC issuer URL "
        "(aws eks describe-cluster --query cluster.identity.oidc.issuer)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="write one YAML file per object and kustomization.yaml into DIR (created if "
        "missing; those files are replaced) instead of printing",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> str:
    """Validate, build, then print or write."""
    if args.iam_policy is not None or args.irsa_trust:
        return iam_document(args)
    for flag, value in (("--account-id", args.account_id), ("--oidc-provider", args.oidc_provider)):
        if value is not None:
            raise InvalidInput(f"{flag} is used by --irsa-trust only")
    options = ManifestOptions(
        image=args.image,
        namespace=args.namespace,
        role_arn=args.role_arn,
        assignments=tuple(assignments(args)),
    )
    check_options(options)
    environment = node_environment(list(options.assignments))
    objects = build_objects(options, environment)
    for warning in environment.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.output is None:
        return render.stream(objects).rstrip("\n")
    written = write_files(args.output, render.files(objects))
    return "wrote " + ", ".join(str(path) for path in written)


def iam_document(args: argparse.Namespace) -> str:
    """``--iam-policy`` or ``--irsa-trust``: one IAM document, its values checked and filled in.
    Options that only shape the Kubernetes manifests are refused, never ignored."""
    if args.iam_policy is not None and args.irsa_trust:
        raise InvalidInput("give --iam-policy or --irsa-trust, not both: each prints one document")
    shown = f"--iam-policy {args.iam_policy}" if args.iam_policy is not None else "--irsa-trust"
    manifest_only = (
        ("--output", args.output is not None),
        ("--set", bool(args.assignments)),
        ("--env-file", args.env_file is not None),
        ("--image", args.image != DEFAULT_IMAGE),
        ("--role-arn", args.role_arn is not None),
        ("--region", args.region is not None),
    )
    for flag, given in manifest_only:
        if given:
            raise InvalidInput(
                f"{flag} shapes the Kubernetes manifests, not {shown}; print the IAM document "
                "and the manifests with two commands"
            )
    values = iam.IamValues(args.cluster_name, args.account_id, args.oidc_provider, args.namespace)
    if args.irsa_trust:
        if args.cluster_name is not None:
            raise InvalidInput(
                "--cluster-name is not used by --irsa-trust (the trust policy names "
                "the ServiceAccount, not the cluster)"
            )
        check_options(ManifestOptions(namespace=args.namespace))
        return iam.trust_text(values).rstrip("\n")
    for flag, value in (("--account-id", args.account_id), ("--oidc-provider", args.oidc_provider)):
        if value is not None:
            raise InvalidInput(f"{flag} is used by --irsa-trust only, not by {shown}")
    if args.iam_policy == "default" and args.cluster_name is not None:
        raise InvalidInput(
            "--cluster-name scopes --iam-policy tag-scoped only; the default policy names no "
            "cluster"
        )
    text = iam.policy_text(args.iam_policy, values)
    if args.iam_policy == "tag-scoped":
        print(
            f"note: run the daemon with CLUSTER_NAME={args.cluster_name} (vpccni manifests "
            f"--cluster-name {args.cluster_name}); tag each node's instance "
            f"kubernetes.io/cluster/{args.cluster_name}=owned and its primary ENI "
            f"cluster.k8s.amazonaws.com/name={args.cluster_name} (deploy/iam/README.md)",
            file=sys.stderr,
        )
    return text.rstrip("\n")


def assignments(args: argparse.Namespace) -> list[Assignment]:
    """The file's variables, then the command line's (which replace the file's)."""
    from_file = read_env_file(args.env_file) if args.env_file is not None else []
    check_names(from_file)
    given = [parse_assignment(text, "--set") for text in args.assignments]
    if args.cluster_name is not None:
        given.append(Assignment("CLUSTER_NAME", args.cluster_name, "--cluster-name"))
    if args.region is not None:
        given.append(Assignment("AWS_REGION", args.region, "--region"))
        given.append(Assignment("AWS_DEFAULT_REGION", args.region, "--region"))
    replaced = {item.name for item in given}
    return [item for item in from_file if item.name not in replaced] + given


def read_env_file(path: Path) -> list[Assignment]:
    """``NAME=VALUE`` per line; blank and ``#`` lines skipped; the value taken literally."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_ENV_FILE_BYTES + 1)
    except OSError as error:
        raise InvalidInput(
            f"cannot read --env-file {path}: {error.strerror}; check the path"
        ) from None
    if len(data) > MAX_ENV_FILE_BYTES:
        raise InvalidInput(f"--env-file {path} is larger than {MAX_ENV_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"--env-file {path} is not UTF-8 text") from None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        found.append(parse_assignment(line.lstrip(), f"{path} line {number}"))
    return found


def write_files(directory: Path, contents: dict[str, str]) -> list[Path]:
    """Every file written to a temporary name first, then each renamed into place."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInput(
            f"cannot create --output directory {directory}: {error.strerror}; choose a "
            "directory you can write"
        ) from None
    staged: list[tuple[Path, Path]] = []
    try:
        for name, text in contents.items():
            temporary = directory / f".{name}.{os.getpid()}.tmp"
            staged.append((temporary, directory / name))
            temporary.write_text(text, encoding="utf-8")
        for temporary, target in staged:
            temporary.replace(target)
    except OSError as error:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise InvalidInput(
            f"cannot write into {directory}: {error.strerror}; choose a directory you can write"
        ) from None
    return [target for _, target in staged]
