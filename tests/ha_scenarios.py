"""Scenario tables for the write decision with HA pairs and exemplars, run against the pure model
(tests/unit/test_admission_model.py) and the Lua script on real Redis and a real Redis Cluster
(tests/integration/test_lua_ha.py), with a frozen clock: the two cannot drift."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

from mimir_edge.core.admission import OtlpVariants, WriteCharge, admit
from mimir_edge.core.ha_tracker import ElectedReplica, HaOutcome
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.token_bucket import BucketLimits, BucketState, Decision, Reason
from mimir_edge.store.buckets import BucketStore

from tests.bucket_backends import RedisBackend
from tests.scenarios import MAX_IDLE_MS, T0_US

HA = TenantLimits(
    accept_ha_samples=True,
    ingestion_rate=100,
    ingestion_burst_size=1000,
    ha_max_clusters=2,
    ha_tracker_failover_timeout=30.0,
)


def series(cluster: str | None, replica: str | None, **more: str) -> tuple[tuple[str, str], ...]:
    """The first series' labels as a Prometheus HA replica would send them."""
    labels = [("__name__", "up"), ("job", "node")]
    if cluster is not None:
        labels.append(("cluster", cluster))
    if replica is not None:
        labels.append(("__replica__", replica))
    labels.extend(more.items())
    return tuple(labels)


@dataclass(frozen=True)
class Write:
    at_s: float
    items: int
    labels: tuple[tuple[str, str], ...]
    allowed: bool
    ha: HaOutcome
    charged: int
    remaining_items: float
    reason: Reason = Reason.ALLOWED
    elected: str = ""
    exemplars: int = 0
    otlp: OtlpVariants | None = None


@dataclass(frozen=True)
class HaScenario:
    name: str
    limits: TenantLimits
    steps: list[Write] = field(default_factory=list)


R1, R2 = series("ha-1", "replica-1"), series("ha-1", "replica-2")
HA_SCENARIOS = [
    HaScenario(
        "an HA pair: only the elected replica's items are charged; failover after the timeout",
        HA,
        [
            Write(0, 100, R1, True, HaOutcome.ELECTED, 100, 900, elected="replica-1"),
            Write(0, 100, R2, True, HaOutcome.NON_ELECTED, 0, 900, elected="replica-1"),
            Write(10, 100, R1, True, HaOutcome.ELECTED, 100, 900, elected="replica-1"),
            Write(10, 100, R2, True, HaOutcome.NON_ELECTED, 0, 900, elected="replica-1"),
            Write(39.999999, 100, R2, True, HaOutcome.NON_ELECTED, 0, 1000, elected="replica-1"),
            Write(40, 100, R2, True, HaOutcome.FAILOVER, 100, 900, elected="replica-2"),
            Write(41, 100, R1, True, HaOutcome.NON_ELECTED, 0, 1000, elected="replica-2"),
            Write(42, 100, R2, True, HaOutcome.ELECTED, 100, 900, elected="replica-2"),
        ],
    ),
    HaScenario(
        "a non-elected replica is never limited on items; the elected one is, and stays elected",
        HA,
        [
            Write(0, 1000, R1, True, HaOutcome.ELECTED, 1000, 0, elected="replica-1"),
            Write(0, 1000, R2, True, HaOutcome.NON_ELECTED, 0, 0, elected="replica-1"),
            Write(1, 1000, R1, False, HaOutcome.ELECTED, 1000, 100, Reason.INGESTION_RATE, "replica-1"),
            # The refused request still refreshed replica-1 (Mimir updates its tracker before the rate limit).
            Write(30.5, 100, R2, True, HaOutcome.NON_ELECTED, 0, 1000, elected="replica-1"),
        ],
    ),
    HaScenario(
        "ha_max_clusters: a third cluster is refused, known ones carry on",
        HA,
        [
            Write(0, 10, series("a", "1"), True, HaOutcome.ELECTED, 10, 990, elected="1"),
            Write(0, 10, series("b", "1"), True, HaOutcome.ELECTED, 10, 980, elected="1"),
            Write(0, 10, series("c", "1"), False, HaOutcome.TOO_MANY_CLUSTERS, 10, 980, Reason.HA_MAX_CLUSTERS),
            Write(0, 10, series("b", "2"), True, HaOutcome.NON_ELECTED, 0, 980, elected="1"),
            # 30 minutes later "a" and "b" are forgotten: "c" gets a slot.
            Write(1800.001, 10, series("c", "1"), True, HaOutcome.ELECTED, 10, 990, elected="1"),
        ],
    ),
    HaScenario(
        "one label only, or none, or an empty value: not HA, charged in full",
        HA,
        [
            Write(0, 10, series("ha-1", None), True, HaOutcome.NOT_HA, 10, 990),
            Write(0, 10, series(None, "replica-1"), True, HaOutcome.NOT_HA, 10, 980),
            Write(0, 10, series("ha-1", ""), True, HaOutcome.NOT_HA, 10, 970),
            Write(0, 10, (), True, HaOutcome.NOT_HA, 10, 960),
        ],
    ),
    HaScenario(
        "without accept_ha_samples both replicas are charged",
        TenantLimits(ingestion_rate=100, ingestion_burst_size=1000),
        [
            Write(0, 400, R1, True, HaOutcome.NOT_HA, 400, 600),
            Write(0, 400, R2, True, HaOutcome.NOT_HA, 400, 200),
            Write(0, 400, R1, False, HaOutcome.NOT_HA, 400, 200, Reason.INGESTION_RATE),
        ],
    ),
    HaScenario(
        "custom HA label names",
        TenantLimits(accept_ha_samples=True, ha_cluster_label="prom", ha_replica_label="pod"),
        [
            Write(0, 10, series(None, None, prom="p", pod="0"), True, HaOutcome.ELECTED, 10, 199990, elected="0"),
            Write(0, 10, series(None, None, prom="p", pod="1"), True, HaOutcome.NON_ELECTED, 0, 199990, elected="0"),
            Write(0, 10, R1, True, HaOutcome.NOT_HA, 10, 199980),
        ],
    ),
    HaScenario(
        "exemplars are free while max_global_exemplars_per_user is 0 (Mimir's default)",
        TenantLimits(ingestion_rate=10, ingestion_burst_size=100),
        [
            Write(0, 100, (), True, HaOutcome.NOT_HA, 100, 0, exemplars=50),
            Write(0, 1, (), False, HaOutcome.NOT_HA, 1, 0, Reason.INGESTION_RATE, exemplars=50),
        ],
    ),
    HaScenario(
        "exemplars are charged when the tenant keeps exemplars",
        TenantLimits(ingestion_rate=10, ingestion_burst_size=100, max_global_exemplars_per_user=1),
        [
            Write(0, 50, (), True, HaOutcome.NOT_HA, 100, 0, exemplars=50),
            Write(0, 51, (), False, HaOutcome.NOT_HA, 101, 0, Reason.INGESTION_BURST, exemplars=50),
            # Exemplars alone: Mimir ingests and charges nothing.
            Write(0, 0, (), True, HaOutcome.NOT_HA, 0, 0, exemplars=500),
        ],
    ),
    HaScenario(
        "a non-elected replica's exemplars are not charged either",
        TenantLimits(
            accept_ha_samples=True, ingestion_rate=10, ingestion_burst_size=100, max_global_exemplars_per_user=5
        ),
        [
            Write(0, 40, R1, True, HaOutcome.ELECTED, 50, 50, elected="replica-1", exemplars=10),
            Write(0, 40, R2, True, HaOutcome.NON_ELECTED, 0, 50, elected="replica-1", exemplars=10),
        ],
    ),
]


