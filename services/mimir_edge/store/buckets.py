"""The token bucket in Redis: one atomic Lua call per decision.

Two transports, one script: on standalone Redis the lean pipelining RespClient (every call
written at once, replies in order); on Redis Cluster redis-py, with concurrent calls coalesced
into per-node pipelines. Both count their round trips.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from mimir_edge.core.admission import WriteCharge
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.ha_tracker import FORGET_MS, HaLimits, HaOutcome
from mimir_edge.core.schema import bucket_key, ha_key, limits_key, override_key
from mimir_edge.core.token_bucket import BucketLimits, Decision, Reason
from mimir_edge.store.client import Redis, RedisConfig, translated_errors
from mimir_edge.store.coalescer import Coalescer
from mimir_edge.store.resp import RespAddress, RespClient, RespError
from mimir_edge.store.scripts import LuaScript, load_script

#: An idle bucket is dropped after at most this long, even when it never refills (rate 0).
DEFAULT_MAX_IDLE_MS = 24 * 3600 * 1000

_REASONS = {reason.value.encode(): reason for reason in Reason}
_HA_OUTCOMES = {outcome.value.encode(): outcome for outcome in HaOutcome}


def _otlp_args(charge: WriteCharge) -> tuple[str | int, ...]:
    """An OTLP write's other counts for the script to pick from; four empty strings otherwise."""
    v = charge.otlp
    if v is None:
        return ("", "", "", "")
    return (v.nhcb_items, v.delta_items, v.delta_nhcb_items, v.delta_exemplars)


class _ReplyLimits:
    """The limits part of the script's reply as a BucketLimits, made once per distinct reply: a
    tenant's limits come back identical on every decision, and building the two frozen
    dataclasses was a tenth of a check's CPU. Bounded: cleared when `max_entries` is passed."""

    def __init__(self, max_entries: int = 4096):
        self._max_entries = max_entries
        self._cache: dict[tuple[object, ...], BucketLimits] = {}

    def get(self, r: list[Any]) -> BucketLimits:
        key = (*r[7:11], *r[16:24])
        limits = self._cache.get(key)
        if limits is None:
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
            limits = self._cache[key] = _limits_from_reply(r)
        return limits


def _limits_from_reply(r: list[Any]) -> BucketLimits:
    return BucketLimits(
        request_rate=float(r[7]),
        request_burst=int(r[8]),
        ingestion_rate=float(r[9]),
        ingestion_burst=int(r[10]),
        max_exemplars=int(r[16]),
        ha=HaLimits(
            accept_ha_samples=r[17] == 1,
            cluster_label=r[18].decode(),
            replica_label=r[19].decode(),
            max_clusters=int(r[20]),
            failover_timeout_us=int(r[21]),
        ),
        otel_nhcb=r[22] == 1,
        otel_native_delta=r[23] == 1,
    )


@dataclass(frozen=True, slots=True)
class BucketCall:
    tenant: str
    charge: WriteCharge
    defaults: BucketLimits
    now_us: int | None


