"""What a client sees: one Verdict per request, from a bucket decision or from an error.

Answers match what Mimir itself would say (status codes, messages with its error ids), so a
client cannot tell the edge from the distributor, except for the headers naming the edge.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from mimir_edge.core.errors import EdgeError, InvalidTenant, PayloadTooLarge, UnsupportedMediaType
from mimir_edge.core.ha_tracker import HaOutcome
from mimir_edge.core.token_bucket import NEVER, Decision, Reason


class Outcome(enum.StrEnum):
    """How a request was decided: the `decision` label of rls_decisions_total."""

    ALLOWED = "allowed"
    DENIED = "denied"
    #: Shadow mode (ENFORCEMENT_DISABLED): would have been denied, was admitted.
    SHADOW_DENIED = "shadow_denied"
    #: Redis unreachable and FAILURE_MODE_ALLOW=true.
    FAILURE_ALLOWED = "failure_allowed"
    #: Redis unreachable and FAILURE_MODE_ALLOW=false.
    FAILURE_DENIED = "failure_denied"
    #: The request itself is unusable (400, 401, 413, 415).
    REJECTED = "rejected"
    #: The non-elected replica of an HA pair: forwarded (Mimir answers it 202 and ingests nothing),
    #: charged one request and no items.
    NON_ELECTED = "non_elected"


class WriteProtocol(enum.StrEnum):
    """Which write API a request came in on: the `protocol` label, and the admin's split. Two
    values only, so the label stays bounded whatever the clients send."""

    REMOTE_WRITE = "remote_write"
    OTLP = "otlp"


class Cause(enum.StrEnum):
    """Why: the `reason` label. The bucket's reasons plus the edge's own."""

    ALLOWED = Reason.ALLOWED.value
    REQUEST_RATE = Reason.REQUEST_RATE.value
    REQUEST_BURST = Reason.REQUEST_BURST.value
    INGESTION_RATE = Reason.INGESTION_RATE.value
    INGESTION_BURST = Reason.INGESTION_BURST.value
    HA_MAX_CLUSTERS = Reason.HA_MAX_CLUSTERS.value
    #: An HA pair's duplicate: another replica of its cluster is elected.
    HA_NOT_ELECTED = "ha_not_elected"
    INVALID_BODY = "invalid_body"
    MISSING_TENANT = "missing_tenant"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"
    STORE_UNAVAILABLE = "store_unavailable"
    #: Counted only; the rate limit filter charges the buckets through ShouldRateLimit.
    COUNTED = "counted"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    cause: Cause
    #: HTTP status for the client when not admitted; 200 means "forward it".
    http_status: int
    message: str = ""
    retry_after_s: int | None = None

    @property
    def admitted(self) -> bool:
        return self.outcome in ADMITTED


ADMITTED = frozenset({Outcome.ALLOWED, Outcome.SHADOW_DENIED, Outcome.FAILURE_ALLOWED, Outcome.NON_ELECTED})


def _fmt_rate(rate: float) -> str:
    return str(int(rate)) if float(rate).is_integer() else repr(rate)


def retry_after_seconds(retry_after_us: int) -> int | None:
    """Whole seconds for Retry-After (at least 1); None when waiting cannot help."""
    if retry_after_us == NEVER:
        return None
    return max(1, math.ceil(retry_after_us / 1_000_000))


def denial_message(decision: Decision, items: int) -> str:
    lim = decision.limits
    if decision.reason is Reason.INGESTION_RATE:
        return (
            "the request has been rejected because the tenant exceeded the ingestion rate limit, set to "
            f"{_fmt_rate(lim.ingestion_rate)} items/s with a maximum allowed burst of {lim.ingestion_burst}. "
            "This limit is applied on the total number of samples, exemplars and metadata received across "
            "all distributors (err-mimir-tenant-max-ingestion-rate). To adjust the related per-tenant limits, "
            "configure -distributor.ingestion-rate-limit and -distributor.ingestion-burst-size, or contact "
            "your service administrator."
        )
    if decision.reason is Reason.REQUEST_RATE:
        return (
            "the request has been rejected because the tenant exceeded the request rate limit, set to "
            f"{_fmt_rate(lim.request_rate)} requests/s across all distributors with a maximum allowed burst "
            f"of {lim.request_burst} (err-mimir-tenant-max-request-rate). To adjust the related per-tenant "
            "limits, configure -distributor.request-rate-limit and -distributor.request-burst-size, or "
            "contact your service administrator."
        )
    if decision.reason is Reason.INGESTION_BURST:
        # Mimir's newIngestionBurstSizeLimitedError.
        return (
            "the request has been rejected because the tenant exceeded the ingestion burst size limit, set to "
            f"{lim.ingestion_burst}, with {items} items. This limit is applied on the total number of samples, "
            "exemplars and metadata received across all distributors (err-mimir-tenant-max-ingestion-rate). "
            "To adjust the related per-tenant limit, configure -distributor.ingestion-burst-size, or contact "
            "your service administrator."
        )
    if decision.reason is Reason.HA_MAX_CLUSTERS:
        # Mimir's tooManyClustersError.
        return (
            "the write request has been rejected because the maximum number of high-availability (HA) "
            f"clusters has been reached for this tenant (limit: {lim.ha.max_clusters}) "
            "(err-mimir-tenant-too-many-ha-clusters). To adjust the related per-tenant limit, configure "
            "-distributor.ha-tracker.max-clusters, or contact your service administrator."
        )
    return (
        "the request has been rejected because the tenant's request rate limit of "
        f"{_fmt_rate(lim.request_rate)} requests/s has a maximum allowed burst of {lim.request_burst}, "
        "so no request can ever be accepted (err-mimir-edge-request-over-request-burst)."
    )


def verdict_for_decision(decision: Decision, items: int, *, shadow: bool) -> Verdict:
    """A bucket decision as the client's answer; in shadow mode nothing is denied."""
    cause = Cause(decision.reason.value)
    if decision.allowed:
        if decision.ha is HaOutcome.NON_ELECTED:
            return Verdict(Outcome.NON_ELECTED, Cause.HA_NOT_ELECTED, 200)
        return Verdict(Outcome.ALLOWED, cause, 200)
    if shadow:
        return Verdict(Outcome.SHADOW_DENIED, cause, 200, denial_message(decision, items))
    if decision.reason is Reason.HA_MAX_CLUSTERS:
        return Verdict(Outcome.DENIED, cause, 400, denial_message(decision, items))
    return Verdict(
        Outcome.DENIED,
        cause,
        429,
        denial_message(decision, items),
        retry_after_seconds(decision.retry_after_us),
    )


_ERROR_CAUSES: tuple[tuple[type[EdgeError], Cause], ...] = (
    (InvalidTenant, Cause.MISSING_TENANT),
    (PayloadTooLarge, Cause.TOO_LARGE),
    (UnsupportedMediaType, Cause.UNSUPPORTED_TYPE),
)


def verdict_for_error(error: EdgeError) -> Verdict:
    """A request we cannot count: its status comes from the error (400, 401, 413, 415)."""
    cause = next((c for kind, c in _ERROR_CAUSES if isinstance(error, kind)), Cause.INVALID_BODY)
    return Verdict(Outcome.REJECTED, cause, error.http_status, str(error))


def verdict_for_store_unavailable(failure_mode_allow: bool, retry_after_s: int = 1) -> Verdict:
    if failure_mode_allow:
        return Verdict(Outcome.FAILURE_ALLOWED, Cause.STORE_UNAVAILABLE, 200)
    return Verdict(
        Outcome.FAILURE_DENIED,
        Cause.STORE_UNAVAILABLE,
        503,
        "rate limit service unavailable: limits cannot be checked right now; retry later",
        retry_after_s,
    )
