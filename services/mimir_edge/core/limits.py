"""Per-tenant limits with Mimir's names, meanings and defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields


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

    @property
    def effective_ingestion_burst(self) -> int:
        """Mimir: a non-zero `ingestion_burst_factor` replaces the burst size by factor × rate."""
        if self.ingestion_burst_factor > 0:
            return int(self.ingestion_burst_factor * self.ingestion_rate)
        return self.ingestion_burst_size

    @property
    def request_rate_limited(self) -> bool:
        """Mimir: `request_rate` 0 switches the request rate limit off."""
        return self.request_rate > 0


MIMIR_DEFAULTS = TenantLimits()

FLOAT_FIELDS = frozenset({"ingestion_rate", "ingestion_burst_factor", "request_rate"})
LIMIT_FIELDS = tuple(f.name for f in fields(TenantLimits))
