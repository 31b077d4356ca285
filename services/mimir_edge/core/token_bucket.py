"""The token bucket decision, in pure Python: the model of `lua/token_bucket.lua`.

Both implement Mimir's semantics (golang.org/x/time/rate AllowN) for two dimensions at once,
requests and items, all or nothing:
- a bucket holds at most `burst` tokens and refills at `rate` tokens per second;
- a request needing more than `burst` can never pass (reported as a burst denial);
- a denied request consumes nothing and writes nothing;
- the request dimension is checked first, as Mimir does; request rate 0 or request burst 0
  means no request limit (Mimir gives a zero burst MaxInt tokens).
Time is in integer microseconds. The same scenario tables run against this model and against
the Lua script on real Redis, and every float operation happens in the same order in both, so
their answers are identical, not just close.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from mimir_edge.core.ha_tracker import HA_OFF, HaLimits, HaOutcome
from mimir_edge.core.limits import TenantLimits

MICROS = 1_000_000
NEVER = -1
#: Slack added to a bucket's idle expiry, after the moment it would be full again.
EXPIRY_SLACK_MS = 1000


class Reason(enum.StrEnum):
    ALLOWED = "allowed"
    REQUEST_RATE = "request_rate"
    REQUEST_BURST = "request_burst"
    INGESTION_RATE = "ingestion_rate"
    INGESTION_BURST = "ingestion_burst"
    HA_MAX_CLUSTERS = "ha_max_clusters"


@dataclass(frozen=True, slots=True)
class BucketLimits:
    """The numbers one decision enforces. `request_rate` 0 = no request limit; exemplars are
    charged only when `max_exemplars` (Mimir's `max_global_exemplars_per_user`) is above 0."""

    request_rate: float
    request_burst: int
    ingestion_rate: float
    ingestion_burst: int
    max_exemplars: int = 0
    ha: HaLimits = HA_OFF
    #: Mimir's `otel_convert_histograms_to_nhcb` and `otel_native_delta_ingestion`: which of an
    #: OTLP write's counts is charged (core/otlp.py).
    otel_nhcb: bool = False
    otel_native_delta: bool = False

    @classmethod
    def from_tenant_limits(cls, limits: TenantLimits) -> BucketLimits:
        return cls(
            request_rate=limits.request_rate,
            request_burst=limits.request_burst_size,
            ingestion_rate=limits.ingestion_rate,
            ingestion_burst=limits.effective_ingestion_burst,
            max_exemplars=limits.max_global_exemplars_per_user,
            ha=HaLimits.from_tenant_limits(limits),
            otel_nhcb=limits.otel_convert_histograms_to_nhcb,
            otel_native_delta=limits.otel_native_delta_ingestion,
        )


@dataclass(frozen=True, slots=True)
class Dimension:
    tokens: float
    updated_us: int


@dataclass(frozen=True, slots=True)
class BucketState:
    requests: Dimension | None
    items: Dimension | None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    remaining_requests: float
    remaining_items: float
    #: Microseconds until the same request could pass; NEVER when it never can.
    retry_after_us: int
    now_us: int
    #: Idle expiry of the bucket after this call (ms), 0 when the call wrote nothing.
    expire_ms: int
    limits: BucketLimits
    #: True when the tenant's own limits were found in Redis, False when the defaults applied.
    tenant_limits: bool
    #: The mode of an emergency override that applied ("enforce" or "shadow"), else "".
    override: str = ""
    #: What the HA tracker made of the request (NOT_HA for most tenants).
    ha: HaOutcome = HaOutcome.NOT_HA
    #: Items this decision charged (or would have): 0 for a non-elected HA replica, exemplars
    #: left out for tenants whose exemplars Mimir drops.
    items_charged: int = 0
    #: The cluster's elected replica after the decision, for HA requests.
    elected_replica: str = ""


@dataclass(frozen=True, slots=True)
class _Check:
    ok: bool
    over_burst: bool
    tokens_after: float
    wait_us: int


def _refill(dim: Dimension | None, rate: float, burst: int, now_us: int) -> float:
    if dim is None:
        return float(burst)
    elapsed = now_us - dim.updated_us
    if elapsed < 0:
        elapsed = 0
    return min(float(burst), dim.tokens + (elapsed * rate) / MICROS)


def _check(tokens: float, rate: float, burst: int, need: int) -> _Check:
    if need > burst:
        return _Check(False, True, tokens, NEVER)
    if tokens >= need:
        return _Check(True, False, tokens - need, 0)
    if rate <= 0:
        return _Check(False, False, tokens, NEVER)
    return _Check(False, False, tokens, math.ceil(((need - tokens) * MICROS) / rate))


def _full_in_ms(tokens: float, rate: float, burst: int, max_idle_ms: int) -> int:
    if rate <= 0:
        return max_idle_ms
    return min(max_idle_ms, math.ceil(((burst - tokens) * 1000) / rate) + EXPIRY_SLACK_MS)


def decide(
    state: BucketState,
    limits: BucketLimits,
    *,
    now_us: int,
    requests: int,
    items: int,
    max_idle_ms: int,
    tenant_limits: bool = True,
) -> tuple[BucketState, Decision]:
    """Decide one call; return the state to store (unchanged on denial) and the decision."""
    # Mimir: request burst 0 is a burst of MaxInt (`requestRateStrategy`), so no limit either.
    limit_requests = limits.request_rate > 0 and limits.request_burst > 0
    req_tokens = 0.0
    req = _Check(True, False, 0.0, 0)
    if limit_requests:
        req_tokens = _refill(state.requests, limits.request_rate, limits.request_burst, now_us)
        req = _check(req_tokens, limits.request_rate, limits.request_burst, requests)
    item_tokens = _refill(state.items, limits.ingestion_rate, limits.ingestion_burst, now_us)
    item = _check(item_tokens, limits.ingestion_rate, limits.ingestion_burst, items)

    if not req.ok:
        reason = Reason.REQUEST_BURST if req.over_burst else Reason.REQUEST_RATE
        wait = req.wait_us
    elif not item.ok:
        reason = Reason.INGESTION_BURST if item.over_burst else Reason.INGESTION_RATE
        wait = item.wait_us
    else:
        reason = Reason.ALLOWED
        wait = 0

    if reason is not Reason.ALLOWED:
        decision = Decision(
            False, reason, req_tokens, item_tokens, wait, now_us, 0, limits, tenant_limits, items_charged=items
        )
        return state, decision

    expire_ms = _full_in_ms(item.tokens_after, limits.ingestion_rate, limits.ingestion_burst, max_idle_ms)
    new_requests = state.requests
    if limit_requests:
        new_requests = Dimension(req.tokens_after, now_us)
        expire_ms = max(
            expire_ms,
            _full_in_ms(req.tokens_after, limits.request_rate, limits.request_burst, max_idle_ms),
        )
    new_state = BucketState(new_requests, Dimension(item.tokens_after, now_us))
    decision = Decision(
        True,
        Reason.ALLOWED,
        req.tokens_after,
        item.tokens_after,
        0,
        now_us,
        expire_ms,
        limits,
        tenant_limits,
        items_charged=items,
    )
    return new_state, decision