class BucketStore:
    """Decides calls against the shared buckets; `round_trips` counts writes to Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        resp: RespClient | None = None,
        timeout_s: float = 0.25,
        max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
        max_batch: int = 256,
        max_in_flight: int = 4,
        ha_forget_ms: int = FORGET_MS,
    ):
        self._redis = redis
        self._timeout_s = timeout_s
        self._max_idle_ms = max_idle_ms
        self._ha_forget_ms = ha_forget_ms
        self._script: LuaScript = load_script("token_bucket")
        self._coalescer: Coalescer[BucketCall, Decision] = Coalescer(
            self._flush, max_batch=max_batch, max_in_flight=max_in_flight
        )
        self._resp = resp
        self._direct_calls = 0
        self._pipelines = 0
        self._limits = _ReplyLimits()

    @classmethod
    def for_config(cls, config: RedisConfig, redis: Redis, **kwargs: int | float) -> BucketStore:
        """The store an RLS uses: the lean client on standalone Redis, pipelines on Cluster."""
        resp = None
        if not config.cluster_nodes:
            username, password = config.credentials
            address = replace(RespAddress.from_url(config.url), username=username, password=password)
            resp = RespClient(address, connect_timeout_s=config.timeout_s)
        kwargs.setdefault("timeout_s", config.timeout_s)
        return cls(redis, resp=resp, **kwargs)  # type: ignore[arg-type]

    @property
    def decisions(self) -> int:
        return self._coalescer.calls + self._direct_calls

    @property
    def round_trips(self) -> int:
        return self._pipelines + (self._resp.writes if self._resp else 0)

    async def decide(
        self,
        tenant: str,
        *,
        requests: int = 1,
        items: int = 0,
        defaults: BucketLimits,
        now_us: int | None = None,
        charge: WriteCharge | None = None,
    ) -> Decision:
        """One atomic decision for `tenant` (`charge`, or plain `requests` and `items`). Raises
        StoreUnavailable when Redis does not answer."""
        call = BucketCall(tenant, charge or WriteCharge(items=items, requests=requests), defaults, now_us)
        if self._resp is not None:
            self._direct_calls += 1
            return await self._decide_direct(self._resp, call)
        return await self._coalescer.submit(call)

    async def ping(self) -> None:
        """One cheap round trip on the decision path's own connection; raises StoreUnavailable."""
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._resp is not None:
                    await self._resp.call("PING")
                else:
                    await self._redis.ping()
        except (RespError, OSError, TimeoutError, RedisError) as exc:
            raise StoreUnavailable(f"redis PING failed: {type(exc).__name__}: {exc}") from exc

    async def load_script(self) -> None:
        async with translated_errors("SCRIPT LOAD"):
            await self._redis.script_load(self._script.source)

    async def close(self) -> None:
        await self._coalescer.close()
        if self._resp is not None:
            await self._resp.close()

    async def _decide_direct(self, resp: RespClient, call: BucketCall) -> Decision:
        args = self._args(call)
        # One budget for the whole decision, kept by the client's timer (asyncio.timeout() would
        # make a timer per decision); the rare second and third calls get what is left of it.
        started = time.monotonic()
        try:
            try:
                reply = await resp.call(*args, timeout_s=self._timeout_s)
            except RespError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                # A restarted or failed-over Redis forgot the script: load it, call again.
                await resp.call("SCRIPT", "LOAD", self._script.source, timeout_s=self._left(started))
                reply = await resp.call(*args, timeout_s=self._left(started))
        except (RespError, OSError, TimeoutError) as exc:  # ConnectionError is an OSError
            raise StoreUnavailable(f"redis EVALSHA failed: {type(exc).__name__}: {exc}") from exc
        decision = self._decision(call, reply)
        if isinstance(decision, BaseException):
            raise decision
        return decision

    async def _flush(self, calls: Sequence[BucketCall]) -> list[Decision | BaseException]:
        replies = await self._run(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # A restarted or failed-over Redis forgot the script: load it, retry only those.
            await self.load_script()
            retried = await self._run([calls[i] for i in missing])
            for i, reply in zip(missing, retried, strict=True):
                replies[i] = reply
        return [self._decision(call, reply) for call, reply in zip(calls, replies, strict=True)]

    def _left(self, started: float) -> float:
        return max(0.0, self._timeout_s - (time.monotonic() - started))

    def _args(self, call: BucketCall) -> tuple[str | int, ...]:
        d = call.defaults
        charge = call.charge
        args: tuple[str | int, ...] = (
            "EVALSHA",
            self._script.sha,
            4,
            limits_key(call.tenant),
            bucket_key(call.tenant),
            override_key(call.tenant),
            ha_key(call.tenant),
            charge.requests,
            charge.items,
            repr(d.request_rate),
            d.request_burst,
            repr(d.ingestion_rate),
            d.ingestion_burst,
            self._max_idle_ms,
            "" if call.now_us is None else call.now_us,
            charge.exemplars,
            d.max_exemplars,
            "1" if d.ha.accept_ha_samples else "0",
            d.ha.cluster_label,
            d.ha.replica_label,
            d.ha.max_clusters,
            repr(d.ha.failover_timeout_us / 1_000_000),
            self._ha_forget_ms,
            "1" if d.otel_nhcb else "0",
            "1" if d.otel_native_delta else "0",
            *_otlp_args(charge),
        )
        if not charge.first_series_labels:
            return args
        return args + tuple(part for label in charge.first_series_labels for part in label)

    async def _run(self, calls: Sequence[BucketCall]) -> list[object]:
        self._pipelines += 1
        async with translated_errors("EVALSHA"), asyncio.timeout(self._timeout_s):
            if len(calls) == 1:  # no pipeline object for a lone call
                try:
                    return [await self._redis.execute_command(*self._args(calls[0]))]
                except NoScriptError as exc:
                    return [exc]
                except ResponseError as exc:  # a script error is an answer, not an outage
                    return [exc]
            # execute_command, not evalsha(): redis-py blocks the latter in Cluster pipelines,
            # while the command itself routes by its keys like any other.
            pipe = self._redis.pipeline(transaction=False)
            for call in calls:
                pipe.execute_command(*self._args(call))
            return list(await pipe.execute(raise_on_error=False))

    def _decision(self, call: BucketCall, reply: object) -> Decision | BaseException:
        if isinstance(reply, BaseException):  # NoScriptError included
            return StoreUnavailable(f"token bucket script failed for {call.tenant!r}: {reply}")
        r = reply  # the Lua reply, documented in lua/token_bucket.lua
        assert isinstance(r, list)
        return Decision(
            allowed=r[0] == 1,
            reason=_REASONS[r[1]],
            remaining_requests=float(r[2]),
            remaining_items=float(r[3]),
            retry_after_us=int(r[4]),
            now_us=int(r[5]),
            expire_ms=int(r[6]),
            limits=self._limits.get(r),
            tenant_limits=r[11] == 1,
            override=r[12].decode() if r[12] else "",
            ha=_HA_OUTCOMES[r[13]],
            items_charged=int(r[14]),
            elected_replica=r[15].decode(),
        )
