"""One write's whole decision, in Mimir's order: the model of `lua/token_bucket.lua`.

Mimir's distributor (`wrapPushWithMiddlewares`) charges the request rate first, then drops the
duplicate of an HA pair (202: a request charged, no items), then validates and charges the
ingestion rate with what is left: samples + histograms + metadata, and exemplars only for tenants
whose `max_global_exemplars_per_user` is above 0 (Mimir drops them otherwise). The HA tracker's
state changes even when the ingestion rate then refuses the request, as it does in Mimir.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from mimir_edge.core.ha_tracker import FORGET_MS, ElectedReplica, HaOutcome, ha_labels, track
from mimir_edge.core.token_bucket import NEVER, BucketLimits, BucketState, Decision, Reason, decide

_REQUEST_REASONS = (Reason.REQUEST_RATE, Reason.REQUEST_BURST)


@dataclass(frozen=True, slots=True)
class OtlpVariants:
    """An OTLP write's items and exemplars under the tenant's OTLP settings other than Mimir's
    defaults (WriteCharge.items and .exemplars hold the defaults' counts): the one atomic decision
    picks by the limits it reads (core/otlp.py explains why)."""

    #: otel_convert_histograms_to_nhcb on, delta refused.
    nhcb_items: int
    #: otel_native_delta_ingestion on, classic histograms.
    delta_items: int
    #: both on.
    delta_nhcb_items: int
    #: exemplars with otel_native_delta_ingestion on (whatever the histogram setting).
    delta_exemplars: int


@dataclass(frozen=True, slots=True)
class WriteCharge:
    """What the RLS read from one write: its items (samples, histograms, metadata), its exemplars
    apart, and the labels of its first series (where Mimir's HA tracker looks); for OTLP, the
    counts under the tenant's other OTLP settings."""

    items: int
    exemplars: int = 0
    first_series_labels: Sequence[tuple[str, str]] = ()
    requests: int = 1
    otlp: OtlpVariants | None = None


def write_counts(charge: WriteCharge, limits: BucketLimits) -> tuple[int, int]:
    """(items, exemplars) of the write under the tenant's OTLP settings: Mimir's translator makes
    one native histogram per classic histogram point with `otel_convert_histograms_to_nhcb`, and
    ingests delta points with `otel_native_delta_ingestion`."""
    v = charge.otlp
    if v is None:
        return charge.items, charge.exemplars
    if limits.otel_native_delta:
        return (v.delta_nhcb_items if limits.otel_nhcb else v.delta_items), v.delta_exemplars
    return (v.nhcb_items if limits.otel_nhcb else charge.items), charge.exemplars


def items_to_charge(charge: WriteCharge, limits: BucketLimits) -> int:
    """Mimir's `prePushValidationMiddleware` (3.1): exemplars are cleared when the tenant keeps none
    (`max_global_exemplars_per_user` 0), and a request left with no samples, histograms or
    metadata is charged nothing, exemplars included."""
    items, exemplars = write_counts(charge, limits)
    if items == 0 or limits.max_exemplars <= 0:
        return items
    return items + exemplars


def admit(
    state: BucketState,
    clusters: Mapping[str, ElectedReplica],
    limits: BucketLimits,
    charge: WriteCharge,
    *,
    now_us: int,
    max_idle_ms: int,
    tenant_limits: bool = True,
    ha_forget_ms: int = FORGET_MS,
) -> tuple[BucketState, tuple[str, ElectedReplica] | None, Decision]:
    """Decide one write; return the bucket state and HA cluster update to store, and the decision."""

    def bucket(items: int) -> tuple[BucketState, Decision]:
        return decide(
            state,
            limits,
            now_us=now_us,
            requests=charge.requests,
            items=items,
            max_idle_ms=max_idle_ms,
            tenant_limits=tenant_limits,
        )

    items = items_to_charge(charge, limits)
    new_state, decision = bucket(items)
    labels = ha_labels(charge.first_series_labels, limits.ha)
    if decision.reason in _REQUEST_REASONS or labels is None:
        return new_state, None, decision

    cluster, replica = labels
    elected, outcome = track(clusters, cluster, replica, now_us=now_us, limits=limits.ha, forget_ms=ha_forget_ms)
    if outcome is HaOutcome.TOO_MANY_CLUSTERS:
        # Refused before the ingestion rate: nothing is charged or written; the tokens reported
        # are the bucket's as they stand.
        _, probe = decide(state, limits, now_us=now_us, requests=0, items=0, max_idle_ms=max_idle_ms)
        denied = Decision(
            False,
            Reason.HA_MAX_CLUSTERS,
            probe.remaining_requests,
            probe.remaining_items,
            NEVER,
            now_us,
            0,
            limits,
            tenant_limits,
            ha=outcome,
            items_charged=items,
        )
        return state, None, denied
    if outcome is HaOutcome.NON_ELECTED:
        new_state, decision = bucket(0)
    current = elected or clusters[cluster]
    update = (cluster, elected) if elected is not None else None
    return new_state, update, replace(decision, ha=outcome, elected_replica=current.replica)
