"""Degraded enforcement while Redis is unreachable (FAILURE_MODE=local).

Each replica runs the same model as the Lua script in memory (token buckets, HA tracker, exemplar
rule), with the tenant's rate and burst divided by the number of live replicas (as Mimir's
distributors divide the rate among themselves), so a noisy tenant stays near its budget through
the outage. Limits come from the last decisions Redis made for the tenant (or the defaults); the
buckets and HA elections start afresh when the outage starts and are dropped when it ends.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from mimir_edge.core.admission import WriteCharge, admit
from mimir_edge.core.ha_tracker import ElectedReplica
from mimir_edge.core.token_bucket import BucketLimits, BucketState, Decision

MAX_TENANTS = 100_000
MAX_IDLE_MS = 3_600_000


def share(limits: BucketLimits, replicas: int) -> BucketLimits:
    """One replica's share of a tenant's limits."""
    n = max(1, replicas)
    return dataclasses.replace(
        limits,
        request_rate=limits.request_rate / n,
        request_burst=math.ceil(limits.request_burst / n),
        ingestion_rate=limits.ingestion_rate / n,
        ingestion_burst=math.ceil(limits.ingestion_burst / n),
    )


class LocalLimiter:
    def __init__(
        self, replicas: Callable[[], int], *, clock_us: Callable[[], int] = lambda: time.monotonic_ns() // 1000
    ):
        self._replicas = replicas
        self._clock_us = clock_us
        #: Limits Redis last applied per tenant: an LRU, bounded.
        self._known: OrderedDict[str, BucketLimits] = OrderedDict()
        self._states: dict[str, BucketState] = {}
        self._clusters: dict[str, dict[str, ElectedReplica]] = {}

    def remember(self, tenant: str, limits: BucketLimits) -> None:
        self._known[tenant] = limits
        self._known.move_to_end(tenant)
        if len(self._known) > MAX_TENANTS:
            self._known.popitem(last=False)

    def decide(self, tenant: str, *, charge: WriteCharge, defaults: BucketLimits) -> Decision:
        limits = share(self._known.get(tenant, defaults), self._replicas())
        state = self._states.get(tenant, BucketState(None, None))
        clusters = self._clusters.get(tenant, {})
        state, update, decision = admit(
            state,
            clusters,
            limits,
            charge,
            now_us=self._clock_us(),
            max_idle_ms=MAX_IDLE_MS,
            tenant_limits=tenant in self._known,
        )
        self._states[tenant] = state
        if update is not None:
            cluster, elected = update
            self._clusters.setdefault(tenant, {})[cluster] = elected
        return decision

    def reset(self) -> None:
        """Redis is back: shared buckets take over again."""
        self._states.clear()
        self._clusters.clear()
