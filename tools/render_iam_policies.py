"""Regenerate deploy/iam/*.json from ``vpccni.deploy.iam``, the one source of the IAM documents.

    python tools/render_iam_policies.py           # rewrite the files
    python tools/render_iam_policies.py --check   # exit 1 when a checked-in file differs

The files hold the documents with their ``${NAME}`` placeholders; ``vpccni manifests
--iam-policy`` / ``--irsa-trust`` print the same text with the values filled in. tests/iam
checks that the checked-in copies have not drifted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vpccni.deploy.iam import templates

DIRECTORY = Path(__file__).resolve().parent.parent / "deploy" / "iam"


def differences(directory: Path = DIRECTORY) -> list[str]:
    """The documents whose file is missing or not the renderer's text."""
    return [
        name
        for name, text in templates().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a drift")
    args = parser.parse_args(argv)
    if args.check:
        drift = differences()
        if drift:
            print(
                f"{DIRECTORY} differs from src/vpccni/deploy/iam.py in: {', '.join(drift)}; run "
                "'python tools/render_iam_policies.py' and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"{DIRECTORY} is up to date")
        return 0
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for name, text in templates().items():
        (DIRECTORY / name).write_text(text, encoding="utf-8")
        print(f"wrote {DIRECTORY / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
