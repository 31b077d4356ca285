"""Degraded enforcement while Redis is unreachable (FAILURE_MODE=local).

Each replica runs the same token bucket model in memory, with the tenant's rate and burst
divided by the number of live replicas (as Mimir's distributors divide the rate among
themselves), so a noisy tenant stays near its budget through the outage. Limits come from the
last decisions Redis made for the tenant (or the defaults); the buckets start full when the
outage starts and are dropped when it ends.

Memory is bounded: tenant ids come from a client's header, so a client sending random ids during
an outage must not grow the replica. Both maps are LRUs of `max_tenants` (LOCAL_MAX_TENANTS).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from mimir_edge.core.token_bucket import BucketLimits, BucketState, Decision, decide

#: Default LOCAL_MAX_TENANTS: far more tenants than a Mimir cluster has, a few tens of MB at most.
MAX_TENANTS = 100_000
MAX_IDLE_MS = 3_600_000


def share(limits: BucketLimits, replicas: int) -> BucketLimits:
    """One replica's share of a tenant's limits."""
    n = max(1, replicas)
    return BucketLimits(
        request_rate=limits.request_rate / n,
        request_burst=math.ceil(limits.request_burst / n),
        ingestion_rate=limits.ingestion_rate / n,
        ingestion_burst=math.ceil(limits.ingestion_burst / n),
    )


class LocalLimiter:
    def __init__(
        self,
        replicas: Callable[[], int],
        *,
        max_tenants: int = MAX_TENANTS,
        clock_us: Callable[[], int] = lambda: time.monotonic_ns() // 1000,
    ):
        if max_tenants < 1:
            raise ValueError(f"max_tenants must be at least 1, not {max_tenants}")
        self._replicas = replicas
        self._clock_us = clock_us
        self.max_tenants = max_tenants
        #: Limits Redis last applied per tenant: an LRU, bounded.
        self._known: OrderedDict[str, BucketLimits] = OrderedDict()
        #: Each tenant's local buckets during the outage: an LRU, bounded. An evicted tenant that
        #: comes back gets a fresh, full bucket: at most one extra burst, what any new id gets
        #: anyway. Acceptable, because a tenant is evicted only after `max_tenants` other ids were
        #: seen since its last request: real tenants, which write every few seconds, stay hot, and
        #: a flood of random ids evicts mostly its own earlier ids.
        self._states: OrderedDict[str, BucketState] = OrderedDict()

    def remember(self, tenant: str, limits: BucketLimits) -> None:
        self._known[tenant] = limits
        self._known.move_to_end(tenant)
        if len(self._known) > self.max_tenants:
            self._known.popitem(last=False)

    def decide(self, tenant: str, *, requests: int, items: int, defaults: BucketLimits) -> Decision:
        limits = share(self._known.get(tenant, defaults), self._replicas())
        state = self._states.get(tenant, BucketState(None, None))
        state, decision = decide(
            state,
            limits,
            now_us=self._clock_us(),
            requests=requests,
            items=items,
            max_idle_ms=MAX_IDLE_MS,
            tenant_limits=tenant in self._known,
        )
        self._states[tenant] = state
        self._states.move_to_end(tenant)
        if len(self._states) > self.max_tenants:
            self._states.popitem(last=False)
        return decision

    @property
    def tenants(self) -> int:
        """Tenants with local buckets now (at most `max_tenants`)."""
        return len(self._states)

    def reset(self) -> None:
        """Redis is back: shared buckets take over again."""
        self._states.clear()
