"""Mimir Edge Enforcement: Grafana Mimir's per-tenant ingestion limits, enforced at the edge."""

__version__ = "0.1.0"