#: An OTLP write counted under each setting: 60 items and 5 exemplars under Mimir's defaults, 20
#: with native histograms for classic ones, 70 (9 exemplars) with its delta points, 30 with both.
OTLP = OtlpVariants(nhcb_items=20, delta_items=70, delta_nhcb_items=30, delta_exemplars=9)
OTLP_LIMITS = TenantLimits(ingestion_rate=10, ingestion_burst_size=100)
OTLP_SCENARIOS = [
    HaScenario(
        f"OTLP: nhcb={nhcb} native_delta={delta} exemplar_limit={exemplar_limit} picks {charged}",
        replace(
            OTLP_LIMITS,
            otel_convert_histograms_to_nhcb=nhcb,
            otel_native_delta_ingestion=delta,
            max_global_exemplars_per_user=exemplar_limit,
        ),
        [
            Write(0, 60, (), True, HaOutcome.NOT_HA, charged, 100 - charged, exemplars=5, otlp=OTLP),
            # The bucket holds 100 - charged: a second write fits only when charged <= 50.
            Write(
                0,
                60,
                (),
                2 * charged <= 100,
                HaOutcome.NOT_HA,
                charged,
                100 - 2 * charged if 2 * charged <= 100 else 100 - charged,
                Reason.ALLOWED if 2 * charged <= 100 else Reason.INGESTION_RATE,
                exemplars=5,
                otlp=OTLP,
            ),
        ],
    )
    for nhcb, delta, exemplar_limit, charged in [
        (False, False, 0, 60),
        (True, False, 0, 20),
        (False, True, 0, 70),
        (True, True, 0, 30),
        (False, False, 1, 65),
        (True, True, 1, 39),
    ]
]
HA_SCENARIOS += OTLP_SCENARIOS


class HaModel:
    """The pure model with the state a Redis would keep."""

    def __init__(self, limits: TenantLimits) -> None:
        self.limits = BucketLimits.from_tenant_limits(limits)
        self.bucket = BucketState(None, None)
        self.clusters: dict[str, ElectedReplica] = {}

    async def call(self, charge: WriteCharge, now_us: int) -> Decision:
        self.bucket, update, decision = admit(
            self.bucket, self.clusters, self.limits, charge, now_us=now_us, max_idle_ms=MAX_IDLE_MS
        )
        if update is not None:
            cluster, state = update
            self.clusters[cluster] = state
        return decision


class HaOnRedis:
    def __init__(self, backend: RedisBackend, limits: TenantLimits) -> None:
        self.store: BucketStore = backend.store
        self.backend = backend
        self.limits = limits
        self.tenant = f"ha-{uuid.uuid4().hex[:12]}"

    async def call(self, charge: WriteCharge, now_us: int) -> Decision:
        return await self.store.decide(
            self.tenant, charge=charge, defaults=BucketLimits.from_tenant_limits(TenantLimits()), now_us=now_us
        )


async def run_ha_scenario(backend: HaModel | HaOnRedis, scenario: HaScenario) -> list[Decision]:
    if isinstance(backend, HaOnRedis):
        await backend.backend.set_limits(backend.tenant, scenario.limits)
    decisions = []
    for number, step in enumerate(scenario.steps):
        now_us = T0_US + round(step.at_s * 1_000_000)
        charge = WriteCharge(
            items=step.items, exemplars=step.exemplars, first_series_labels=step.labels, otlp=step.otlp
        )
        got = await backend.call(charge, now_us)
        where = f"{scenario.name!r} step {number}: {step} -> {got}"
        assert (got.allowed, got.reason, got.ha) == (step.allowed, step.reason, step.ha), where
        assert got.items_charged == step.charged, where
        assert got.elected_replica == step.elected, where
        assert abs(got.remaining_items - step.remaining_items) < 1e-6, where
        decisions.append(got)
    return decisions
