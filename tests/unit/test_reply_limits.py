"""The limits part of the bucket script's reply is turned into a BucketLimits once per distinct
reply (a hot-path saving): equal replies share one value, any changed limit makes a new one, and
the cache stays bounded."""

from __future__ import annotations

from mimir_edge.core.ha_tracker import HaLimits
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.store.buckets import _ReplyLimits


def reply(ingestion_rate: int = 10_000, cluster_label: bytes = b"cluster", nhcb: int = 0) -> list[object]:
    """A reply shaped as lua/token_bucket.lua documents it (only the limits fields matter here)."""
    decision = [1, b"allowed", 9, 99, 0, 1, 5000]  # allowed, reason, remaining, retry, now, expire
    limits = [5, 10, ingestion_rate, 200_000]  # 7-10: request rate/burst, ingestion rate/burst
    outcome = [1, b"", b"not_ha", 2000, b""]  # 11-15: tenant limits, override, ha, charged, elected
    more = [7, 1, cluster_label, b"__replica__", 100, 30_000_000, nhcb, 1]  # 16-23: exemplars, HA, OTLP
    return [*decision, *limits, *outcome, *more]


def test_the_reply_becomes_the_limits_it_carries() -> None:
    assert _ReplyLimits().get(reply()) == BucketLimits(
        request_rate=5.0,
        request_burst=10,
        ingestion_rate=10_000.0,
        ingestion_burst=200_000,
        max_exemplars=7,
        ha=HaLimits(
            accept_ha_samples=True,
            cluster_label="cluster",
            replica_label="__replica__",
            max_clusters=100,
            failover_timeout_us=30_000_000,
        ),
        otel_nhcb=False,
        otel_native_delta=True,
    )


def test_equal_replies_share_one_value_and_a_changed_limit_makes_a_new_one() -> None:
    limits = _ReplyLimits()
    first = limits.get(reply())
    assert limits.get(reply()) is first
    assert limits.get(reply(ingestion_rate=20_000)).ingestion_rate == 20_000.0
    assert limits.get(reply(cluster_label=b"dc")).ha.cluster_label == "dc"
    assert limits.get(reply(nhcb=1)).otel_nhcb is True
    assert limits.get(reply()) is first


def test_the_cache_is_bounded() -> None:
    limits = _ReplyLimits(max_entries=3)
    for rate in range(10):
        assert limits.get(reply(ingestion_rate=rate)).ingestion_rate == float(rate)
    assert len(limits._cache) <= 3
