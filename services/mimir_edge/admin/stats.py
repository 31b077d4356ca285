"""Cluster-wide decision statistics: every replica counts in memory, flushes to Redis.

The hot path only bumps two integers in a dict (`StatsRecorder.record`). Once a second the
replica swaps the dict and adds it into time buckets in Redis with one pipeline:

- `mee:stats:{res}:fleet:{start}`   hash `{counter}` → total over all tenants
- `mee:stats:{res}:tenants:{start}` hash `{tenant}|{counter}` → per-tenant total

at two resolutions, 10 s buckets kept for 1 h and 5 min buckets kept for 24 h. Counters are
`r.{outcome}` (requests), `i.{outcome}` (items) and `c.{cause}` (requests not simply allowed,
by reason), over both write protocols; `p.{protocol}.r.{outcome}` and `p.{protocol}.i.{outcome}`
split the same requests and items by protocol (remote_write, otlp). Memory is bounded: at most
`max_tenants` tenants per replica and flush get their own fields, the rest are added up as
`__other__`. Whichever replica serves the admin API reads the same keys, so every replica shows
the whole fleet.

The latest details of each (tenant, reason) denial go to `mee:denials` (a hash, last writer
wins) indexed by `mee:denials:index` (a sorted set by last time, trimmed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from mimir_edge import cancellation
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.schema import PREFIX
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.core.verdict import Cause, Outcome, WriteProtocol
from mimir_edge.store.client import Redis, as_text, translated_errors

log = structlog.get_logger("rls.stats")

OTHER_TENANTS = "__other__"
FLEET = ""
DENIALS_KEY = f"{PREFIX}:denials"
DENIALS_INDEX_KEY = f"{PREFIX}:denials:index"
DENIALS_KEPT = 1000
#: A (tenant, reason) quiet for longer than this starts a new streak of denials.
STREAK_GAP_MS = 60_000
FLUSH_S = 1.0
#: Decisions that are not a plain "allowed" and so are shown as denials (of some kind).
NOT_ALLOWED = (Outcome.DENIED, Outcome.SHADOW_DENIED, Outcome.FAILURE_DENIED, Outcome.REJECTED)
#: Admitted without a denial of any kind: an HA pair's duplicate is forwarded (Mimir answers 202).
PLAINLY_ADMITTED = (Outcome.ALLOWED, Outcome.FAILURE_ALLOWED, Outcome.NON_ELECTED)


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str
    step_s: int
    keep_s: int

    def start(self, t: float) -> int:
        return int(t // self.step_s) * self.step_s

    def starts(self, since: float, until: float) -> list[int]:
        """Bucket starts covering [since, until)."""
        first, last = self.start(since), self.start(until - 1e-9)
        return list(range(first, last + 1, self.step_s))


FINE = Resolution("10s", 10, 3600)
COARSE = Resolution("5m", 300, 86400)
RESOLUTIONS = (FINE, COARSE)


def resolution_for(window_s: float) -> Resolution:
    return FINE if window_s <= FINE.keep_s else COARSE


def fleet_key(res: Resolution, start: int) -> str:
    return f"{PREFIX}:stats:{res.name}:fleet:{start}"


def tenants_key(res: Resolution, start: int) -> str:
    return f"{PREFIX}:stats:{res.name}:tenants:{start}"


def request_counter(outcome: Outcome) -> str:
    return f"r.{outcome.value}"


def item_counter(outcome: Outcome) -> str:
    return f"i.{outcome.value}"


def cause_counter(cause: Cause) -> str:
    return f"c.{cause.value}"


def protocol_counter(protocol: WriteProtocol, counter: str) -> str:
    """The share of `counter` (a request or item counter) that came in over `protocol`."""
    return f"p.{protocol.value}.{counter}"


#: Every counter a tenant can have, for HMGET of one tenant's fields.
ALL_COUNTERS = (
    *(request_counter(o) for o in Outcome),
    *(item_counter(o) for o in Outcome),
    *(cause_counter(c) for c in Cause),
    *(protocol_counter(p, request_counter(o)) for p in WriteProtocol for o in Outcome),
    *(protocol_counter(p, item_counter(o)) for p in WriteProtocol for o in Outcome),
)

#: What one flush adds up: (tenant, outcome, cause, protocol) → [requests, items].
_Pending = dict[tuple[str, Outcome, Cause, WriteProtocol], list[int]]


@dataclass(slots=True)
class _Denial:
    outcome: str
    first_ms: int
    last_ms: int
    requests: int = 0
    items: int = 0
    limits: dict[str, float | int] = field(default_factory=dict)


class StatsRecorder:
    """Per-replica aggregation of decisions, flushed to Redis by `run()`."""

    def __init__(
        self,
        redis: Redis,
        *,
        replica_id: str,
        max_tenants: int = 5000,
        flush_s: float = FLUSH_S,
        on_flush: Callable[[str], None] | None = None,
    ):
        self._on_flush = on_flush or (lambda result: None)
        self._redis = redis
        self._replica_id = replica_id
        self._max_tenants = max_tenants
        self._flush_s = flush_s
        self._pending: _Pending = {}
        self._tenants: set[str] = set()
        self._denials: dict[tuple[str, Cause], _Denial] = {}
        self.flushes = 0
        self.flush_errors = 0

    def record(
        self,
        tenant: str | None,
        outcome: Outcome,
        cause: Cause,
        items: int,
        limits: BucketLimits | None = None,
        *,
        protocol: WriteProtocol = WriteProtocol.REMOTE_WRITE,
    ) -> None:
        name = self._admit(tenant or FLEET)
        key = (name, outcome, cause, protocol)
        counts = self._pending.get(key)
        if counts is None:
            self._pending[key] = counts = [0, 0]
        counts[0] += 1
        counts[1] += items
        if outcome not in PLAINLY_ADMITTED:
            self._note_denial(name, outcome, cause, items, limits)

    def _admit(self, tenant: str) -> str:
        """`tenant`, or OTHER_TENANTS once `max_tenants` tenants have counts waiting."""
        if tenant not in self._tenants:
            if len(self._tenants) >= self._max_tenants:
                tenant = OTHER_TENANTS
            self._tenants.add(tenant)
        return tenant

    @property
    def pending_tenants(self) -> int:
        """Tenants with counts waiting for a flush: at most `max_tenants`, and __other__."""
        return len({key[0] for key in self._pending})

    def _note_denial(
        self, tenant: str, outcome: Outcome, cause: Cause, items: int, limits: BucketLimits | None
    ) -> None:
        now_ms = int(time.time() * 1000)
        denial = self._denials.get((tenant, cause))
        if denial is None:
            denial = self._denials[(tenant, cause)] = _Denial(outcome.value, now_ms, now_ms)
        denial.outcome = outcome.value
        denial.last_ms = now_ms
        denial.requests += 1
        denial.items += items
        if limits is not None:
            denial.limits = {
                "ingestion_rate": limits.ingestion_rate,
                "ingestion_burst": limits.ingestion_burst,
                "request_rate": limits.request_rate,
                "request_burst": limits.request_burst,
            }

    async def run(self) -> None:
        """Flush every `flush_s` until cancelled; a final flush on the way out."""
        try:
            while True:
                await cancellation.sleep(self._flush_s)
                with contextlib.suppress(StoreUnavailable):
                    await self.flush()
        finally:
            with contextlib.suppress(StoreUnavailable):
                await self.flush()

    async def flush(self, now: float | None = None) -> None:
        """Add what was counted since the last flush into Redis. On failure the counts are kept
        (merged with what comes next), so an outage delays statistics but loses none."""
        if not self._pending and not self._denials:
            return
        pending, self._pending, self._tenants = self._pending, {}, set()
        denials, self._denials = self._denials, {}
        t = time.time() if now is None else now
        try:
            async with translated_errors("stats flush"), asyncio.timeout(2.0):
                pipe = self._redis.pipeline(transaction=False)
                for res in RESOLUTIONS:
                    start = res.start(t)
                    fkey, tkey = fleet_key(res, start), tenants_key(res, start)
                    for counter, value in _fleet_counters(pending).items():
                        pipe.hincrby(fkey, counter, value)
                    for (tenant, counter), value in _tenant_counters(pending).items():
                        pipe.hincrby(tkey, f"{tenant}|{counter}", value)
                    # Kept one step longer than the retention, so a full window is always there.
                    pipe.expire(fkey, res.keep_s + res.step_s)
                    pipe.expire(tkey, res.keep_s + res.step_s)
                since = await self._streak_starts(denials) if denials else {}
                for (tenant, cause), denial in denials.items():
                    member = f"{tenant}|{cause.value}"
                    detail = {
                        "since_ms": since.get(member, denial.first_ms),
                        "tenant": tenant,
                        "reason": cause.value,
                        "decision": denial.outcome,
                        "last_ms": denial.last_ms,
                        "replica": self._replica_id,
                        "limits": denial.limits,
                    }
                    pipe.hset(DENIALS_KEY, member, json.dumps(detail, sort_keys=True))
                    pipe.zadd(DENIALS_INDEX_KEY, {member: denial.last_ms})
                await pipe.execute()
                if denials:
                    await self._trim_denials()
        except StoreUnavailable as exc:
            self.flush_errors += 1
            self._on_flush("error")
            self._merge_back(pending, denials)
            log.debug("stats flush failed, kept for the next one", error=str(exc))
            raise
        self.flushes += 1
        self._on_flush("ok")

    async def _streak_starts(self, denials: Mapping[tuple[str, Cause], _Denial]) -> dict[str, int]:
        """When each (tenant, reason) started being denied: kept from the stored entry while the
        denials go on, restarted after a quiet minute."""
        members = [f"{tenant}|{cause.value}" for tenant, cause in denials]
        stored = await self._redis.hmget(DENIALS_KEY, members)
        since = {}
        for member, denial, raw in zip(members, denials.values(), stored, strict=True):
            if raw:
                previous = json.loads(raw)
                if denial.first_ms - int(previous.get("last_ms", 0)) <= STREAK_GAP_MS:
                    since[member] = int(previous.get("since_ms", denial.first_ms))
        return since

    async def _trim_denials(self) -> None:
        # Separate from the pipeline: on Cluster the two keys may live on different nodes.
        extra = await self._redis.zcard(DENIALS_INDEX_KEY) - DENIALS_KEPT
        if extra > 0:
            dropped = await self._redis.zrange(DENIALS_INDEX_KEY, 0, extra - 1)
            await self._redis.zremrangebyrank(DENIALS_INDEX_KEY, 0, extra - 1)
            if dropped:
                await self._redis.hdel(DENIALS_KEY, *dropped)

    def _merge_back(self, pending: _Pending, denials: Mapping[tuple[str, Cause], _Denial]) -> None:
        # Through the same cap as new counts: each flush admits `max_tenants` fresh tenants, so
        # merging back uncapped would grow by that much per failed flush for as long as Redis is
        # away, under a client sending random tenant ids. Past the cap, counts go to __other__.
        for (tenant, outcome, cause, protocol), (requests, items) in pending.items():
            counts = self._pending.setdefault((self._admit(tenant), outcome, cause, protocol), [0, 0])
            counts[0] += requests
            counts[1] += items
        for (tenant, cause), denial in denials.items():
            self._denials.setdefault((self._admit(tenant), cause), denial)


def _fleet_counters(pending: _Pending) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (_, outcome, cause, protocol), (requests, items) in pending.items():
        _add_counters(totals, outcome, cause, protocol, requests, items)
    return totals


def _tenant_counters(pending: _Pending) -> dict[tuple[str, str], int]:
    per_tenant: dict[str, dict[str, int]] = {}
    for (tenant, outcome, cause, protocol), (requests, items) in pending.items():
        if tenant != FLEET:
            _add_counters(per_tenant.setdefault(tenant, {}), outcome, cause, protocol, requests, items)
    return {(tenant, counter): value for tenant, counters in per_tenant.items() for counter, value in counters.items()}


def _add_counters(
    into: dict[str, int], outcome: Outcome, cause: Cause, protocol: WriteProtocol, requests: int, items: int
) -> None:
    for counter, value in (
        (request_counter(outcome), requests),
        (item_counter(outcome), items),
        (protocol_counter(protocol, request_counter(outcome)), requests),
        (protocol_counter(protocol, item_counter(outcome)), items),
        (
            cause_counter(cause) if outcome is not Outcome.ALLOWED and outcome is not Outcome.NON_ELECTED else "",
            requests,
        ),
    ):
        if counter and value:
            into[counter] = into.get(counter, 0) + value


# -- reading (any replica; plain functions of what Redis returned) -----------------------------


@dataclass(slots=True)
class Totals:
    """Counters added up over a window, with the derived figures the API shows."""

    counters: dict[str, int] = field(default_factory=dict)

    def add(self, fields: Mapping[str, int]) -> None:
        for name, value in fields.items():
            self.counters[name] = self.counters.get(name, 0) + value

    def requests(self, *outcomes: Outcome, protocol: WriteProtocol | None = None) -> int:
        """Requests with these outcomes (all without any), over `protocol` (None: both)."""
        return sum(self.counters.get(_over(protocol, request_counter(o)), 0) for o in outcomes or tuple(Outcome))

    def items(self, *outcomes: Outcome, protocol: WriteProtocol | None = None) -> int:
        """Items with these outcomes (all without any), over `protocol` (None: both)."""
        return sum(self.counters.get(_over(protocol, item_counter(o)), 0) for o in outcomes or tuple(Outcome))

    def by_protocol(self) -> dict[str, dict[str, dict[str, int]]]:
        """Requests and items by outcome, for each protocol."""
        return {
            p.value: {
                "requests": {o.value: self.requests(o, protocol=p) for o in Outcome}
                | {"total": self.requests(protocol=p)},
                "items": {o.value: self.items(o, protocol=p) for o in Outcome} | {"total": self.items(protocol=p)},
            }
            for p in WriteProtocol
        }

    def by_reason(self) -> dict[str, int]:
        return {name[2:]: value for name, value in sorted(self.counters.items()) if name.startswith("c.") and value > 0}

    def to_json(self) -> dict[str, object]:
        return {
            "requests": {o.value: self.requests(o) for o in Outcome} | {"total": self.requests()},
            "items": {o.value: self.items(o) for o in Outcome} | {"total": self.items()},
            "not_allowed_by_reason": self.by_reason(),
            "by_protocol": self.by_protocol(),
        }

    @property
    def denied_requests(self) -> int:
        return self.requests(Outcome.DENIED, Outcome.FAILURE_DENIED)

    @property
    def would_deny_requests(self) -> int:
        """Denied, or would have been (shadow): what the limits say, whatever the mode."""
        return self.requests(Outcome.DENIED, Outcome.SHADOW_DENIED)


def _over(protocol: WriteProtocol | None, counter: str) -> str:
    return counter if protocol is None else protocol_counter(protocol, counter)


def decode_counts(raw: Mapping[bytes | str, bytes | str]) -> dict[str, int]:
    return {as_text(k): int(v) for k, v in raw.items()}


def split_tenant_fields(raw: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """`{tenant|counter: n}` → `{tenant: {counter: n}}`."""
    out: dict[str, dict[str, int]] = {}
    for name, value in raw.items():
        tenant, sep, counter = name.rpartition("|")
        if sep:
            out.setdefault(tenant, {})[counter] = value
    return out


def window_starts(res: Resolution, window_s: float, now: float) -> list[int]:
    return res.starts(now - window_s, now)


def series_points(
    starts: Sequence[int], hashes: Iterable[Mapping[str, int]], res: Resolution
) -> list[dict[str, object]]:
    """One point per bucket: time, requests/items by outcome, as per-second rates and counts."""
    points = []
    for start, counts in zip(starts, hashes, strict=True):
        totals = Totals(dict(counts))
        points.append(
            {
                "t": start,
                "step_s": res.step_s,
                "requests": {o.value: totals.requests(o) for o in Outcome},
                "items": {o.value: totals.items(o) for o in Outcome},
            }
        )
    return points
