"""Token bucket scenario tables, run against the pure-Python model (unit) and against the Lua
script on real Redis and a real Redis Cluster (integration): the two cannot drift.

A step either sets a tenant's limits in the store (None = remove them: defaults apply) or makes a
call at `at_ms` after the scenario's start and states what must come back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.token_bucket import NEVER, Reason

T0_US = 1_750_000_000_000_000
MAX_IDLE_MS = 3_600_000


@dataclass(frozen=True)
class SetLimits:
    limits: TenantLimits | None


@dataclass(frozen=True)
class Call:
    at_ms: float
    items: int
    allowed: bool
    reason: Reason = Reason.ALLOWED
    requests: int = 1
    remaining_items: float | None = None
    retry_after_us: int | None = None
    expire_ms: int | None = None
    tenant_limits: bool | None = None
    repeat: int = 1


Step = SetLimits | Call


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: list[Step]
    defaults: TenantLimits = field(default_factory=TenantLimits)


def limits(**fields: float) -> TenantLimits:
    return TenantLimits(**fields)  # type: ignore[arg-type]


SCENARIOS = [
    Scenario(
        "refill after spending the burst",
        [
            SetLimits(limits(ingestion_rate=100, ingestion_burst_size=200)),
            Call(0, 150, True, remaining_items=50, expire_ms=1500 + 1000),
            Call(0, 100, False, Reason.INGESTION_RATE, remaining_items=50, retry_after_us=500_000),
            Call(500, 100, True, remaining_items=0),
            Call(250, 25, False, Reason.INGESTION_RATE, remaining_items=0, retry_after_us=250_000),  # clock back
            Call(10_000, 200, True, remaining_items=0),  # refill is capped at the burst
            Call(10_000, 1, False, Reason.INGESTION_RATE, retry_after_us=10_000),
        ],
    ),
    Scenario(
        "a denied request consumes nothing",
        [
            SetLimits(limits(ingestion_rate=10, ingestion_burst_size=10)),
            Call(0, 10, True, remaining_items=0),
            Call(0, 5, False, Reason.INGESTION_RATE, repeat=5),
            Call(200, 2, True, remaining_items=0),
            Call(200, 1, False, Reason.INGESTION_RATE, retry_after_us=100_000),
        ],
    ),
    Scenario(
        "a request larger than the burst is always denied",
        [
            SetLimits(limits(ingestion_rate=1000, ingestion_burst_size=100)),
            Call(0, 101, False, Reason.INGESTION_BURST, retry_after_us=NEVER, remaining_items=100),
            Call(60_000, 101, False, Reason.INGESTION_BURST, retry_after_us=NEVER),
            Call(60_000, 100, True, remaining_items=0),
        ],
    ),
    Scenario(
        "request rate with burst, checked before items",
        [
            SetLimits(limits(request_rate=2, request_burst_size=2, ingestion_rate=10, ingestion_burst_size=10)),
            Call(0, 1, True, repeat=2),
            Call(0, 1, False, Reason.REQUEST_RATE, retry_after_us=500_000),
            Call(0, 100, False, Reason.REQUEST_RATE),  # both over: the request limit names the denial
            Call(500, 1, True, remaining_items=9.0),
        ],
    ),
    Scenario(
        "request rate 0 means no request limit",
        [
            SetLimits(limits(request_rate=0, request_burst_size=0, ingestion_rate=10, ingestion_burst_size=10)),
            Call(0, 0, True, repeat=50),
            Call(0, 10, True, remaining_items=0),
        ],
    ),
    Scenario(
        # Mimir's requestRateStrategy gives a zero request burst MaxInt tokens: no request limit.
        "request burst 0 means no request limit",
        [
            SetLimits(limits(request_rate=5, request_burst_size=0, ingestion_rate=10, ingestion_burst_size=10)),
            Call(0, 0, True, repeat=50),
            Call(0, 10, True, remaining_items=0),
        ],
    ),
    Scenario(
        "all or nothing: an items denial leaves the request token",
        [
            SetLimits(limits(request_rate=1, request_burst_size=1, ingestion_rate=10, ingestion_burst_size=10)),
            Call(0, 11, False, Reason.INGESTION_BURST),
            Call(0, 10, True),
            Call(0, 1, False, Reason.REQUEST_RATE, retry_after_us=1_000_000),
        ],
    ),
    Scenario(
        "limits changed in Redis take effect on the next call",
        [
            SetLimits(limits(ingestion_rate=100, ingestion_burst_size=100)),
            Call(0, 40, True, remaining_items=60),
            SetLimits(limits(ingestion_rate=100, ingestion_burst_size=10)),
            Call(0, 20, False, Reason.INGESTION_BURST),
            Call(0, 10, True, remaining_items=0),  # tokens are capped at the new burst
            SetLimits(limits(ingestion_rate=1000, ingestion_burst_size=1000)),
            Call(100, 100, True, remaining_items=0),
        ],
    ),
    Scenario(
        "an unknown tenant uses the defaults passed in",
        [
            Call(0, 5, True, remaining_items=0, tenant_limits=False),
            Call(0, 1, False, Reason.INGESTION_RATE, tenant_limits=False, retry_after_us=200_000),
            SetLimits(limits(ingestion_rate=100, ingestion_burst_size=100)),
            Call(1000, 50, True, tenant_limits=True, remaining_items=50),
            SetLimits(None),  # tenant removed from the overrides: back to the defaults
            Call(1000, 6, False, Reason.INGESTION_BURST, tenant_limits=False),
            Call(1000, 5, True, tenant_limits=False, remaining_items=0),
        ],
        defaults=limits(ingestion_rate=5, ingestion_burst_size=5),
    ),
    Scenario(
        "burst factor: burst = factor x rate",
        [
            SetLimits(limits(ingestion_rate=100, ingestion_burst_size=5, ingestion_burst_factor=2)),
            Call(0, 200, True, remaining_items=0),
            Call(0, 201, False, Reason.INGESTION_BURST),
        ],
    ),
    Scenario(
        "ingestion rate 0 never refills (as golang.org/x/time/rate)",
        [
            SetLimits(limits(ingestion_rate=0, ingestion_burst_size=10)),
            Call(0, 10, True, remaining_items=0, expire_ms=MAX_IDLE_MS),
            Call(100_000, 1, False, Reason.INGESTION_RATE, retry_after_us=NEVER),
        ],
    ),
    Scenario(
        "idle expiry is the time until the bucket is full again",
        [
            SetLimits(limits(request_rate=1, request_burst_size=5, ingestion_rate=1000, ingestion_burst_size=1000)),
            Call(0, 500, True, expire_ms=1000 + 1000),  # requests: 1 of 5 used at 1/s → 1 s; items: 0.5 s
            Call(0, 1, True, repeat=3),
            Call(0, 1, True, expire_ms=5000 + 1000),  # the request bucket is empty: 5 s to full
        ],
    ),
    Scenario(
        "fractional refill",
        [
            SetLimits(limits(ingestion_rate=3, ingestion_burst_size=3)),
            Call(0, 3, True, remaining_items=0),
            Call(333.334, 1, True),
            Call(333.334, 1, False, Reason.INGESTION_RATE),
            Call(1000, 1, True),
        ],
    ),
]
