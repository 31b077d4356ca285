"""Local mode's in-memory buckets are an LRU: bounded whatever tenant ids clients send, with the
tenants that keep sending kept."""

from __future__ import annotations

import pytest
from mimir_edge.core.admission import WriteCharge
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.rls.local import LocalLimiter

LIMITS = BucketLimits(request_rate=0.0, request_burst=0, ingestion_rate=1.0, ingestion_burst=10)


def limiter(max_tenants: int) -> LocalLimiter:
    return LocalLimiter(lambda: 1, max_tenants=max_tenants, clock_us=lambda: 1_000_000)  # time stands still


def spend(local: LocalLimiter, tenant: str, items: int) -> bool:
    return local.decide(tenant, charge=WriteCharge(items=items), defaults=LIMITS).allowed


def test_the_buckets_are_bounded_and_a_hot_tenant_keeps_its_own() -> None:
    local = limiter(3)
    assert spend(local, "hot", 10) and not spend(local, "hot", 1)  # burst spent
    for i in range(100):
        spend(local, f"random-{i}", 1)
        assert local.tenants <= 3
        assert not spend(local, "hot", 1)  # still its own, empty bucket: it was used last
    assert local.tenants == 3


def test_an_evicted_tenant_comes_back_with_a_fresh_bucket() -> None:
    local = limiter(2)
    assert spend(local, "idle", 10) and not spend(local, "idle", 1)
    spend(local, "a", 1)
    spend(local, "b", 1)  # "idle" was the least recently seen: evicted
    assert spend(local, "idle", 10)


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_tenants must be at least 1"):
        LocalLimiter(lambda: 1, max_tenants=0)


def test_ha_clusters_are_bounded_per_tenant_and_go_with_the_tenant() -> None:
    import dataclasses

    from mimir_edge.core.ha_tracker import HaLimits
    from mimir_edge.rls import local as local_module

    ha = dataclasses.replace(LIMITS, ingestion_burst=10**9, ha=HaLimits(True, "cluster", "__replica__", 0, 30_000_000))
    local = limiter(2)
    for i in range(local_module.MAX_CLUSTERS + 50):
        labels = (("cluster", f"c{i}"), ("__replica__", "r"))
        assert local.decide("ha", charge=WriteCharge(items=1, first_series_labels=labels), defaults=ha).allowed
    assert len(local._clusters["ha"]) == local_module.MAX_CLUSTERS
    spend(local, "a", 1)
    spend(local, "b", 1)  # "ha" evicted: its clusters with it
    assert "ha" not in local._clusters
