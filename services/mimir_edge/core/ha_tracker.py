"""Mimir's HA tracker (distributor HA dedupe), in pure Python: the model of its part in
`lua/token_bucket.lua`.

An HA Prometheus pair sends the same series twice, told apart by a replica label; Mimir keeps one
elected replica per (tenant, cluster) and answers the other 202 before its ingestion rate limit,
so the duplicate costs a request but no items. The rules mirrored here
(`pkg/distributor/ha_tracker.go`, `checkReplica` / `checkKVStore`):
- the first replica seen for a cluster is elected;
- a request from the elected replica refreshes its last-seen time;
- a request from another replica is refused (non-elected) unless the elected one has not been
  seen for at least the failover timeout: then this replica is elected (a failover). Mimir
  (`updateKVStore`) keeps the elected replica while `now - ReceivedAt < failover_timeout`; it fails
  over from a background loop and from a last-seen time written at most every update timeout, so
  it switches up to ~20 s later than this; the edge switches at the first request past the
  timeout (docs/parity.md says what that costs);
- a new cluster beyond `ha_max_clusters` (0 = no limit) is refused with 400;
- the request is HA only when the tenant has `accept_ha_samples`, the request has series, and its
  first series carries both labels with non-empty values (`findHALabels`).
Time is in integer microseconds, as in the token bucket.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mimir_edge.core.limits import TenantLimits

MICROS = 1_000_000
#: A cluster not seen for this long is forgotten: Mimir's HA tracker marks an elected replica
#: deleted 30 minutes after its last sample (`cleanupOldReplicas`) and frees the cluster's
#: `ha_max_clusters` slot then or up to 36 minutes later. Forgetting at the earliest of those means
#: the edge never refuses a new cluster that Mimir would accept.
FORGET_MS = 30 * 60 * 1000


class HaOutcome(enum.StrEnum):
    """What the tracker made of one request."""

    NOT_HA = "not_ha"  # tenant without accept_ha_samples, or the first series lacks a label
    ELECTED = "elected"
    FAILOVER = "failover"  # elected by this request, the previous replica having timed out
    NON_ELECTED = "non_elected"  # Mimir answers 202 and ingests nothing; no items are charged
    TOO_MANY_CLUSTERS = "too_many_clusters"  # Mimir answers 400


@dataclass(frozen=True, slots=True)
class HaLimits:
    accept_ha_samples: bool
    cluster_label: str
    replica_label: str
    max_clusters: int
    failover_timeout_us: int

    @classmethod
    def from_tenant_limits(cls, limits: TenantLimits) -> HaLimits:
        return cls(
            accept_ha_samples=limits.accept_ha_samples,
            cluster_label=limits.ha_cluster_label,
            replica_label=limits.ha_replica_label,
            max_clusters=limits.ha_max_clusters,
            # floor(x + 0.5), as the Lua script rounds it.
            failover_timeout_us=math.floor(limits.ha_tracker_failover_timeout * MICROS + 0.5),
        )


HA_OFF = HaLimits(False, "cluster", "__replica__", 100, 30 * MICROS)


@dataclass(frozen=True, slots=True)
class ElectedReplica:
    """The tracker's state for one cluster."""

    replica: str
    last_seen_us: int
    failovers: int = 0


def ha_labels(labels: Sequence[tuple[str, str]], limits: HaLimits) -> tuple[str, str] | None:
    """(cluster, replica) from the first series' labels, or None when the request is not HA:
    Mimir's `findHALabels` needs both labels present and non-empty."""
    if not limits.accept_ha_samples:
        return None
    cluster = replica = ""
    for name, value in labels:
        if name == limits.cluster_label:
            cluster = value
        elif name == limits.replica_label:
            replica = value
    if not cluster or not replica:
        return None
    return cluster, replica


def live_clusters(clusters: Mapping[str, ElectedReplica], *, now_us: int, forget_ms: int) -> int:
    """Clusters seen within `forget_ms`: the ones that hold an `ha_max_clusters` slot."""
    oldest = now_us - forget_ms * 1000
    return sum(1 for state in clusters.values() if state.last_seen_us >= oldest)


def track(
    clusters: Mapping[str, ElectedReplica],
    cluster: str,
    replica: str,
    *,
    now_us: int,
    limits: HaLimits,
    forget_ms: int = FORGET_MS,
) -> tuple[ElectedReplica | None, HaOutcome]:
    """Decide one HA request; return the cluster's state to store (None: unchanged) and the outcome.

    A cluster silent for `forget_ms` no longer counts against `ha_max_clusters` (Mimir marks it
    deleted after 30 minutes and frees its slot 30-66 minutes after its last sample).
    """
    current = clusters.get(cluster)
    if current is not None and current.last_seen_us < now_us - forget_ms * 1000:
        current = None  # forgotten: a new cluster again
    if current is None:
        if (
            limits.max_clusters > 0
            and live_clusters(clusters, now_us=now_us, forget_ms=forget_ms) >= limits.max_clusters
        ):
            return None, HaOutcome.TOO_MANY_CLUSTERS
        return ElectedReplica(replica, now_us), HaOutcome.ELECTED
    if current.replica == replica:
        return ElectedReplica(replica, now_us, current.failovers), HaOutcome.ELECTED
    if now_us - current.last_seen_us >= limits.failover_timeout_us:
        return ElectedReplica(replica, now_us, current.failovers + 1), HaOutcome.FAILOVER
    return None, HaOutcome.NON_ELECTED
