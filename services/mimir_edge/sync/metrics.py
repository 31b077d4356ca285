"""overrides-sync's Prometheus metrics, prefixed `overrides_sync_`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SyncMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.syncs = Counter(
            "overrides_sync_syncs_total",
            "Overrides documents handled, by result: applied, unchanged, rejected (invalid), refused "
            "(mass delete), dry_run, deferred (not the leader).",
            ["result"],
            registry=r,
        )
        self.errors = Counter(
            "overrides_sync_errors_total",
            "Problems, by kind: invalid, missing, unreadable, redis.",
            ["kind"],
            registry=r,
        )
        self.tenants = Gauge(
            "overrides_sync_tenants", "Tenants with their own limits in the last applied document.", registry=r
        )
        self.last_success = Gauge(
            "overrides_sync_last_success_timestamp_seconds",
            "When limits were last written or confirmed in Redis.",
            registry=r,
        )
        self.redis_writes = Counter(
            "overrides_sync_redis_writes_total", "Redis commands sent to change limits.", registry=r
        )
        self.watch_restarts = Counter(
            "overrides_sync_watch_restarts_total",
            "Kubernetes watch restarts, by reason: closed, gone, error, resync.",
            ["reason"],
            registry=r,
        )
        self.leader = Gauge(
            "overrides_sync_leader", "1 while this process may write (leader or no election).", registry=r
        )
        self.apply_seconds = Histogram(
            "overrides_sync_apply_duration_seconds",
            "Time to compare a document with Redis and write the difference.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.generation = Gauge(
            "overrides_sync_generation", "Generation of the limits in Redis after this process wrote last.", registry=r
        )
        self.tenant_changes = Counter(
            "overrides_sync_tenant_changes_total",
            "Tenants whose limits were written or removed, by change (written, removed).",
            ["change"],
            registry=r,
        )
        self.source_ok = Gauge("overrides_sync_source_ok", "1 while the source document exists and parses.", registry=r)
