"""Limit-change announcements: overrides-sync PUBLISHes on LIMITS_CHANNEL after each write (see
limits.py); each RLS replica subscribes with the same credentials and TLS as every other Redis
connection, so a change reaches it at once instead of at its next poll.

On a Cluster a classic PUBLISH reaches every node, so one subscription to any node is enough;
when that node is lost the next one is tried. A lost or refused subscription (wrong password,
Redis down) is logged at warning level and retried with exponential backoff.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mimir_edge import cancellation
from mimir_edge.core.schema import LIMITS_CHANNEL
from mimir_edge.store.address import without_credentials
from mimir_edge.store.client import RedisConfig, is_store_failure

log = structlog.get_logger("store.announcements")
#: A quiet subscription is PINGed this often (when redis-py next reads from it).
HEALTH_CHECK_S = 15
#: redis-py would retry a refused AUTH thrice on its own; the backoff here is the only one.
NO_RETRY = Retry(NoBackoff(), 0)


class LimitChanges:
    """Calls `on_change` once each time the subscription is (re)made, for whatever changed while
    it was not, and once per announcement. `subscribed` says whether it is now."""

    def __init__(self, config: RedisConfig, *, retry_s: float = 0.5, max_retry_s: float = 30.0):
        self._config = config
        self._retry_s = retry_s
        self._max_retry_s = max_retry_s
        self.subscribed = False
        #: Announcements received, for tests and the curious.
        self.received = 0

    def _targets(self) -> list[tuple[str, int] | None]:
        """Where to subscribe: each Cluster node in turn, or (None) REDIS_URL's server."""
        return list(self._config.cluster_nodes) or [None]

    def _client(self, node: tuple[str, int] | None) -> aioredis.Redis:
        config = self._config
        username, password = config.credentials
        # No socket timeout: a subscription is quiet most of the time.
        if node is None:
            return aioredis.Redis.from_url(
                without_credentials(config.url),
                username=username,
                password=password,
                socket_connect_timeout=config.timeout_s,
                health_check_interval=HEALTH_CHECK_S,
                retry=NO_RETRY,
            )
        return aioredis.Redis(
            host=node[0],
            port=node[1],
            username=username,
            password=password,
            ssl=config.tls,
            socket_connect_timeout=config.timeout_s,
            health_check_interval=HEALTH_CHECK_S,
            retry=NO_RETRY,
        )

    async def follow(self, on_change: Callable[[], Awaitable[object]]) -> None:
        """Subscribe forever (until cancelled), calling `on_change` as described above."""
        delay = self._retry_s
        failures = 0
        for node in itertools.cycle(self._targets()):
            where = self._config.describe() if node is None else f"{node[0]}:{node[1]}"
            client = self._client(node)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(LIMITS_CHANNEL)
                async for message in pubsub.listen():
                    kind = message.get("type")
                    if kind == "subscribe":  # Redis confirmed: from now on nothing is missed
                        self.subscribed = True
                        if failures:
                            log.info("limits change subscription restored", redis=where, after_failures=failures)
                        delay, failures = self._retry_s, 0
                        await on_change()
                    elif kind == "message":
                        self.received += 1
                        await on_change()
                    # A cancellation on_change's Redis call swallowed would otherwise wait for
                    # the next announcement: the channel is quiet most of the time.
                    cancellation.raise_if_cancelled()
            except Exception as exc:
                if not is_store_failure(exc):
                    raise
                failures += 1
                log.warning(
                    "limits change subscription failed: changes arrive only by the periodic refresh until it is back",
                    redis=where,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=round(delay, 2),
                )
            finally:
                self.subscribed = False
                await _close_quietly(pubsub.aclose())  # type: ignore[no-untyped-call]
                await _close_quietly(client.aclose())
            await cancellation.sleep(delay)
            delay = min(delay * 2, self._max_retry_s)


async def _close_quietly(closing: Awaitable[object]) -> None:
    """Await a close of a connection that may already be broken; a store failure is expected."""
    try:
        await closing
    except Exception as exc:
        if not is_store_failure(exc):
            raise
