"""Deciding one remote_write request: tenant, counting, one atomic bucket call, the modes.

Protocol-neutral: the ext_authz and rate limit servicers translate Envoy's messages into these
calls and the resulting Verdicts back into Envoy's answers.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import structlog

from mimir_edge import logs
from mimir_edge.contract import (
    DECISION_HEADER,
    ITEMS_HEADER,
    OTLP_CHECK_PATHS,
    REASON_HEADER,
    SERIES_HEADER,
)
from mimir_edge.core import otlp
from mimir_edge.core.admission import OtlpVariants, WriteCharge, items_to_charge
from mimir_edge.core.errors import EdgeError, PayloadTooLarge, StoreUnavailable
from mimir_edge.core.ha_tracker import HaOutcome
from mimir_edge.core.otlp import OtlpCounts, OtlpFormat, count_otlp_request
from mimir_edge.core.remote_write import DEFAULT_COUNTER, Counter, WriteCounts, count_write_request
from mimir_edge.core.tenant import validate_tenant_id
from mimir_edge.core.token_bucket import BucketLimits, Decision
from mimir_edge.core.verdict import (
    Cause,
    Outcome,
    Verdict,
    WriteProtocol,
    verdict_for_decision,
    verdict_for_error,
    verdict_for_store_unavailable,
)
from mimir_edge.rls.defaults import DefaultsCache
from mimir_edge.rls.local import LocalLimiter
from mimir_edge.rls.metrics import RlsMetrics
from mimir_edge.store.breaker import CircuitBreaker
from mimir_edge.store.buckets import BucketStore

log = structlog.get_logger("rls")


#: google.rpc.Code of an OTLP answer (Mimir's `toOtlpGRPCHTTPStatus`); 400 and other statuses
#: not listed are InvalidArgument.
_OTLP_CODES = {429: 8, 503: 14}  # ResourceExhausted, Unavailable
_INVALID_ARGUMENT = 3
_FAILED_PRECONDITION = 9  # too many HA clusters
_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class CheckResult:
    verdict: Verdict
    tenant: str | None = None
    counts: WriteCounts | OtlpCounts | None = None
    decision: Decision | None = None
    #: Set for an OTLP write: the format its answers are written in (Mimir's `writeOTLPResponse`).
    otlp: OtlpFormat | None = None

    def headers(self, *, binary: bool = True) -> list[tuple[str, str]]:
        """What Envoy adds, on either transport: to the request it forwards when admitted, to the
        client's answer when not. `binary=False`: the transport cannot carry a binary body."""
        verdict = self.verdict
        if verdict.admitted:
            headers = [(DECISION_HEADER, verdict.outcome.value)]
            if self.counts is not None:
                charged = self.decision.items_charged if self.decision is not None else self.counts.items
                headers.append((ITEMS_HEADER, str(charged)))
                headers.append((SERIES_HEADER, str(self.counts.series)))
            return headers
        content_type = self._otlp_status(binary)[0] if self._otlp_answer else _TEXT
        headers = [("content-type", content_type), (REASON_HEADER, verdict.cause.value)]
        if self._otlp_answer:
            headers.append(("x-content-type-options", "nosniff"))
        if verdict.retry_after_s is not None:
            headers.append(("retry-after", str(verdict.retry_after_s)))
        return headers

    def body(self, *, binary: bool = True) -> bytes:
        """The client's answer body when not admitted: Mimir's message, as a `google.rpc.Status` in
        the request's format for OTLP (JSON where the transport cannot carry binary)."""
        if self._otlp_answer:
            return self._otlp_status(binary)[1]
        return (self.verdict.message + "\n").encode()

    @property
    def protocol(self) -> WriteProtocol:
        return WriteProtocol.REMOTE_WRITE if self.otlp is None else WriteProtocol.OTLP

    @property
    def _otlp_answer(self) -> bool:
        # A missing tenant is refused by Mimir's auth middleware, before the OTLP handler: text.
        return self.otlp is not None and self.verdict.http_status != 401

    def _otlp_status(self, binary: bool) -> tuple[str, bytes]:
        verdict = self.verdict
        code = _OTLP_CODES.get(verdict.http_status, _INVALID_ARGUMENT)
        if verdict.cause is Cause.HA_MAX_CLUSTERS:
            code = _FAILED_PRECONDITION
        fmt = self.otlp if binary else OtlpFormat.JSON
        return otlp.status_body(fmt, code, verdict.message)


