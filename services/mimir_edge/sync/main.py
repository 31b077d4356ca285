"""`mimir-overrides-sync`: load Mimir's runtime overrides, write effective limits to Redis."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from mimir_edge import logs
from mimir_edge.core.errors import EdgeError, OverridesError, StoreUnavailable
from mimir_edge.settings import add_redis_flags
from mimir_edge.store.client import RedisConfig, connect
from mimir_edge.store.limits import LimitsStore, SyncResult
from mimir_edge.sync.sources import OverridesDocuments, read_files

log = structlog.get_logger("overrides-sync")


def build_parser(env: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mimir-overrides-sync",
        description="Write the effective per-tenant limits of Mimir's runtime overrides into Redis.",
    )
    parser.add_argument(
        "--source",
        choices=("file", "kubernetes"),
        default="file",
        help="where the overrides come from (default %(default)s)",
    )
    parser.add_argument("--path", type=Path, help="overrides file (source file)")
    parser.add_argument(
        "--defaults-path",
        type=Path,
        help="defaults: Mimir's config (its `limits:` block) or a map of limit fields",
    )
    parser.add_argument("--namespace", default="mimir", help="ConfigMap namespace (source kubernetes)")
    parser.add_argument("--configmap", default="mimir-overrides", help="ConfigMap name (source kubernetes)")
    parser.add_argument("--key", default="overrides.yaml", help="ConfigMap key (source kubernetes)")
    parser.add_argument("--once", action="store_true", help="load, write and exit")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between file checks when running continuously"
    )
    add_redis_flags(parser, env)
    logs.add_log_flags(parser, env)
    return parser


async def sync_once(store: LimitsStore, documents: OverridesDocuments) -> SyncResult:
    result = await store.reconcile(documents.parse())
    log.info(
        "synced",
        generation=result.generation,
        written=len(result.written),
        removed=len(result.removed),
        unchanged=result.unchanged,
        defaults_changed=result.defaults_changed,
    )
    return result


async def run_file(args: argparse.Namespace, store: LimitsStore) -> int:
    if args.once:
        await sync_once(store, read_files(args.path, args.defaults_path))
        return 0
    # Continuous mode: re-read when the content changes; a bad document keeps the last good one.
    last_digest = b""
    while True:
        try:
            documents = read_files(args.path, args.defaults_path)
            digest = hashlib.sha256(documents.overrides.encode() + b"\0" + (documents.defaults or "").encode()).digest()
            if digest != last_digest:
                await sync_once(store, documents)
                last_digest = digest
        except OverridesError as exc:
            log.error("overrides rejected, last good limits kept", error=str(exc))
        except StoreUnavailable as exc:
            log.error("redis unavailable, will retry", error=str(exc))
        await asyncio.sleep(args.interval)


async def amain(args: argparse.Namespace) -> int:
    config = RedisConfig(
        url=args.redis_url,
        cluster_nodes=RedisConfig.parse_cluster_nodes(args.redis_cluster_nodes),
        timeout_s=max(args.redis_timeout, 1.0),
    )
    redis = connect(config)
    try:
        return await run_file(args, LimitsStore(redis))
    finally:
        await redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    if args.source == "kubernetes":
        parser.error("--source kubernetes is not available yet; use --source file --path F")
    if args.path is None:
        parser.error("--source file needs --path")
    try:
        RedisConfig.parse_cluster_nodes(args.redis_cluster_nodes)
    except ValueError as exc:
        parser.error(f"--redis-cluster-nodes: {exc}")
    try:
        return asyncio.run(amain(args))
    except EdgeError as exc:
        log.error("sync failed", error=str(exc))
        print(f"mimir-overrides-sync: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
