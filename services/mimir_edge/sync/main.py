"""`mimir-overrides-sync`: follow Mimir's runtime overrides, keep effective limits in Redis."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence

import structlog

from mimir_edge import logs
from mimir_edge.address import parse_host_port
from mimir_edge.core.errors import EdgeError
from mimir_edge.settings import absolute_path, add_redis_flags, env_flag, redis_config
from mimir_edge.store.client import RedisConfig, connect
from mimir_edge.store.limits import LimitsStore
from mimir_edge.supervisor import Supervisor
from mimir_edge.sync import http
from mimir_edge.sync.metrics import SyncMetrics
from mimir_edge.sync.service import SyncPolicy, SyncService
from mimir_edge.sync.sources import FileSource

log = structlog.get_logger("overrides-sync")
#: The Kubernetes client is the `sync` extra, so the RLS image can leave it out.
SYNC_EXTRA = "pip install 'mimir-edge-enforcement[sync]'"


def build_parser(env: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mimir-overrides-sync",
        description="Follow Mimir's runtime overrides and keep every tenant's effective limits in Redis.",
    )
    source = parser.add_argument_group("source")
    source.add_argument(
        "--source",
        choices=("file", "kubernetes"),
        default="file",
        help="where the overrides come from (default %(default)s)",
    )
    source.add_argument("--path", type=absolute_path, help="overrides file (source file)")
    source.add_argument(
        "--defaults-path",
        type=absolute_path,
        help="defaults file: Mimir's config (its `limits:` block) or a map of limit fields",
    )
    source.add_argument("--namespace", default="mimir", help="ConfigMap namespace (default %(default)s)")
    source.add_argument("--configmap", default="mimir-overrides", help="ConfigMap name (default %(default)s)")
    source.add_argument("--key", default="overrides.yaml", help="ConfigMap key (default %(default)s)")
    source.add_argument("--defaults-key", help="ConfigMap key holding the defaults document, if any")
    source.add_argument("--kubeconfig", type=absolute_path, help="kubeconfig file (default: in-cluster config)")
    source.add_argument(
        "--interval", type=float, default=0.25, help="seconds between file checks (default %(default)s)"
    )
    source.add_argument(
        "--resync-interval",
        type=float,
        default=300.0,
        help="seconds between full re-reads that repair drift (default %(default)s)",
    )
    safety = parser.add_argument_group("safety")
    safety.add_argument("--once", action="store_true", help="load, write and exit")
    safety.add_argument("--dry-run", action="store_true", help="print the difference it would write; write nothing")
    safety.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="apply a document even if it removes more than --max-delete-fraction of the tenants",
    )
    safety.add_argument(
        "--max-delete-fraction",
        type=float,
        default=0.5,
        help="fraction of tenants one document may remove (default %(default)s)",
    )
    election = parser.add_argument_group("leader election (Kubernetes Lease)")
    election.add_argument("--leader-elect", action="store_true", help="only the Lease holder writes to Redis")
    election.add_argument("--lease-name", default="mimir-overrides-sync")
    election.add_argument("--lease-namespace", help="default: --namespace")
    election.add_argument("--lease-duration", type=int, default=15, help="seconds (default %(default)s)")
    election.add_argument("--identity", help="this candidate's name (default: hostname-pid)")
    env_flag(parser, "HTTP_ADDR", env, default="0.0.0.0:9091", help="listen address of /metrics, /healthz, /readyz")
    add_redis_flags(parser, env)
    logs.add_log_flags(parser, env)
    return parser


def _api_client(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from kubernetes import client, config

    if args.kubeconfig:
        return config.new_client_from_config(config_file=str(args.kubeconfig))
    config.load_incluster_config()
    return client.ApiClient()


async def amain(args: argparse.Namespace, config: RedisConfig) -> int:
    metrics = SyncMetrics()
    elector = None
    if args.source == "kubernetes" or args.leader_elect:
        api_client = _api_client(args)
    if args.source == "kubernetes":
        from mimir_edge.sync.kubernetes import ConfigMapSource

        source: FileSource | ConfigMapSource = ConfigMapSource(
            api_client,
            args.namespace,
            args.configmap,
            args.key,
            defaults_key=args.defaults_key,
            resync_s=args.resync_interval,
            on_restart=lambda reason: metrics.watch_restarts.labels(reason).inc(),
        )
    else:
        source = FileSource(args.path, args.defaults_path, interval_s=args.interval, resync_s=args.resync_interval)
    if args.leader_elect and not args.once:
        from mimir_edge.sync.leader import LeaseElector

        elector = LeaseElector(
            api_client,
            args.lease_namespace or args.namespace,
            args.lease_name,
            args.identity or f"{socket.gethostname()}-{os.getpid()}",
            lease_duration_s=args.lease_duration,
            retry_period_s=max(0.2, args.lease_duration / 5),
        )
        elector.start()

    def is_leader() -> bool:
        leader = elector is None or elector.is_leader
        metrics.leader.set(1 if leader else 0)
        return leader

    redis = connect(config)
    service = SyncService(
        LimitsStore(redis),
        metrics,
        SyncPolicy(
            max_delete_fraction=args.max_delete_fraction, allow_mass_delete=args.allow_mass_delete, dry_run=args.dry_run
        ),
        is_leader=is_leader,
    )
    try:
        if args.once:
            async for event in source.events():
                result = await service.handle(event)
                return 0 if result in ("applied", "unchanged", "dry_run") else 1
            return 1
        server = http.serve(*parse_host_port(args.http_addr), metrics.registry, lambda: service.healthy)
        log.info(
            "overrides-sync started",
            source=source.describe(),
            redis=config.describe(),
            leader_elect=args.leader_elect,
            http_addr=args.http_addr,
            dry_run=args.dry_run,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        tasks = Supervisor(log)
        tasks.start("follow-source", service.follow(source))
        tasks.start("retry-pending", service.retry_pending())
        await tasks.wait(stop)
        await tasks.aclose()
        server.shutdown()
        log.info("overrides-sync stopped", exit_code=tasks.exit_code, failed_task=tasks.failed)
        return tasks.exit_code
    finally:
        if elector is not None:
            elector.stop()
        await redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    logs.report_native_crashes()
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    if args.source == "file" and args.path is None:
        parser.error("--source file needs --path")
    if args.leader_elect and args.once:
        parser.error("--leader-elect makes no sense with --once")
    if args.source == "kubernetes" or args.leader_elect:
        needs = "--source kubernetes" if args.source == "kubernetes" else "--leader-elect"
        try:
            import kubernetes  # noqa: F401  (an optional extra: the file source and the RLS do without it)
        except ImportError:
            parser.error(f"{needs} needs the Kubernetes client: {SYNC_EXTRA}")
    if not 0 < args.max_delete_fraction <= 1:
        parser.error("--max-delete-fraction must be in (0, 1]")
    # At least 1 s a call whatever REDIS_TIMEOUT says: a sync writes in large pipelines.
    config = redis_config(parser, args, min_timeout_s=1.0)
    try:
        parse_host_port(args.http_addr)
    except ValueError as exc:
        parser.error(f"--http-addr: {exc}")
    try:
        return asyncio.run(amain(args, config))
    except EdgeError as exc:
        log.error("sync failed", error=str(exc))
        print(f"mimir-overrides-sync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
