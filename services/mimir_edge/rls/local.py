"""Degraded enforcement while Redis is unreachable (FAILURE_MODE=local).

Each replica runs the same model as the Lua script in memory (token buckets, HA tracker, exemplar
rule), with the tenant's rate and burst divided by the number of live replicas (as Mimir's
distributors divide the rate among themselves), so a noisy tenant stays near its budget through
the outage. Limits come from the last decisions Redis made for the tenant (or the defaults); the
buckets and HA elections start afresh when the outage starts and are dropped when it ends.

Memory is bounded: tenant ids (and HA cluster names) come from a client's request, so a client
sending random ones during an outage must not grow the replica. The per-tenant maps are LRUs of
`max_tenants` (LOCAL_MAX_TENANTS), and each tenant keeps at most MAX_CLUSTERS HA clusters.
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

#: Default LOCAL_MAX_TENANTS: far more tenants than a Mimir cluster has, a few tens of MB at most.
MAX_TENANTS = 100_000
#: HA clusters kept per tenant in local mode (Mimir's default ha_max_clusters is 100).
MAX_CLUSTERS = 1000
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
        #: Each tenant's HA clusters, evicted with its buckets.
        self._clusters: dict[str, dict[str, ElectedReplica]] = {}

    def remember(self, tenant: str, limits: BucketLimits) -> None:
        self._known[tenant] = limits
        self._known.move_to_end(tenant)
        if len(self._known) > self.max_tenants:
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
            tenant_clusters = self._clusters.setdefault(tenant, {})
            tenant_clusters[cluster] = elected
            if len(tenant_clusters) > MAX_CLUSTERS:
                # The least recently seen cluster goes: Mimir would have refused most of them anyway.
                del tenant_clusters[min(tenant_clusters, key=lambda c: tenant_clusters[c].last_seen_us)]
        self._states.move_to_end(tenant)
        if len(self._states) > self.max_tenants:
            evicted, _ = self._states.popitem(last=False)
            self._clusters.pop(evicted, None)
        return decision

    @property
    def tenants(self) -> int:
        """Tenants with local buckets now (at most `max_tenants`)."""
        return len(self._states)

    def reset(self) -> None:
        """Redis is back: shared buckets take over again."""
        self._states.clear()
        self._clusters.clear()
