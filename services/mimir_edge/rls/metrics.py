"""The RLS's Prometheus metrics, all prefixed `rls_`, on their own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mimir_edge.core.verdict import Cause, Outcome, WriteProtocol

#: Fine below 5 ms, where a healthy RLS answers (a 2,000-sample body takes about 0.5 ms), so the
#: dashboard's p50/p99 are not rounded to a coarse bucket edge.
LATENCY_BUCKETS = (
    0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005,
    0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
OTHER_TENANTS = "__other__"


#: decisions, items, and (for a request with a tenant) the tenant's requests and items.
_Children = tuple[Counter, Counter, Counter | None, Counter | None]


class RlsMetrics:
    """Counters and histograms of one RLS process. Tenant labels are bounded: with an allow-list
    only those tenants get their own series; without one the first `max_tenants` seen do. Every
    other tenant is counted as `__other__`."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        max_tenants: int = 200,
        allow_tenants: tuple[str, ...] = (),
    ):
        self.registry = registry or CollectorRegistry()
        self._max_tenants = max_tenants
        self._allow = frozenset(allow_tenants)
        self._tenants: set[str] = set()
        #: The counters one decision increments, by (tenant label, outcome, cause, protocol):
        #: labels() looks a child up under a lock each time. Bounded, as the tenant labels are.
        self._children: dict[tuple[str | None, Outcome, Cause, WriteProtocol], _Children] = {}
        r = self.registry
        self.decisions = Counter(
            "rls_decisions_total",
            "Requests decided, by outcome (allowed, denied, shadow_denied, failure_allowed, failure_denied, "
            "rejected, non_elected), reason and protocol (remote_write, otlp).",
            ["decision", "reason", "protocol"],
            registry=r,
        )
        self.items = Counter(
            "rls_items_total",
            "Items in decided requests: what was charged (or would have been: denied), exemplars only for "
            "tenants with an exemplar limit; for non_elected (an HA pair's duplicate), what it carried, "
            "none of it charged. By decision and protocol (remote_write, otlp).",
            ["decision", "protocol"],
            registry=r,
        )
        self.tenant_requests = Counter(
            "rls_tenant_requests_total",
            "Requests per tenant (bounded: see rls_tenant_label_overflow_total).",
            ["tenant", "decision"],
            registry=r,
        )
        self.tenant_items = Counter(
            "rls_tenant_items_total",
            "Items per tenant (bounded like rls_tenant_requests_total).",
            ["tenant", "decision"],
            registry=r,
        )
        self.tenant_overflow = Counter(
            "rls_tenant_label_overflow_total",
            'Decisions counted under tenant="__other__" (label limit reached).',
            registry=r,
        )
        self.check_seconds = Histogram(
            "rls_check_duration_seconds", "Time to answer one ext_authz Check.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.parse_seconds = Histogram(
            "rls_body_parse_duration_seconds",
            "Time to decompress and count one remote_write body.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.counter_implementation = Gauge(
            "rls_counter_implementation",
            "1 for what counts remote_write bodies: impl=native (the compiled walker) or upb "
            "(REMOTE_WRITE_COUNTER; native unless forced or not built).",
            ["impl"],
            registry=r,
        )
        self.redis_seconds = Histogram(
            "rls_redis_duration_seconds",
            "Time for one bucket decision in Redis, queueing included.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ratelimit_descriptors = Counter(
            "rls_ratelimit_descriptors_total", "ShouldRateLimit descriptors answered, by code.", ["code"], registry=r
        )
        self.unknown_descriptors = Counter(
            "rls_unknown_descriptors_total",
            "ShouldRateLimit descriptors without a tenant entry (allowed).",
            registry=r,
        )
        self.store_errors = Counter(
            "rls_redis_errors_total", "Bucket decisions that failed because Redis did not answer.", registry=r
        )
        self.local_decisions = Counter(
            "rls_local_decisions_total",
            "Decisions made in memory while Redis was unreachable (FAILURE_MODE=local).",
            ["decision"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "rls_redis_breaker_open",
            "1 while the Redis circuit breaker is open (decisions take the failure path).",
            registry=r,
        )
        self.breaker_transitions = Counter(
            "rls_redis_breaker_transitions_total",
            "Circuit breaker state changes, by the state entered.",
            ["state"],
            registry=r,
        )
        self.live_replicas = Gauge(
            "rls_live_replicas",
            "Live RLS replicas seen in the heartbeat registry (local mode divides by this).",
            registry=r,
        )
        self.defaults_loaded = Gauge(
            "rls_defaults_loaded", "1 once the default limits were read from Redis.", registry=r
        )
        self.ha_decisions = Counter(
            "rls_ha_decisions_total",
            "Requests of tenants with accept_ha_samples that carried both HA labels, by what the HA tracker "
            "made of them (elected, failover, non_elected, too_many_clusters).",
            ["outcome"],
            registry=r,
        )
        self.override_decisions = Counter(
            "rls_emergency_override_decisions_total",
            "Decisions taken under an emergency override (admin API), by its mode.",
            ["mode"],
            registry=r,
        )
        self.stats_flushes = Counter(
            "rls_stats_flushes_total",
            "Flushes of the cluster-wide decision statistics to Redis, by result (ok, error).",
            ["result"],
            registry=r,
        )
        self.admin_requests = Counter(
            "rls_admin_requests_total",
            "Admin API requests, by method and status code.",
            ["method", "code"],
            registry=r,
        )
        self.build_info = Gauge(
            "rls_build_info",
            "Always 1; labels name the version, failure mode and whether the replica is in shadow mode.",
            ["version", "failure_mode", "shadow"],
            registry=r,
        )

    def tenant_label(self, tenant: str) -> str:
        if tenant in self._tenants:
            return tenant
        if self._allow:
            if tenant in self._allow:
                self._tenants.add(tenant)
                return tenant
        elif len(self._tenants) < self._max_tenants:
            self._tenants.add(tenant)
            return tenant
        self.tenant_overflow.inc()
        return OTHER_TENANTS

    def record(
        self,
        tenant: str | None,
        outcome: Outcome,
        cause: Cause,
        items: int,
        protocol: WriteProtocol = WriteProtocol.REMOTE_WRITE,
    ) -> None:
        # The per-tenant counters carry no protocol label: it would double the largest families
        # for a split the admin API already gives per tenant (admin.stats); fleet-wide it is here.
        label = None if tenant is None else self.tenant_label(tenant)
        key = (label, outcome, cause, protocol)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.decisions.labels(outcome.value, cause.value, protocol.value),
                self.items.labels(outcome.value, protocol.value),
                None if label is None else self.tenant_requests.labels(label, outcome.value),
                None if label is None else self.tenant_items.labels(label, outcome.value),
            )
        decisions, all_items, tenant_requests, tenant_items = children
        decisions.inc()
        all_items.inc(items)
        if tenant_requests is not None and tenant_items is not None:
            tenant_requests.inc()
            tenant_items.inc(items)
