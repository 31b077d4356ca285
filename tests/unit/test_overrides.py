"""Mimir runtime overrides and defaults → effective limits; one fixture file per case."""

from __future__ import annotations

from pathlib import Path

import pytest
from mimir_edge.core.errors import OverridesError
from mimir_edge.core.limits import MIMIR_DEFAULTS, TenantLimits
from mimir_edge.core.overrides import parse_defaults, parse_duration, parse_runtime_overrides

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "overrides"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_mimir_defaults() -> None:
    assert MIMIR_DEFAULTS.ingestion_rate == 10000
    assert MIMIR_DEFAULTS.ingestion_burst_size == 200000
    assert MIMIR_DEFAULTS.request_rate == 0 and not MIMIR_DEFAULTS.request_rate_limited
    assert MIMIR_DEFAULTS.effective_ingestion_burst == 200000
    assert (
        MIMIR_DEFAULTS.max_label_names_per_series,
        MIMIR_DEFAULTS.max_label_name_length,
        MIMIR_DEFAULTS.max_label_value_length,
    ) == (30, 1024, 2048)


def test_per_tenant_overrides_start_from_the_defaults() -> None:
    parsed = parse_runtime_overrides(fixture("valid_basic.yaml"))
    a, b = parsed.tenants["tenant-a"], parsed.tenants["tenant-b"]
    assert a == TenantLimits(ingestion_rate=50000, ingestion_burst_size=500000)
    assert b == TenantLimits(request_rate=10.5, request_burst_size=20, max_label_names_per_series=40)
    assert b.request_rate_limited
    assert parsed.ignored_fields == {"tenant-a": ("max_global_series_per_user", "ruler_max_rules_per_rule_group")}
    assert parsed.limits_for("someone-else") == MIMIR_DEFAULTS


def test_tenants_inherit_configured_defaults() -> None:
    defaults = parse_defaults(fixture("defaults_mimir_config.yaml"))
    assert defaults == TenantLimits(
        ingestion_rate=20000, ingestion_burst_size=400000, request_rate=100, request_burst_size=200
    )
    parsed = parse_runtime_overrides(fixture("valid_basic.yaml"), defaults)
    assert parsed.tenants["tenant-a"].request_rate == 100  # from the defaults
    assert parsed.tenants["tenant-a"].ingestion_rate == 50000  # its own
    assert parsed.limits_for("unknown") == defaults


def test_plain_defaults_map() -> None:
    assert parse_defaults(fixture("defaults_plain.yaml")) == TenantLimits(ingestion_rate=5000)


def test_no_defaults_document_means_mimir_defaults() -> None:
    assert parse_defaults(None) == MIMIR_DEFAULTS
    assert parse_defaults("") == MIMIR_DEFAULTS


def test_burst_factor_replaces_burst_size() -> None:
    bursty = parse_runtime_overrides(fixture("valid_burst_factor.yaml")).tenants["bursty"]
    assert bursty.ingestion_burst_size == 5
    assert bursty.effective_ingestion_burst == 2500


@pytest.mark.parametrize("name", ["valid_empty.yaml", "valid_no_overrides.yaml"])
def test_documents_without_overrides(name: str) -> None:
    parsed = parse_runtime_overrides(fixture(name))
    assert parsed.tenants == {}


def test_tenant_without_fields_gets_defaults() -> None:
    assert parse_runtime_overrides(fixture("valid_null_tenant.yaml")).tenants == {"listed-only": MIMIR_DEFAULTS}


