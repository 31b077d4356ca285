"""The limits hash in Redis: every field kind round-trips exactly."""

from __future__ import annotations

from dataclasses import fields

from mimir_edge.core.limits import FIELD_KINDS, LIMIT_FIELDS, TenantLimits
from mimir_edge.core.schema import decode_limits, encode_limits


def test_every_limit_field_has_a_kind() -> None:
    assert set(FIELD_KINDS) == set(LIMIT_FIELDS) == {f.name for f in fields(TenantLimits)}


def test_round_trip_of_every_kind() -> None:
    limits = TenantLimits(
        ingestion_rate=0.1 + 0.2,
        ingestion_burst_size=7,
        request_rate=2.5,
        max_global_exemplars_per_user=3,
        accept_ha_samples=True,
        ha_cluster_label="prom_cluster",
        ha_replica_label="prom_replica",
        ha_max_clusters=0,
        ha_tracker_failover_timeout=0.5,
        otel_convert_histograms_to_nhcb=True,
        otel_native_delta_ingestion=True,
    )
    encoded = encode_limits(limits)
    assert encoded["accept_ha_samples"] == "1"  # what the Lua script compares with
    assert encoded["ha_cluster_label"] == "prom_cluster"
    assert encoded["otel_convert_histograms_to_nhcb"] == encoded["otel_native_delta_ingestion"] == "1"
    assert decode_limits({k.encode(): v.encode() for k, v in encoded.items()}) == limits
    assert decode_limits(encode_limits(TenantLimits())) == TenantLimits()


def test_a_hash_written_before_the_ha_fields_decodes_with_mimirs_defaults() -> None:
    old = {"ingestion_rate": "5.0", "ingestion_burst_size": "10", "request_burst": "0", "ingestion_burst": "10"}
    assert decode_limits(old) == TenantLimits(ingestion_rate=5.0, ingestion_burst_size=10)
