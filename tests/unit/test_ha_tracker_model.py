"""The HA tracker model, step by step against a frozen clock (the same rules run in the Lua script:
tests/integration/test_lua_ha.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from mimir_edge.core.ha_tracker import ElectedReplica, HaLimits, HaOutcome, ha_labels, track
from mimir_edge.core.limits import TenantLimits

LIMITS = HaLimits.from_tenant_limits(
    TenantLimits(accept_ha_samples=True, ha_max_clusters=2, ha_tracker_failover_timeout=30.0)
)
S = 1_000_000


@dataclass(frozen=True)
class Step:
    at_s: float
    cluster: str
    replica: str
    outcome: HaOutcome
    elected: str  # the cluster's elected replica after the step ("" = no state)
    failovers: int = 0


TABLE = [
    Step(0, "ha-1", "r1", HaOutcome.ELECTED, "r1"),  # first replica seen is elected
    Step(1, "ha-1", "r2", HaOutcome.NON_ELECTED, "r1"),  # the other is refused within the timeout
    Step(20, "ha-1", "r1", HaOutcome.ELECTED, "r1"),  # elected refreshes its last-seen time
    Step(49, "ha-1", "r2", HaOutcome.NON_ELECTED, "r1"),  # 29 s since r1: still r1's
    Step(49.999999, "ha-1", "r2", HaOutcome.NON_ELECTED, "r1"),  # 1 µs short of the timeout
    Step(50, "ha-1", "r2", HaOutcome.FAILOVER, "r2", 1),  # at it (Mimir: now - ReceivedAt >= timeout)
    Step(51, "ha-1", "r1", HaOutcome.NON_ELECTED, "r2", 1),  # and r1, back, is now the duplicate
    Step(52, "ha-2", "a", HaOutcome.ELECTED, "a"),  # a second cluster
    Step(53, "ha-3", "a", HaOutcome.TOO_MANY_CLUSTERS, ""),  # a third is over ha_max_clusters = 2
    Step(54, "ha-2", "b", HaOutcome.NON_ELECTED, "a"),  # known clusters carry on
]


def test_election_table() -> None:
    clusters: dict[str, ElectedReplica] = {}
    for number, step in enumerate(TABLE):
        now_us = round(step.at_s * S)
        state, outcome = track(clusters, step.cluster, step.replica, now_us=now_us, limits=LIMITS)
        if state is not None:
            clusters[step.cluster] = state
        where = f"step {number}: {step}"
        assert outcome is step.outcome, where
        current = clusters.get(step.cluster)
        assert (current.replica if current else "") == step.elected, where
        if current is not None:
            assert current.failovers == step.failovers, where
            if outcome in (HaOutcome.ELECTED, HaOutcome.FAILOVER):
                assert current.last_seen_us == now_us, where


def test_no_cluster_limit_when_zero() -> None:
    unlimited = HaLimits.from_tenant_limits(TenantLimits(accept_ha_samples=True, ha_max_clusters=0))
    clusters = {f"c{i}": ElectedReplica("r", 0) for i in range(1000)}
    assert track(clusters, "new", "r", now_us=1, limits=unlimited)[1] is HaOutcome.ELECTED


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ((("__name__", "up"), ("cluster", "ha-1"), ("__replica__", "r1")), ("ha-1", "r1")),
        ((("cluster", "ha-1"),), None),  # one label only: not HA
        ((("__replica__", "r1"),), None),
        ((("cluster", ""), ("__replica__", "r1")), None),  # an empty value is an absent label
        ((), None),
    ],
)
def test_labels_from_the_first_series(labels: tuple[tuple[str, str], ...], expected: tuple[str, str] | None) -> None:
    assert ha_labels(labels, LIMITS) == expected


def test_labels_are_ignored_without_accept_ha_samples() -> None:
    off = HaLimits.from_tenant_limits(TenantLimits())
    assert ha_labels((("cluster", "ha-1"), ("__replica__", "r1")), off) is None


def test_custom_label_names() -> None:
    custom = HaLimits.from_tenant_limits(
        TenantLimits(accept_ha_samples=True, ha_cluster_label="prom", ha_replica_label="pod")
    )
    assert ha_labels((("cluster", "x"), ("__replica__", "y"), ("prom", "p"), ("pod", "q")), custom) == ("p", "q")
