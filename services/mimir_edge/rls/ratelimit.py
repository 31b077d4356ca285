"""envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit: Envoy's rate limit filter asks.

A descriptor `[("tenant", id)]` charges the tenant's request bucket with the request-level
`hits_addend` (0 = 1, as Envoy defines it); the same descriptor carrying its own `hits_addend`
(the item count ext_authz put in dynamic metadata) charges the items bucket. A second entry
`("protocol", "otlp")` (ext_authz's metadata too) only labels the decision: remote_write and OTLP
draw from the same buckets. All descriptors of one tenant in one call are decided in one atomic
script call. Other descriptors are allowed and counted in rls_unknown_descriptors_total.

An OVER_LIMIT answer carries `Retry-After` (as the Check's 429 does) when waiting helps, and the
limit in REASON_HEADER: Envoy's rate limit filter adds `response_headers_to_add` to its 429.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from envoy.service.ratelimit.v3 import rls_pb2 as rls
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from google.protobuf import duration_pb2

from mimir_edge.contract import PROTOCOL_DESCRIPTOR_KEY, REASON_HEADER, TENANT_DESCRIPTOR_KEY
from mimir_edge.core.errors import InvalidTenant
from mimir_edge.core.tenant import validate_tenant_id
from mimir_edge.core.token_bucket import NEVER, Decision, Reason
from mimir_edge.core.verdict import Outcome, WriteProtocol, retry_after_seconds
from mimir_edge.rls.enforcer import Enforcer
from mimir_edge.rls.metrics import RlsMetrics

OK = rls.RateLimitResponse.OK
OVER_LIMIT = rls.RateLimitResponse.OVER_LIMIT
Unit = rls.RateLimitResponse.RateLimit.Unit


@dataclass
class _TenantCharge:
    requests: int = 0
    items: int = 0
    request_descriptors: list[int] = field(default_factory=list)
    item_descriptors: list[int] = field(default_factory=list)
    protocol: WriteProtocol = WriteProtocol.REMOTE_WRITE


def rate_limit(rate: float) -> rls.RateLimitResponse.RateLimit | None:
    """A token rate as Envoy's (requests_per_unit, unit): the smallest unit giving a whole number."""
    if rate <= 0:
        return None
    for unit, seconds in ((Unit.SECOND, 1), (Unit.MINUTE, 60), (Unit.HOUR, 3600)):
        per_unit = rate * seconds
        if per_unit.is_integer() or unit == Unit.HOUR:
            return rls.RateLimitResponse.RateLimit(requests_per_unit=min(round(per_unit), 2**32 - 1), unit=unit)
    return None  # unreachable


def _duration_us(us: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def _until_full_us(remaining: float, rate: float, burst: int) -> int:
    if rate <= 0:
        return 0
    return max(0, round((burst - remaining) * 1_000_000 / rate))


def descriptor_status(
    decision: Decision, *, items_dimension: bool, over: bool
) -> rls.RateLimitResponse.DescriptorStatus:
    lim = decision.limits
    rate, burst = (
        (lim.ingestion_rate, lim.ingestion_burst) if items_dimension else (lim.request_rate, lim.request_burst)
    )
    remaining = decision.remaining_items if items_dimension else decision.remaining_requests
    status = rls.RateLimitResponse.DescriptorStatus(code=OVER_LIMIT if over else OK)
    current = rate_limit(rate)
    if current is None:  # no limit on this dimension (request_rate 0)
        return status
    status.current_limit.CopyFrom(current)
    status.limit_remaining = max(0, min(int(remaining), 2**32 - 1))
    if over and decision.retry_after_us != NEVER:
        status.duration_until_reset.CopyFrom(_duration_us(decision.retry_after_us))
    elif not over:
        status.duration_until_reset.CopyFrom(_duration_us(_until_full_us(remaining, rate, burst)))
    return status


_ITEM_REASONS = (Reason.INGESTION_RATE, Reason.INGESTION_BURST)


class RateLimitServicer(rls_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(self, enforcer: Enforcer, metrics: RlsMetrics):
        self._enforcer = enforcer
        self._metrics = metrics

    async def ShouldRateLimit(
        self, request: rls.RateLimitRequest, context: grpc.aio.ServicerContext
    ) -> rls.RateLimitResponse:
        request_hits = request.hits_addend or 1
        statuses: list[rls.RateLimitResponse.DescriptorStatus | None] = [None] * len(request.descriptors)
        charges: dict[str, _TenantCharge] = {}
        for index, descriptor in enumerate(request.descriptors):
            named = self._tenant_of(descriptor)
            if named is None:
                self._metrics.unknown_descriptors.inc()
                statuses[index] = rls.RateLimitResponse.DescriptorStatus(code=OK)
                continue
            tenant, protocol = named
            charge = charges.setdefault(tenant, _TenantCharge())
            if protocol is not None:
                charge.protocol = protocol
            if descriptor.HasField("hits_addend"):
                charge.items += descriptor.hits_addend.value
                charge.item_descriptors.append(index)
            else:
                charge.requests += request_hits
                charge.request_descriptors.append(index)

        overall = OK
        retry_after: list[int] = []
        reasons: list[str] = []
        for tenant, charge in charges.items():
            try:
                decision, verdict = await self._enforcer.decide(
                    tenant, requests=charge.requests, items=charge.items, protocol=charge.protocol
                )
            except Exception as exc:
                decision, verdict = None, self._enforcer.internal_error(exc, charge.protocol).verdict
            if decision is None:  # Redis unavailable
                if not verdict.admitted:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, verdict.message)
                for index in charge.request_descriptors + charge.item_descriptors:
                    statuses[index] = rls.RateLimitResponse.DescriptorStatus(code=OK)
                continue
            denied = verdict.outcome is Outcome.DENIED
            items_denied = denied and decision.reason in _ITEM_REASONS
            for index in charge.request_descriptors:
                statuses[index] = descriptor_status(decision, items_dimension=False, over=denied and not items_denied)
            for index in charge.item_descriptors:
                statuses[index] = descriptor_status(decision, items_dimension=True, over=items_denied)
            if denied:
                overall = OVER_LIMIT
                reasons.append(decision.reason.value)
                seconds = retry_after_seconds(decision.retry_after_us)
                if seconds is not None:
                    retry_after.append(seconds)
        for status in statuses:
            assert status is not None
            self._metrics.ratelimit_descriptors.labels(rls.RateLimitResponse.Code.Name(status.code)).inc()
        response = rls.RateLimitResponse(overall_code=overall, statuses=statuses)
        if reasons:
            response.response_headers_to_add.add(key=REASON_HEADER, value=reasons[0])
        if retry_after:
            # One call can hold several tenants' descriptors: the write waits for the slowest.
            response.response_headers_to_add.add(key="retry-after", value=str(max(retry_after)))
        return response

    @staticmethod
    def _tenant_of(descriptor: object) -> tuple[str, WriteProtocol | None] | None:
        """The tenant and the protocol (None: not named) of a descriptor the RLS knows."""
        entries = descriptor.entries  # type: ignore[attr-defined]
        if not 1 <= len(entries) <= 2 or entries[0].key != TENANT_DESCRIPTOR_KEY:
            return None
        protocol = None
        if len(entries) == 2:
            if entries[1].key != PROTOCOL_DESCRIPTOR_KEY:
                return None
            try:
                protocol = WriteProtocol(entries[1].value)
            except ValueError:
                return None
        try:
            return validate_tenant_id(entries[0].value), protocol
        except InvalidTenant:
            return None
