"""Decisions as answers: Mimir's statuses and messages for HA pairs and the burst."""

from __future__ import annotations

from mimir_edge.core.ha_tracker import HaOutcome
from mimir_edge.core.limits import TenantLimits
from mimir_edge.core.token_bucket import NEVER, BucketLimits, Decision, Reason
from mimir_edge.core.verdict import Cause, Outcome, verdict_for_decision

LIMITS = BucketLimits.from_tenant_limits(TenantLimits(ingestion_rate=100, ingestion_burst_size=50, ha_max_clusters=3))


def decision(allowed: bool, reason: Reason, ha: HaOutcome = HaOutcome.NOT_HA, retry_us: int = 0) -> Decision:
    return Decision(allowed, reason, 0.0, 0.0, retry_us, 0, 0, LIMITS, True, ha=ha)


def test_a_non_elected_replica_is_forwarded_as_its_own_outcome() -> None:
    verdict = verdict_for_decision(decision(True, Reason.ALLOWED, HaOutcome.NON_ELECTED), 0, shadow=False)
    assert (verdict.outcome, verdict.cause, verdict.http_status) == (Outcome.NON_ELECTED, Cause.HA_NOT_ELECTED, 200)
    assert verdict.admitted


def test_an_elected_replica_is_simply_allowed() -> None:
    verdict = verdict_for_decision(decision(True, Reason.ALLOWED, HaOutcome.FAILOVER), 10, shadow=False)
    assert verdict.outcome is Outcome.ALLOWED


def test_too_many_clusters_is_mimirs_400() -> None:
    verdict = verdict_for_decision(
        decision(False, Reason.HA_MAX_CLUSTERS, HaOutcome.TOO_MANY_CLUSTERS, NEVER), 10, shadow=False
    )
    assert (verdict.outcome, verdict.http_status, verdict.retry_after_s) == (Outcome.DENIED, 400, None)
    assert verdict.message.startswith(
        "the write request has been rejected because the maximum number of high-availability (HA) clusters "
        "has been reached for this tenant (limit: 3) (err-mimir-tenant-too-many-ha-clusters)"
    )
    shadowed = verdict_for_decision(
        decision(False, Reason.HA_MAX_CLUSTERS, HaOutcome.TOO_MANY_CLUSTERS), 1, shadow=True
    )
    assert shadowed.outcome is Outcome.SHADOW_DENIED and shadowed.admitted


def test_over_the_burst_is_mimirs_burst_size_message() -> None:
    verdict = verdict_for_decision(decision(False, Reason.INGESTION_BURST, retry_us=NEVER), 60, shadow=False)
    assert verdict.http_status == 429
    assert verdict.message.startswith(
        "the request has been rejected because the tenant exceeded the ingestion burst size limit, set to 50, "
        "with 60 items. This limit is applied on the total number of samples, exemplars and metadata received "
        "across all distributors (err-mimir-tenant-max-ingestion-rate)."
    )
