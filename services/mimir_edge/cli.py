"""`mimir-edge`: the operator and developer CLI."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from mimir_edge.core.errors import OverridesError
from mimir_edge.localstack.processes import DEFAULT_PORT_BASE
from mimir_edge.settings import absolute_path, parse_bool
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


def _up(args: argparse.Namespace) -> int:
    from mimir_edge.localstack import up

    options = up.UpOptions(
        state_dir=args.state_dir,
        replicas=args.replicas,
        port_base=args.port_base,
        overrides=args.overrides or up.demo_overrides(),
        nginx=not args.no_nginx,
        traffic_seconds=args.traffic_seconds,
        background_traffic=not args.no_background_traffic,
    )
    return up.up(options, exit_after_traffic=args.exit_after_traffic)


def _down(args: argparse.Namespace) -> int:
    from mimir_edge.localstack import up

    return up.down(args.state_dir)


def _stand_in_distributor(args: argparse.Namespace) -> int:
    import signal
    import threading

    from mimir_edge.address import parse_host_port as parse_address
    from mimir_edge.localstack.distributor import StandInDistributor

    host, port = parse_address(args.listen)
    distributor = StandInDistributor(host=host, port=port).start()
    print(f"stand-in distributor (NOT Mimir: accepts remote_write, counts per tenant) on {host}:{distributor.port}")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    distributor.stop()
    return 0


def _render_envoy(args: argparse.Namespace) -> int:
    from mimir_edge.address import parse_host_port as parse_address
    from mimir_edge.deploy.envoy import EnvoyOptions, render_yaml

    try:
        options = EnvoyOptions(
            rls=tuple(parse_address(a) for a in args.rls.split(",") if a.strip()),
            upstream=parse_address(args.upstream),
            mode=args.mode,
            charge=args.charge,
            authz_transport=args.authz_transport,
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
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _render_nginx(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from mimir_edge.address import parse_host_port as parse_address
    from mimir_edge.deploy.nginx import EXAMPLE_NAMES, NginxOptions, configmap_yaml, phase_options, render

    try:
        tenants = []
        for pair in args.basic_auth_tenant:
            user, sep, password = pair.partition(":")
            if not sep:
                raise ValueError(f"--basic-auth-tenant {pair!r} is not USER:PASSWORD")
            tenants.append((user, password))
        base = NginxOptions(
            listen=parse_address(args.listen),
            distributor=parse_address(args.distributor),
            envoy=parse_address(args.envoy),
            tenant_header=args.tenant_header,
            client_max_body_size=args.client_max_body_size,
            basic_auth_tenants=tuple(tenants),
            push_path=args.push_path,
            upstream_path=args.upstream_path,
            runtime_dir=args.runtime_dir,
            passthrough=parse_address(args.passthrough) if args.passthrough else None,
        )
        if args.all_examples:
            directory = args.all_examples
            directory.mkdir(parents=True, exist_ok=True)
            for name in EXAMPLE_NAMES:
                path = directory / f"nginx-{name}.yaml"
                path.write_text(configmap_yaml(phase_options(name, base), args.configmap or "mimir-edge-nginx"))
                print(f"wrote {path}")
            return 0
        if args.phase is None:
            raise ValueError("--phase is required (or --all-examples DIR)")
        options = replace(base, phase=args.phase, canary_percent=args.percent if args.phase == "canary" else 0)
        text = configmap_yaml(options, args.configmap) if args.configmap else render(options)
    except ValueError as exc:
        print(f"render-nginx: {exc}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from mimir_edge.deploy.rollout import RolloutError, RolloutOptions, execute

    options = RolloutOptions(
        namespace=args.namespace,
        configmap=args.configmap,
        nginx_deployment=args.nginx_deployment,
        rls_deployment=args.rls_deployment,
        rls_namespace=args.rls_namespace,
        envoy_configmap=args.envoy_configmap,
        check_envoy=not args.skip_envoy_check,
        examples_dir=args.examples_dir,
        kubectl=args.kubectl,
        context=args.context,
        timeout=args.timeout,
        force=args.force,
        dry_run=args.dry_run,
    )
    try:
        return execute(args.phase, options, sys.stdout)
    except RolloutError as exc:
        print(f"rollout: {exc}", file=sys.stderr)
        return 1


def _config_doc(args: argparse.Namespace) -> int:
    from mimir_edge.config_reference import render

    text = render(build_parser())
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _add_nginx_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mimir_edge.deploy.nginx import DEFAULT_DISTRIBUTOR, DEFAULT_ENVOY, PHASES

    nginx = commands.add_parser("render-nginx", help="print the NGINX config (or ConfigMap) for a rollout phase")
    nginx.add_argument("--phase", choices=PHASES, help="direct (rollback), mirror, canary, full")
    nginx.add_argument("--percent", type=int, default=10, help="canary: %% of tenants through Envoy (default 10)")
    nginx.add_argument("--listen", default="0.0.0.0:8080", help="listen host:port (default %(default)s)")
    nginx.add_argument("--distributor", default="{}:{}".format(*DEFAULT_DISTRIBUTOR), help="default %(default)s")
    nginx.add_argument("--envoy", default="{}:{}".format(*DEFAULT_ENVOY), help="default %(default)s")
    nginx.add_argument("--tenant-header", default="X-Scope-OrgID")
    nginx.add_argument("--client-max-body-size", type=int, default=52428800, help="bytes, >= MAX_REQUEST_BYTES")
    nginx.add_argument(
        "--basic-auth-tenant",
        action="append",
        default=[],
        metavar="USER:PASSWORD",
        help="a request with these basic-auth credentials and no tenant header is tenant USER (repeatable)",
    )
    nginx.add_argument("--push-path", default="/api/v1/push", help="the path clients push to")
    nginx.add_argument("--upstream-path", default="/api/v1/push", help="the path the distributor is called with")
    nginx.add_argument("--runtime-dir", default="/tmp", help="writable directory for the pid and temp files")
    nginx.add_argument(
        "--passthrough",
        metavar="HOST:PORT",
        help="pass every path that is not a write (queries, rules, Alertmanager) untouched to this address "
        "(Mimir's gateway or query-frontend); default: a 404 naming the write paths served",
    )
    nginx.add_argument("--configmap", help="print a Kubernetes ConfigMap of this name (data key nginx.conf)")
    nginx.add_argument(
        "--all-examples",
        metavar="DIR",
        type=absolute_path,
        help="write DIR/nginx-<phase>.yaml ConfigMaps for every rollout phase (how examples/ is made)",
    )
    nginx.add_argument("-o", "--output", type=absolute_path, help="write to this file instead of stdout")
    nginx.set_defaults(run=_render_nginx)


def _add_rollout_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from mimir_edge.deploy.rollout import TARGETS

    rollout = commands.add_parser(
        "rollout",
        help="move the cluster to a rollout phase with kubectl (mirror, canary-N, full; rollback = direct)",
        description="Prints the plan, checks the phase order and Envoy's mode, then: the RLS in shadow (mirror) "
        "or enforcing (canary, full), the phase's NGINX ConfigMap from --examples-dir, a rolling restart of "
        "NGINX, each waited for. `rollback` applies nginx-direct.yaml at once, with no checks.",
    )
    rollout.add_argument("phase", choices=TARGETS)
    rollout.add_argument(
        "--namespace", default="mimir-edge-enforcement", help="NGINX's namespace (default %(default)s)"
    )
    rollout.add_argument("--configmap", default="mimir-edge-nginx", help="NGINX's ConfigMap (default %(default)s)")
    rollout.add_argument("--nginx-deployment", default="mimir-edge-nginx", help="default %(default)s")
    rollout.add_argument("--rls-deployment", default="mimir-rls", help="default %(default)s")
    rollout.add_argument("--rls-namespace", help="the RLS's and Envoy's namespace (default: --namespace)")
    rollout.add_argument(
        "--envoy-configmap", default="mimir-envoy", help="holds Envoy's bootstrap (default %(default)s)"
    )
    rollout.add_argument("--skip-envoy-check", action="store_true", help="do not check Envoy's mode before canary/full")
    rollout.add_argument(
        "--examples-dir",
        type=absolute_path,
        default="examples",
        help="where nginx-<phase>.yaml are (default %(default)s)",
    )
    rollout.add_argument("--kubectl", default="kubectl", help="kubectl binary (default %(default)s)")
    rollout.add_argument("--context", help="kubeconfig context")
    rollout.add_argument("--timeout", default="5m", help="for each `kubectl rollout status` (default %(default)s)")
    rollout.add_argument("--force", action="store_true", help="skip the phase-order and Envoy checks")
    rollout.add_argument("--dry-run", action="store_true", help="print every kubectl command, run none")
    rollout.set_defaults(run=_rollout)


def _add_local_stack_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    state_help = "where the state file (PIDs) and logs go (default %(default)s)"
    up = commands.add_parser(
        "up",
        help="start the whole product locally (Redis, overrides-sync, RLS replicas, Envoy, NGINX, a stand-in "
        "distributor), show traffic being enforced, run until Ctrl-C",
    )
    up.add_argument("--replicas", type=int, default=3, help="RLS replicas (default %(default)s)")
    up.add_argument(
        "--port-base",
        type=int,
        default=DEFAULT_PORT_BASE,
        help="ports: NGINX base, Envoy base+1 (admin +2), distributor +3, Redis +4, overrides-sync +5, "
        "RLS i gRPC/admin/metrics/ext_authz HTTP base+10+i/20+i/30+i/40+i (default %(default)s)",
    )
    up.add_argument("--state-dir", type=absolute_path, default=".mimir-edge", help=state_help)
    up.add_argument(
        "--overrides",
        type=absolute_path,
        help="runtime overrides file (default: the demo's, examples/overrides.yaml, shipped in the package)",
    )
    up.add_argument("--no-nginx", action="store_true", help="push to Envoy directly even if NGINX is installed")
    up.add_argument("--traffic-seconds", type=float, default=10.0, help="demo traffic at start (0: none)")
    up.add_argument("--no-background-traffic", action="store_true", help="no low-rate traffic while running")
    up.add_argument("--exit-after-traffic", action="store_true", help="stop after the demo traffic (scripts)")
    up.set_defaults(run=_up)
    down = commands.add_parser("down", help="stop what `mimir-edge up` started (after a crash, too)")
    down.add_argument("--state-dir", type=absolute_path, default=".mimir-edge", help=state_help)
    down.set_defaults(run=_down)
    stand_in = commands.add_parser(
        "stand-in-distributor", help="a stand-in Mimir distributor (NOT Mimir) for local stacks and docker-compose"
    )
    stand_in.add_argument("--listen", default="0.0.0.0:8080", help="host:port (default %(default)s)")
    stand_in.set_defaults(run=_stand_in_distributor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mimir-edge", description="Mimir Edge Enforcement operator CLI.")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate-overrides", help="parse a runtime overrides file and print the effective limits"
    )
    validate.add_argument("path", type=absolute_path)
    validate.add_argument("--defaults-path", type=absolute_path)
    validate.set_defaults(run=_validate_overrides)
    envoy = commands.add_parser("render-envoy", help="print the Envoy bootstrap for a deployment mode")
    envoy.add_argument(
        "--rls",
        required=True,
        help="RLS address(es) of the transport, host:port[,host:port...]: AUTHZ_HTTP_ADDR (http), GRPC_ADDR (grpc)",
    )
    envoy.add_argument("--upstream", required=True, help="Mimir distributor host:port")
    envoy.add_argument("--mode", choices=("mirror", "canary", "full"), default="full")
    envoy.add_argument(
        "--charge",
        choices=("check", "ratelimit"),
        default="check",
        help="which filter charges the buckets (default: ext_authz Check, one RPC per request)",
    )
    envoy.add_argument(
        "--authz-transport",
        choices=("grpc", "http"),
        default="",
        help=(
            "ext_authz over Envoy's HTTP service (the default with --charge check: less RLS CPU per request) "
            "or gRPC (the default with --charge ratelimit, which needs it: the rate limit filter speaks gRPC only). "
            "Over HTTP, with the RLS's failure mode deny, clients get Envoy's 503 without Retry-After"
        ),
    )
    envoy.add_argument("--listen", default="0.0.0.0:8080", help="listener host:port (default %(default)s)")
    envoy.add_argument("--admin", default="127.0.0.1:9901", help="Envoy admin host:port (default %(default)s)")
    envoy.add_argument("--max-request-bytes", type=int, default=52428800)
    envoy.add_argument("--tenant-header", default="X-Scope-OrgID")
    envoy.add_argument(
        "--failure-mode-allow",
        type=parse_bool,
        default=True,
        help=(
            "admit requests when the RLS cannot be reached (default true); set it as the RLS's "
            "FAILURE_MODE_ALLOW: over HTTP Envoy applies it to the RLS's 503 too"
        ),
    )
    envoy.add_argument("-o", "--output", type=absolute_path, help="write to this file instead of stdout")
    envoy.set_defaults(run=_render_envoy)
    _add_nginx_parser(commands)
    _add_rollout_parser(commands)
    _add_local_stack_parsers(commands)
    doc = commands.add_parser(
        "config-doc",
        help="print the configuration reference (docs/configuration.md), generated from the programs' parsers",
    )
    doc.add_argument("-o", "--output", type=absolute_path, help="write to this file instead of stdout")
    doc.set_defaults(run=_config_doc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