def protocol_for_path(path: str | None) -> WriteProtocol:
    """OTLP for Mimir's OTLP path or NGINX's mirror copy of it (a query string aside), remote_write
    for any other."""
    if path is not None and path.partition("?")[0] in OTLP_CHECK_PATHS:
        return WriteProtocol.OTLP
    return WriteProtocol.REMOTE_WRITE


class DecisionRecorder(Protocol):
    """Where every decision is added up beside the metrics (the admin's fleet-wide stats,
    admin.stats.StatsRecorder): called on the decision path, so it must not block."""

    def record(
        self,
        tenant: str | None,
        outcome: Outcome,
        cause: Cause,
        items: int,
        limits: BucketLimits | None = None,
        *,
        protocol: WriteProtocol = WriteProtocol.REMOTE_WRITE,
    ) -> None: ...


class FailureMode(enum.StrEnum):
    """What to do while Redis cannot be reached."""

    ALLOW = "allow"
    DENY = "deny"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class EnforcerConfig:
    tenant_header: str
    max_request_bytes: int
    shadow: bool
    failure_mode: FailureMode
    counter: Counter = DEFAULT_COUNTER


class Enforcer:
    def __init__(
        self,
        store: BucketStore,
        defaults: DefaultsCache,
        metrics: RlsMetrics,
        config: EnforcerConfig,
        *,
        breaker: CircuitBreaker | None = None,
        local: LocalLimiter | None = None,
        stats: DecisionRecorder | None = None,
    ):
        self._store = store
        self._defaults = defaults
        self._metrics = metrics
        self._config = config
        self._breaker = breaker
        self._local = local if config.failure_mode is FailureMode.LOCAL else None
        self._stats = stats
        #: A tenant over its limit is denied on every request: one log line per tenant and reason
        #: every 10 s (with the count skipped), not one per request.
        self._denial_log = logs.Sampler(interval_s=10.0)

    def _record(
        self,
        tenant: str | None,
        outcome: Outcome,
        cause: Cause,
        items: int,
        protocol: WriteProtocol,
        limits: BucketLimits | None = None,
    ) -> None:
        self._metrics.record(tenant, outcome, cause, items, protocol)
        if self._stats is not None:
            self._stats.record(tenant, outcome, cause, items, limits, protocol=protocol)

    async def check(
        self, headers: Mapping[str, str], body: bytes, *, charge: bool = True, path: str | None = None
    ) -> CheckResult:
        """Decide a write: OTLP when `path` is Mimir's OTLP path (or NGINX's mirror copy of it),
        remote_write otherwise. With `charge=False` only count (the rate limit filter charges the
        buckets through ShouldRateLimit)."""
        if protocol_for_path(path) is WriteProtocol.OTLP:
            return await self._check_otlp(headers, body, charge=charge)
        cfg = self._config
        tenant: str | None = None
        counts: WriteCounts | None = None
        try:
            tenant = validate_tenant_id(headers.get(cfg.tenant_header))
            if len(body) > cfg.max_request_bytes:
                raise PayloadTooLarge(f"body of {len(body)} bytes is over the limit of {cfg.max_request_bytes} bytes")
            started = time.perf_counter()
            counts = count_write_request(
                body,
                content_type=headers.get("content-type"),
                content_encoding=headers.get("content-encoding"),
                max_decompressed_bytes=cfg.max_request_bytes,
                counter=cfg.counter,
            )
            self._metrics.parse_seconds.observe(time.perf_counter() - started)
        except EdgeError as exc:
            verdict = verdict_for_error(exc)
            self._record(tenant, verdict.outcome, verdict.cause, 0, WriteProtocol.REMOTE_WRITE)
            log.info("rejected", tenant=tenant, status=verdict.http_status, reason=verdict.cause.value, error=str(exc))
            return CheckResult(verdict, tenant, counts)
        if not charge:
            # Recorded when ShouldRateLimit charges it, not here: one request, one decision.
            return CheckResult(Verdict(Outcome.ALLOWED, Cause.COUNTED, 200), tenant, counts)
        write = WriteCharge(
            items=counts.items_without_exemplars,
            exemplars=counts.exemplars,
            first_series_labels=counts.first_series_labels,
        )
        decision, verdict = await self.decide(tenant, charge=write, protocol=WriteProtocol.REMOTE_WRITE)
        return CheckResult(verdict, tenant, counts, decision)

    async def _check_otlp(self, headers: Mapping[str, str], body: bytes, *, charge: bool) -> CheckResult:
        """An OTLP metrics write: counted under every OTLP setting of the tenant's, charged in one
        decision that picks by its limits; refusals in OTLP's shape."""
        cfg = self._config
        # Answers mirror the request's type; an unsupported one is answered in protobuf.
        fmt = OtlpFormat.JSON if headers.get("content-type") == otlp.JSON else OtlpFormat.PROTOBUF
        tenant: str | None = None
        try:
            tenant = validate_tenant_id(headers.get(cfg.tenant_header))
            if len(body) > cfg.max_request_bytes:
                raise otlp.too_large(cfg.max_request_bytes, len(body), compressed=bool(headers.get("content-encoding")))
            started = time.perf_counter()
            counts = count_otlp_request(
                body,
                content_type=headers.get("content-type"),
                content_encoding=headers.get("content-encoding"),
                max_decompressed_bytes=cfg.max_request_bytes,
            )
            self._metrics.parse_seconds.observe(time.perf_counter() - started)
        except EdgeError as exc:
            verdict = verdict_for_error(exc)
            self._record(tenant, verdict.outcome, verdict.cause, 0, WriteProtocol.OTLP)
            log.info(
                "rejected",
                tenant=tenant,
                protocol=WriteProtocol.OTLP.value,
                status=verdict.http_status,
                reason=verdict.cause.value,
                error=str(exc),
            )
            return CheckResult(verdict, tenant, otlp=fmt)
        if not charge:
            return CheckResult(Verdict(Outcome.ALLOWED, Cause.COUNTED, 200), tenant, counts, otlp=fmt)
        write = WriteCharge(
            items=counts.base_items,
            exemplars=counts.exemplars,
            first_series_labels=counts.first_series_labels,
            otlp=OtlpVariants(
                nhcb_items=counts.nhcb_items,
                delta_items=counts.delta_items,
                delta_nhcb_items=counts.delta_nhcb_items,
                delta_exemplars=counts.delta_exemplars,
            ),
        )
        decision, verdict = await self.decide(tenant, charge=write, protocol=WriteProtocol.OTLP)
        return CheckResult(verdict, tenant, counts, decision, otlp=fmt)

    def internal_error(self, error: BaseException, protocol: WriteProtocol = WriteProtocol.REMOTE_WRITE) -> CheckResult:
        """The last line of defence: a bug must not become a crash or a 403. Failure mode applies."""
        log.error("internal error, failure mode applied", error=f"{type(error).__name__}: {error}", exc_info=error)
        verdict = verdict_for_store_unavailable(self._config.failure_mode is not FailureMode.DENY)
        self._record(None, verdict.outcome, verdict.cause, 0, protocol)
        return CheckResult(verdict)

    async def decide(
        self,
        tenant: str,
        *,
        requests: int = 1,
        items: int = 0,
        charge: WriteCharge | None = None,
        protocol: WriteProtocol = WriteProtocol.REMOTE_WRITE,
    ) -> tuple[Decision | None, Verdict]:
        """One atomic decision (`charge`, or plain `requests` and `items` as the rate limit filter
        sends them) with the failure mode and shadow mode applied, recorded under `protocol`."""
        charge = charge or WriteCharge(items=items, requests=requests)
        started = time.perf_counter()
        breaker = self._breaker
        try:
            if breaker is not None and breaker.open:
                raise StoreUnavailable("redis circuit breaker open")
            decision = await self._store.decide(tenant, charge=charge, defaults=self._defaults.limits)
        except StoreUnavailable as exc:
            self._metrics.store_errors.inc()
            if breaker is not None and not breaker.open:
                breaker.failure(exc)
            return self._store_unavailable(tenant, charge, exc, protocol)
        finally:
            self._metrics.redis_seconds.observe(time.perf_counter() - started)
        if breaker is not None:
            breaker.success()
        if self._local is not None:
            self._local.remember(tenant, decision.limits)
        return decision, self._verdict(tenant, charge, decision, protocol)

    def _store_unavailable(
        self, tenant: str, charge: WriteCharge, error: StoreUnavailable, protocol: WriteProtocol
    ) -> tuple[Decision | None, Verdict]:
        if self._local is not None:
            decision = self._local.decide(tenant, charge=charge, defaults=self._defaults.limits)
            return decision, self._verdict(tenant, charge, decision, protocol, local=True)
        verdict = verdict_for_store_unavailable(self._config.failure_mode is FailureMode.ALLOW)
        self._record(tenant, verdict.outcome, verdict.cause, charge.items + charge.exemplars, protocol)
        log.debug("redis unavailable", tenant=tenant, error=str(error), decision=verdict.outcome.value)
        return None, verdict

    def _verdict(
        self, tenant: str, charge: WriteCharge, decision: Decision, protocol: WriteProtocol, *, local: bool = False
    ) -> Verdict:
        # An emergency override's mode wins over the replica's (ENFORCEMENT_DISABLED).
        shadow = decision.override == "shadow" if decision.override else self._config.shadow
        if decision.override:
            self._metrics.override_decisions.labels(decision.override).inc()
        items = decision.items_charged
        requests = charge.requests
        verdict = verdict_for_decision(decision, items, shadow=shadow)
        if local:
            self._metrics.local_decisions.labels(verdict.outcome.value).inc()
        if verdict.outcome is Outcome.NON_ELECTED:
            # What the duplicate carried, none of it charged: its own outcome in metrics and stats.
            self._metrics.ha_decisions.labels(decision.ha.value).inc()
            self._record(
                tenant,
                verdict.outcome,
                verdict.cause,
                items_to_charge(charge, decision.limits),
                protocol,
                decision.limits,
            )
            log.debug("decision", tenant=tenant, decision=verdict.outcome.value, elected=decision.elected_replica)
            return verdict
        if decision.ha is not HaOutcome.NOT_HA:
            self._metrics.ha_decisions.labels(decision.ha.value).inc()
        if decision.ha is HaOutcome.FAILOVER:
            log.info("ha failover", tenant=tenant, elected=decision.elected_replica)
        self._record(tenant, verdict.outcome, verdict.cause, items, protocol, decision.limits)
        if verdict.outcome is Outcome.ALLOWED:
            log.debug("decision", tenant=tenant, decision="allowed", items=items)
        else:
            skipped = self._denial_log.admit((tenant, verdict.cause))
            if skipped is None:
                return verdict
            lim = decision.limits
            log.info(
                "decision",
                skipped_since_last_line=skipped,
                tenant=tenant,
                decision=verdict.outcome.value,
                reason=verdict.cause.value,
                items=items,
                requests=requests,
                protocol=protocol.value,
                ingestion_rate=lim.ingestion_rate,
                ingestion_burst=lim.ingestion_burst,
                request_rate=lim.request_rate,
                request_burst=lim.request_burst,
                retry_after_s=verdict.retry_after_s,
                local=local,
                override=decision.override or None,
                ha=decision.ha.value if decision.ha is not HaOutcome.NOT_HA else None,
            )
        return verdict
