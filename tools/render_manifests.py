"""Regenerate deploy/kubernetes/base from ``vpccni.deploy``, the one source of the manifests.

    python tools/render_manifests.py           # rewrite the base
    python tools/render_manifests.py --check   # exit 1 when the checked-in base differs

The base is exactly what ``vpccni manifests --output deploy/kubernetes/base`` writes (defaults,
no options); tests/deploy checks that the checked-in copy has not drifted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vpccni.cli.manifests_cmd import write_files
from vpccni.deploy import render
from vpccni.deploy.manifests import ManifestOptions, build

BASE = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "base"


def rendered() -> dict[str, str]:
    """File name -> text of the base, as the renderer produces it now."""
    return render.files(build(ManifestOptions()))


def differences(directory: Path = BASE) -> list[str]:
    """The base's files that are missing, stale or not the renderer's."""
    expected = rendered()
    found = {path.name for path in directory.glob("*.yaml")} if directory.is_dir() else set()
    stale = sorted(found - set(expected))
    changed = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != text
    ]
    return changed + [f"{name} (not rendered any more)" for name in stale]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on a drift")
    args = parser.parse_args(argv)
    if args.check:
        drift = differences()
        if drift:
            print(
                f"{BASE} differs from the renderer in: {', '.join(drift)}; run "
                "'python tools/render_manifests.py' and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"{BASE} is up to date")
        return 0
    for path in BASE.glob("*.yaml"):
        if path.name not in rendered():
            path.unlink()
    for path in write_files(BASE, rendered()):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
