"""What the Envoy benchmarks stand on: redis-server with the tenants' limits, the fast upstream
(bench/upstream.py) and one `mimir-rls`, each appended to `started` so the caller stops them."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis as sync_redis
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.schema import encode_limits, limits_key
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.localstack.processes import Process, free_port, port_open
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import RlsProcess


@dataclass
class BenchStack:
    redis: RedisServer
    upstream_port: int
    rls: RlsProcess
    more_rls: tuple[RlsProcess, ...] = ()
    upstream: Process | None = None

    def envoy_options(self, rls: int = 1, transport: str = "grpc") -> EnvoyOptions:
        processes = (self.rls, *self.more_rls)[:rls]
        return EnvoyOptions(
            rls=tuple(("127.0.0.1", p.authz_port(transport)) for p in processes),
            authz_transport=transport,
            upstream=("127.0.0.1", self.upstream_port),
            listen=("127.0.0.1", 0),
            admin=("127.0.0.1", 0),
        )


def start(work: Path, limits: Mapping[str, TenantLimits], started: list[Any], rls_count: int = 1) -> BenchStack:
    redis = RedisServer(work / "redis").start()
    started.append(redis)
    client = sync_redis.Redis.from_url(redis.url)
    for tenant, tenant_limits in limits.items():
        client.hset(limits_key(tenant), mapping=dict(encode_limits(tenant_limits)))  # type: ignore[arg-type]
    client.close()
    upstream_port = free_port()
    upstream = Process("upstream", [sys.executable, "-m", "bench.upstream", str(upstream_port)], work / "upstream.log")
    upstream.start(lambda: port_open("127.0.0.1", upstream_port))
    started.append(upstream)
    processes = []
    for _ in range(rls_count):
        rls = RlsProcess(work, env={"REDIS_URL": redis.url, "LOG_LEVEL": "warning"}).start()
        started.append(rls)
        processes.append(rls)
    return BenchStack(redis, upstream_port, processes[0], tuple(processes[1:]), upstream)
