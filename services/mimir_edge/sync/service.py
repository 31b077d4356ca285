"""The sync loop: source events in, validated limits into Redis, problems made visible.

A document that does not parse is rejected whole and the last good limits stay; a document
that would remove most tenants at once is refused unless allowed; when not the leader, the
latest good document is kept and applied the moment leadership arrives.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol, TextIO

import structlog

from mimir_edge import cancellation
from mimir_edge.core.errors import OverridesError, StoreUnavailable
from mimir_edge.core.overrides import RuntimeOverrides
from mimir_edge.store.limits import AppliedState, LimitsStore, SyncPlan
from mimir_edge.sync.metrics import SyncMetrics
from mimir_edge.sync.sources import Missing, SourceEvent, Unreadable

log = structlog.get_logger("overrides-sync")


class Source(Protocol):
    def describe(self) -> str: ...
    def events(self) -> object: ...  # AsyncIterator[SourceEvent]


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    #: Refuse a document that removes more than this fraction of the tenants in Redis...
    max_delete_fraction: float = 0.5
    #: ...unless the operator said so.
    allow_mass_delete: bool = False
    #: Print the difference, write nothing.
    dry_run: bool = False


class SyncService:
    def __init__(
        self,
        store: LimitsStore,
        metrics: SyncMetrics,
        policy: SyncPolicy = SyncPolicy(),
        *,
        is_leader: Callable[[], bool] = lambda: True,
        out: TextIO = sys.stdout,
        retry_s: float = 1.0,
    ):
        self._store = store
        self._metrics = metrics
        self._policy = policy
        self._is_leader = is_leader
        self._out = out
        self._retry_s = retry_s
        #: The newest valid document not yet in Redis (not leader, or Redis was away).
        self._pending: tuple[RuntimeOverrides, str] | None = None
        #: What this process wrote last; spares re-reading every tenant while nobody else writes.
        self._applied: AppliedState | None = None
        #: The last document applied, re-applied if Redis lost it (a restart without persistence).
        self._last: tuple[RuntimeOverrides, str] | None = None
        self.healthy = True

    async def follow(self, source: Source) -> None:
        """Handle the source's events, forever. Runs beside `retry_pending`."""
        async for event in source.events():  # type: ignore[attr-defined]
            await self.handle(event)

    async def handle(self, event: SourceEvent) -> str:
        """Handle one source event; returns the result label it was counted under."""
        if isinstance(event, Missing | Unreadable):
            kind = "missing" if isinstance(event, Missing) else "unreadable"
            self._metrics.errors.labels(kind).inc()
            self._metrics.source_ok.set(0)
            log.error("overrides source problem, last good limits kept", condition=kind, reason=event.reason)
            await self._record_problem(kind, event.reason)
            return kind
        try:
            desired = event.documents.parse()
        except OverridesError as exc:
            self._metrics.errors.labels("invalid").inc()
            self._metrics.syncs.labels("rejected").inc()
            self._metrics.source_ok.set(0)
            log.error(
                "overrides rejected, last good limits kept",
                origin=event.origin,
                error=str(exc),
                tenant=exc.tenant,
                field=exc.field,
            )
            await self._record_problem("invalid", str(exc))
            return "rejected"
        self._metrics.source_ok.set(1)
        self._pending = (desired, event.origin)
        if event.resync:  # a periodic resync re-reads everything, to repair drift
            self._applied = None
        return await self._apply_pending()

    async def _apply_pending(self) -> str:
        if self._pending is None:
            return "unchanged"
        desired, origin = self._pending
        if not self._is_leader() and not self._policy.dry_run:
            self._metrics.syncs.labels("deferred").inc()
            return "deferred"
        try:
            plan = await self._store.plan(desired, known=self._applied)
            if self._mass_delete(plan):
                self._pending = None
                message = (
                    f"refusing to remove {len(plan.removed)} of {len(plan.current)} tenants "
                    f"({plan.removed_fraction():.0%} > {self._policy.max_delete_fraction:.0%}); "
                    "run with --allow-mass-delete if this is intended"
                )
                self._metrics.syncs.labels("refused").inc()
                log.error(
                    "mass delete refused, last good limits kept",
                    origin=origin,
                    removed=len(plan.removed),
                    current=len(plan.current),
                )
                await self._record_problem("refused", message)
                return "refused"
            if self._policy.dry_run:
                self._pending = None
                self.print_diff(plan)
                self._metrics.syncs.labels("dry_run").inc()
                return "dry_run"
            started = time.perf_counter()
            result = await self._store.apply(plan, source=origin)
        except StoreUnavailable as exc:
            self._applied = None
            self._metrics.errors.labels("redis").inc()
            self.healthy = False
            log.error("redis unavailable, will retry", error=str(exc))
            return "redis"
        self._last = self._pending
        self._pending = None
        self._applied = result.state
        self.healthy = True
        label = "unchanged" if plan.empty else "applied"
        self._metrics.syncs.labels(label).inc()
        self._metrics.tenants.set(len(desired.tenants))
        self._metrics.last_success.set(time.time())
        self._metrics.redis_writes.inc(result.writes)
        self._metrics.apply_seconds.observe(time.perf_counter() - started)
        self._metrics.generation.set(result.generation)
        self._metrics.tenant_changes.labels("written").inc(len(result.written))
        self._metrics.tenant_changes.labels("removed").inc(len(result.removed))
        log.info(
            "synced",
            origin=origin,
            generation=result.generation,
            written=len(result.written),
            removed=len(result.removed),
            unchanged=result.unchanged,
            defaults_changed=result.defaults_changed,
            redis_writes=result.writes,
            seconds=round(time.perf_counter() - started, 4),
            tenants_written=list(result.written[:20]),
            tenants_removed=list(result.removed[:20]),
        )
        return label

    def _mass_delete(self, plan: SyncPlan) -> bool:
        return (
            not self._policy.allow_mass_delete
            and bool(plan.removed)
            and plan.removed_fraction() > self._policy.max_delete_fraction
        )

    async def _record_problem(self, condition: str, error: str) -> None:
        if self._policy.dry_run or not self._is_leader():
            return
        try:
            await self._store.record_problem(condition, error)
        except StoreUnavailable as exc:
            log.warning("could not record the problem in redis", error=str(exc))

    async def retry_pending(self) -> None:
        """Apply a kept document as soon as this process may write and Redis answers; re-apply
        the last one when Redis no longer holds what we wrote (restarted empty, or flushed)."""
        while True:
            await cancellation.sleep(self._retry_s)
            if not self._is_leader():
                continue
            if self._pending is None and self._last is not None and self._applied is not None:
                try:
                    generation = await self._store.generation()
                except StoreUnavailable:
                    continue
                if generation < self._applied.generation:
                    log.warning(
                        "redis lost the limits (generation went back): writing them again",
                        generation=generation,
                        expected=self._applied.generation,
                    )
                    self._applied = None
                    self._pending = self._last
            if self._pending is not None:
                await self._apply_pending()

    def print_diff(self, plan: SyncPlan) -> None:
        """The difference a plan would write, one JSON line per change (for --dry-run)."""
        lines: list[dict[str, object]] = []
        if plan.defaults_changed:
            lines.append(
                {"change": "defaults", "from": _fields(plan.current_defaults), "to": _fields(plan.desired.defaults)}
            )
        for tenant in plan.written:
            before = plan.current.get(tenant)
            after = plan.desired.tenants[tenant]
            if before is None:
                lines.append({"change": "add", "tenant": tenant, "to": _fields(after)})
            else:
                changed = {k: [v, getattr(after, k)] for k, v in asdict(before).items() if v != getattr(after, k)}
                lines.append({"change": "update", "tenant": tenant, "fields": changed})
        for tenant in plan.removed:
            lines.append({"change": "remove", "tenant": tenant})
        for line in lines or [{"change": "none"}]:
            print(json.dumps(line, sort_keys=True), file=self._out)
        self._out.flush()


def _fields(limits: object) -> dict[str, object] | None:
    return asdict(limits) if limits is not None else None  # type: ignore[call-overload]
