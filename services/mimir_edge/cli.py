"""`mimir-edge`: the operator and developer CLI."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from mimir_edge.core.errors import OverridesError
from mimir_edge.settings import parse_bool
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


def _render_envoy(args: argparse.Namespace) -> int:
    from mimir_edge.deploy.envoy import EnvoyOptions, parse_address, render_yaml

    try:
        options = EnvoyOptions(
            rls=tuple(parse_address(a) for a in args.rls.split(",") if a.strip()),
            upstream=parse_address(args.upstream),
            mode=args.mode,
            charge=args.charge,
            listen=parse_address(args.listen),
            admin=parse_address(args.admin),
            max_request_bytes=args.max_request_bytes,
            tenant_header=args.tenant_header,
            failure_mode_allow=args.failure_mode_allow,
        )
    except ValueError as exc:
        print(f"render-envoy: {exc}", file=sys.stderr)
        return 2
    text = render_yaml(options)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimir-edge", description="Mimir Edge Enforcement operator CLI.")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate-overrides", help="parse a runtime overrides file and print the effective limits"
    )
    validate.add_argument("path", type=Path)
    validate.add_argument("--defaults-path", type=Path)
    validate.set_defaults(run=_validate_overrides)
    envoy = commands.add_parser("render-envoy", help="print the Envoy bootstrap for a deployment mode")
    envoy.add_argument("--rls", required=True, help="RLS gRPC address(es), host:port[,host:port...]")
    envoy.add_argument("--upstream", required=True, help="Mimir distributor host:port")
    envoy.add_argument("--mode", choices=("mirror", "canary", "full"), default="full")
    envoy.add_argument(
        "--charge",
        choices=("check", "ratelimit"),
        default="check",
        help="which filter charges the buckets (default: ext_authz Check, one RPC per request)",
    )
    envoy.add_argument("--listen", default="0.0.0.0:8080", help="listener host:port (default %(default)s)")
    envoy.add_argument("--admin", default="127.0.0.1:9901", help="Envoy admin host:port (default %(default)s)")
    envoy.add_argument("--max-request-bytes", type=int, default=52428800)
    envoy.add_argument("--tenant-header", default="X-Scope-OrgID")
    envoy.add_argument(
        "--failure-mode-allow",
        type=parse_bool,
        default=True,
        help="admit requests when the RLS cannot be reached (default true)",
    )
    envoy.add_argument("-o", "--output", help="write to this file instead of stdout")
    envoy.set_defaults(run=_render_envoy)
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
