"""Redis connections (standalone or Cluster) and the one place redis errors are translated."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeAlias

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
from mimir_edge.store.address import check_url, redact_url, url_credentials, without_credentials

Redis: TypeAlias = aioredis.Redis | RedisCluster
#: What a Redis call can raise when Redis (or the network) fails. RedisClusterException is not a
#: RedisError: a cluster whose nodes all refuse (wrong password, all down) raises it.
REDIS_ERRORS = (RedisError, RedisClusterException, OSError, TimeoutError)
#: What uvloop (the RLS's event loop) raises when redis-py writes to a connection the server has
#: already reset: redis-py sends its handshake (CLIENT SETINFO LIB-NAME, then LIB-VER) as separate
#: writes, and a Redis that is stopped between them leaves the second write a closed transport.
#: redis-py lets it through unchanged; asyncio's own loop raises ConnectionResetError instead.
CLOSED_TRANSPORT = "the handler is closed"
log = structlog.get_logger("store")


def is_store_failure(exc: BaseException) -> bool:
    """Whether `exc` says that Redis or the network failed (not a bug of ours)."""
    if isinstance(exc, REDIS_ERRORS):
        return True
    return isinstance(exc, RuntimeError) and CLOSED_TRANSPORT in str(exc)


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """Where Redis is, how to log in and how long to wait for it. Cluster mode when
    `cluster_nodes` is set; REDIS_URL then only says rediss:// (TLS) or not, and may carry the
    credentials. `username` / `password` (REDIS_USERNAME / REDIS_PASSWORD) win over the URL's."""

    url: str = "redis://127.0.0.1:6379/0"
    cluster_nodes: tuple[tuple[str, int], ...] = ()
    #: Budget for one call (a pipeline), connect included.
    timeout_s: float = 0.25
    max_connections: int = 64
    username: str = ""
    password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        check_url(self.url)

    def __repr__(self) -> str:
        return (
            f"RedisConfig(url={redact_url(self.url)!r}, cluster_nodes={self.cluster_nodes!r}, "
            f"timeout_s={self.timeout_s!r}, username={self.username!r}, password={'***' if self.password else ''!r})"
        )

    @property
    def credentials(self) -> tuple[str | None, str | None]:
        """(username, password) to log in with: REDIS_USERNAME / REDIS_PASSWORD, else the URL's."""
        url_user, url_password = url_credentials(self.url)
        return self.username or url_user, self.password or url_password

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://")

    def describe(self) -> str:
        """Where Redis is, safe to log and show: the URL redacted, or the Cluster's nodes."""
        if self.cluster_nodes:
            nodes = ",".join(f"{host}:{port}" for host, port in self.cluster_nodes)
            return f"cluster{' (tls)' if self.tls else ''} {nodes}"
        return redact_url(self.url)

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


def node_auth(config: RedisConfig) -> dict[str, Any]:
    """What every node of a Cluster logs in with: the credentials and whether to use TLS.
    REDIS_URL's host is not used in Cluster mode."""
    username, password = config.credentials
    return {"username": username, "password": password, "ssl": config.tls}


def _from_url_kwargs(config: RedisConfig) -> dict[str, Any]:
    # redis-py lets the URL's credentials override keyword arguments, so the URL goes without them.
    username, password = config.credentials
    return {"url": without_credentials(config.url), "username": username, "password": password}


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
            **node_auth(config),
        )
    return aioredis.Redis.from_url(
        **_from_url_kwargs(config),
        socket_timeout=config.timeout_s,
        socket_connect_timeout=config.timeout_s,
        max_connections=config.max_connections,
        retry=Retry(NoBackoff(), 0),
    )


class translated_errors:
    """`async with` or `with translated_errors("what")`: anything Redis or the network raises in
    the block becomes StoreUnavailable. The one place foreign Redis errors are translated."""

    def __init__(self, what: str):
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and is_store_failure(exc):
            raise StoreUnavailable(f"redis {self._what} failed: {type(exc).__name__}: {exc}") from exc

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, exc, tb)


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
            **node_auth(config),
        )
    return redis.Redis.from_url(**_from_url_kwargs(config), socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
