"""Per-tenant limits with Mimir's names, meanings and defaults (`pkg/util/validation/limits.go`)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, fields


class FieldKind(enum.Enum):
    """How a limit is written in Mimir's YAML, and so how it is parsed and stored."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    LABEL_NAME = "label name"
    DURATION = "duration"  # Prometheus `model.Duration` text ("30s", "1m30s"); kept in seconds


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """The limits the edge enforces for one tenant; field names are Mimir's YAML names."""

    ingestion_rate: float = 10000.0
    ingestion_burst_size: int = 200000
    ingestion_burst_factor: float = 0.0
    request_rate: float = 0.0
    request_burst_size: int = 0
    max_label_names_per_series: int = 30
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048
    # Exemplars: Mimir drops every exemplar of a tenant whose limit is 0, so none is charged.
    max_global_exemplars_per_user: int = 0
    # HA tracker (Mimir's distributor HA dedupe): off unless `accept_ha_samples`.
    accept_ha_samples: bool = False
    ha_cluster_label: str = "cluster"
    ha_replica_label: str = "__replica__"
    ha_max_clusters: int = 100
    ha_tracker_failover_timeout: float = 30.0
    # OTLP (Mimir's translator): classic histograms become one native histogram with custom
    # buckets per point; delta sums and histograms are ingested instead of refused.
    otel_convert_histograms_to_nhcb: bool = False
    otel_native_delta_ingestion: bool = False

    @property
    def effective_ingestion_burst(self) -> int:
        """Mimir: a non-zero `ingestion_burst_factor` replaces the burst size by factor × rate."""
        if self.ingestion_burst_factor > 0:
            return int(self.ingestion_burst_factor * self.ingestion_rate)
        return self.ingestion_burst_size

    @property
    def request_rate_limited(self) -> bool:
        """Mimir: `request_rate` 0 switches the request rate limit off, and so does
        `request_burst_size` 0 (its limiter then gets a burst of MaxInt: `requestRateStrategy`)."""
        return self.request_rate > 0 and self.request_burst_size > 0

    @property
    def exemplars_charged(self) -> bool:
        """Mimir (distributor `prePushValidationMiddleware`) clears exemplars when the limit is 0."""
        return self.max_global_exemplars_per_user > 0


MIMIR_DEFAULTS = TenantLimits()

FIELD_KINDS: Mapping[str, FieldKind] = {
    "ingestion_rate": FieldKind.FLOAT,
    "ingestion_burst_size": FieldKind.INT,
    "ingestion_burst_factor": FieldKind.FLOAT,
    "request_rate": FieldKind.FLOAT,
    "request_burst_size": FieldKind.INT,
    "max_label_names_per_series": FieldKind.INT,
    "max_label_name_length": FieldKind.INT,
    "max_label_value_length": FieldKind.INT,
    "max_global_exemplars_per_user": FieldKind.INT,
    "accept_ha_samples": FieldKind.BOOL,
    "ha_cluster_label": FieldKind.LABEL_NAME,
    "ha_replica_label": FieldKind.LABEL_NAME,
    "ha_max_clusters": FieldKind.INT,
    "ha_tracker_failover_timeout": FieldKind.DURATION,
    "otel_convert_histograms_to_nhcb": FieldKind.BOOL,
    "otel_native_delta_ingestion": FieldKind.BOOL,
}
LIMIT_FIELDS = tuple(f.name for f in fields(TenantLimits))
FLOAT_FIELDS = frozenset(name for name, kind in FIELD_KINDS.items() if kind is FieldKind.FLOAT)
