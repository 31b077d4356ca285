"""`mimir-edge`: the operator and developer CLI."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from mimir_edge.core.errors import OverridesError
from mimir_edge.sync.sources import read_files


def _validate_overrides(args: argparse.Namespace) -> int:
    try:
        overrides = read_files(args.path, args.defaults_path).parse()
    except OverridesError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    report = {
        "defaults": asdict(overrides.defaults),
        "tenants": {t: asdict(lim) for t, lim in sorted(overrides.tenants.items())},
        "ignored_fields": dict(overrides.ignored_fields),
    }
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mimir_edge import demo

    return demo.run(args.overrides, args.seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimir-edge", description="Mimir Edge Enforcement operator CLI.")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate-overrides", help="parse a runtime overrides file and print the effective limits"
    )
    validate.add_argument("path", type=Path)
    validate.add_argument("--defaults-path", type=Path)
    validate.set_defaults(run=_validate_overrides)
    demo = commands.add_parser("demo", help="run the enforcement engine on a local Redis with sample traffic")
    demo.add_argument("--overrides", type=Path, help="runtime overrides file (default examples/overrides.yaml)")
    demo.add_argument("--seconds", type=float, default=5.0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