INVALID = [
    # file, tenant named, field named, words in the message
    ("invalid_yaml.yaml", None, None, "line 4"),
    ("invalid_string_value.yaml", "tenant-b", "ingestion_rate", "must be a number"),
    ("invalid_negative.yaml", "tenant-c", "request_burst_size", "negative"),
    ("invalid_bool.yaml", "tenant-d", "ingestion_burst_size", "must be a number"),
    ("invalid_fractional_burst.yaml", "tenant-e", "ingestion_burst_size", "integer"),
    ("invalid_infinite_rate.yaml", "tenant-f", "ingestion_rate", "finite"),
    ("invalid_burst_factor.yaml", "tenant-g", "ingestion_burst_factor", "at least 1"),
    ("invalid_tenant_not_map.yaml", "tenant-h", None, "must be a map"),
    ("invalid_overrides_list.yaml", None, "overrides", "map of tenant"),
    ("invalid_tenant_id.yaml", "tenant/with/slashes", None, "unsupported characters"),
    ("invalid_not_a_map.yaml", None, None, "must be a map"),
    ("invalid_ha_bool.yaml", "tenant-i", "accept_ha_samples", "true or false"),
    ("invalid_ha_label.yaml", "tenant-j", "ha_replica_label", "label name"),
    ("invalid_duration.yaml", "tenant-k", "ha_tracker_failover_timeout", "duration"),
    ("invalid_duration_text.yaml", "tenant-l", "ha_tracker_failover_timeout", "duration"),
    ("invalid_otel_bool.yaml", "tenant-m", "otel_native_delta_ingestion", "true or false"),
]


@pytest.mark.parametrize(("name", "tenant", "field", "words"), INVALID, ids=[row[0] for row in INVALID])
def test_invalid_documents_name_tenant_and_field(name: str, tenant: str | None, field: str | None, words: str) -> None:
    with pytest.raises(OverridesError) as err:
        parse_runtime_overrides(fixture(name))
    assert err.value.tenant == tenant
    assert err.value.field == field
    assert words in str(err.value)
    if tenant:
        assert repr(tenant) in str(err.value)
    if field:
        assert repr(field) in str(err.value)


def test_invalid_defaults_name_the_field() -> None:
    with pytest.raises(OverridesError) as err:
        parse_defaults(fixture("defaults_invalid.yaml"))
    assert err.value.field == "ingestion_rate" and err.value.tenant is None


def test_ha_and_exemplar_defaults_are_mimirs() -> None:
    d = MIMIR_DEFAULTS
    assert (d.accept_ha_samples, d.ha_cluster_label, d.ha_replica_label) == (False, "cluster", "__replica__")
    assert (d.ha_max_clusters, d.ha_tracker_failover_timeout) == (100, 30.0)
    assert d.max_global_exemplars_per_user == 0 and not d.exemplars_charged


def test_ha_and_exemplar_fields_per_tenant() -> None:
    parsed = parse_runtime_overrides(fixture("valid_ha_exemplars.yaml"))
    ha, custom = parsed.tenants["ha-tenant"], parsed.tenants["custom-labels"]
    assert ha == TenantLimits(
        accept_ha_samples=True,
        ha_max_clusters=5,
        ha_tracker_failover_timeout=90.0,
        max_global_exemplars_per_user=100000,
    )
    assert ha.exemplars_charged
    assert (custom.ha_cluster_label, custom.ha_replica_label) == ("prom_cluster", "prom_replica")
    assert custom.ha_tracker_failover_timeout == 0.5
    assert parsed.ignored_fields == {}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("1d2h", 93600.0), ("2w", 1209600.0)],
)
def test_durations_as_prometheus_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "s", "1s1m", "-1s", "1.5s", "30 s"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_otel_defaults_are_mimirs() -> None:
    assert not MIMIR_DEFAULTS.otel_convert_histograms_to_nhcb
    assert not MIMIR_DEFAULTS.otel_native_delta_ingestion


def test_otel_fields_per_tenant() -> None:
    parsed = parse_runtime_overrides(fixture("valid_otel.yaml"))
    assert parsed.tenants["otel-nhcb"] == TenantLimits(otel_convert_histograms_to_nhcb=True)
    assert parsed.tenants["otel-delta"] == TenantLimits(otel_native_delta_ingestion=True)
    assert parsed.ignored_fields == {}
