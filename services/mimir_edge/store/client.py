"""Redis connections (standalone or Cluster) and the one place redis errors are translated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.cluster
import structlog
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from mimir_edge.address import parse_host_port
from mimir_edge.core.errors import StoreUnavailable

Redis: TypeAlias = aioredis.Redis | RedisCluster
#: What a Redis call can raise when Redis (or the network) fails. RedisClusterException is not a
#: RedisError: a cluster whose nodes all refuse (wrong password, all down) raises it.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
log = structlog.get_logger("store")


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """Where Redis is and how long to wait for it. Cluster mode when `cluster_nodes` is set."""

    url: str = "redis://127.0.0.1:6379/0"
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    #: Budget for one call (a pipeline), connect included.
    timeout_s: float = 0.25
    max_connections: int = 64

    @staticmethod
    def parse_cluster_nodes(text: str) -> tuple[tuple[str, int], ...]:
        """`host:port,host:port` → ((host, port), ...); raises ValueError naming the bad entry."""
        nodes = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            try:
                nodes.append(parse_host_port(entry))
            except ValueError as exc:
                raise ValueError(f"cluster node {exc}") from None
        return tuple(nodes)


def as_text(value: bytes | str) -> str:
    """A Redis reply value as str (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else value


def cluster_auth(config: RedisConfig) -> dict[str, Any]:
    """In Cluster mode REDIS_URL still carries what applies to every node: its credentials and
    its scheme (rediss:// = TLS). Its host is not used; REDIS_CLUSTER_NODES names the nodes."""
    parsed = urlsplit(config.url)
    return {
        "username": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
        "ssl": parsed.scheme == "rediss",
    }


def connect(config: RedisConfig) -> Redis:
    """A client for `config`; connections are made lazily on first use."""
    if config.cluster_nodes:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in config.cluster_nodes],
            socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
            max_connections=config.max_connections,
            # No retries: the token bucket script is not idempotent, and a call re-sent after a
            # timeout would charge twice. Redirections (MOVED/ASK) are still followed, and a
            # connection error still refreshes the topology.
            retry=Retry(NoBackoff(), 0),
            require_full_coverage=False,
            **cluster_auth(config),
        )
    return aioredis.Redis.from_url(
        config.url,
        socket_timeout=config.timeout_s,
        socket_connect_timeout=config.timeout_s,
        max_connections=config.max_connections,
        retry=Retry(NoBackoff(), 0),
    )


@asynccontextmanager
async def translated_errors(what: str) -> AsyncIterator[None]:
    """Turn anything Redis or the network raises into StoreUnavailable."""
    try:
        yield
    except REDIS_ERRORS as exc:
        raise StoreUnavailable(f"redis {what} failed: {type(exc).__name__}: {exc}") from exc


SyncRedis: TypeAlias = redis.Redis | redis.cluster.RedisCluster


def connect_sync(config: RedisConfig, *, timeout_s: float = 1.0) -> SyncRedis:
    """A blocking client, for threads that must not touch the event loop (the admin API)."""
    if config.cluster_nodes:
        return redis.cluster.RedisCluster(
            startup_nodes=[
                redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in config.cluster_nodes
            ],
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            require_full_coverage=False,
            **cluster_auth(config),
        )
    return redis.Redis.from_url(config.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
