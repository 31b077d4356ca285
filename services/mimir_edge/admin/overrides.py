"""Emergency overrides: a temporary limit or enforcement mode for one tenant.

Stored in Redis beside the tenant's limits (`mee:{tenant}:override`, same hash tag) with the TTL
as the key's expiry, so the Lua script on every replica applies it on the next decision and
Redis removes it by itself. `mee:overrides` (sorted set by expiry) lists them; `mee:audit` keeps
the last changes for the UI.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mimir_edge.core.schema import PREFIX, override_key
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.store.client import SyncRedis, as_text

OVERRIDES_KEY = f"{PREFIX}:overrides"
AUDIT_KEY = f"{PREFIX}:audit"
AUDIT_KEPT = 500
MAX_TTL_S = 7 * 24 * 3600
MODES = ("enforce", "shadow")
MAX_REASON = 500
#: Body fields → the enforced field they set.
LIMIT_FIELDS = {
    "ingestion_rate": "ingestion_rate",
    "ingestion_burst_size": "ingestion_burst",
    "request_rate": "request_rate",
    "request_burst_size": "request_burst",
}
ALLOWED_FIELDS = frozenset({"ttl_seconds", "reason", "mode", *LIMIT_FIELDS})


class InvalidOverride(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EmergencyOverride:
    tenant: str
    mode: str
    reason: str
    ttl_s: int
    #: Enforced fields (ingestion_rate, ingestion_burst, request_rate, request_burst) it sets.
    limits: Mapping[str, float | int]

    def encode(self, *, by: str, now_ms: int) -> dict[str, str]:
        fields = {name: repr(float(v)) if "rate" in name else str(int(v)) for name, v in self.limits.items()}
        return fields | {
            "mode": self.mode,
            "reason": self.reason,
            "by": by,
            "created_ms": str(now_ms),
            "expires_ms": str(now_ms + self.ttl_s * 1000),
        }


def parse_override(tenant: str, body: object, current: BucketLimits) -> EmergencyOverride:
    """Validate a PUT body. A rate given without its burst keeps the tenant's current ratio of
    burst to rate (Mimir's default 200,000 / 10,000 is 20 s of traffic), so a cut rate does not
    leave a burst that lets a flood through."""
    if not isinstance(body, dict):
        raise InvalidOverride("body must be a JSON object")
    unknown = sorted(set(body) - ALLOWED_FIELDS)
    if unknown:
        raise InvalidOverride(f"unknown field(s): {', '.join(unknown)}")
    ttl = body.get("ttl_seconds")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= MAX_TTL_S:
        raise InvalidOverride(f"ttl_seconds is required: an integer from 1 to {MAX_TTL_S}")
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise InvalidOverride(f"reason is required: a non-empty string of at most {MAX_REASON} characters")
    mode = body.get("mode", "enforce")
    if mode not in MODES:
        raise InvalidOverride(f"mode must be one of {', '.join(MODES)}")
    limits: dict[str, float | int] = {}
    for name, enforced in LIMIT_FIELDS.items():
        if name not in body:
            continue
        value = body[name]
        is_number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not is_number or value < 0 or value > 1e12:
            raise InvalidOverride(f"{name} must be a number from 0 to 1e12")
        if "burst" in name and (not isinstance(value, int) and not float(value).is_integer()):
            raise InvalidOverride(f"{name} must be a whole number")
        limits[enforced] = float(value) if "rate" in name else int(value)
    for rate, burst, current_rate, current_burst in (
        ("ingestion_rate", "ingestion_burst", current.ingestion_rate, current.ingestion_burst),
        ("request_rate", "request_burst", current.request_rate, current.request_burst),
    ):
        if rate in limits and burst not in limits:
            ratio = current_burst / current_rate if current_rate > 0 else 1.0
            limits[burst] = max(1, math.ceil(float(limits[rate]) * ratio))
    return EmergencyOverride(tenant, mode, reason.strip(), ttl, limits)


def put_override(redis: SyncRedis, override: EmergencyOverride, *, by: str) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    fields = override.encode(by=by, now_ms=now_ms)
    key = override_key(override.tenant)
    pipe = redis.pipeline(transaction=True)  # one key: MULTI works on Cluster too
    pipe.delete(key)
    pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
    pipe.pexpire(key, override.ttl_s * 1000)
    pipe.execute()
    redis.zadd(OVERRIDES_KEY, {override.tenant: int(fields["expires_ms"])})
    return decode_override(override.tenant, fields)


def delete_override(redis: SyncRedis, tenant: str) -> bool:
    removed = int(redis.delete(override_key(tenant)))
    redis.zrem(OVERRIDES_KEY, tenant)
    return removed > 0


def get_override(redis: SyncRedis, tenant: str) -> dict[str, Any] | None:
    fields = redis.hgetall(override_key(tenant))
    return decode_override(tenant, fields) if fields else None


def list_overrides(redis: SyncRedis) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    redis.zremrangebyscore(OVERRIDES_KEY, "-inf", now_ms)
    tenants = [as_text(t) for t in redis.zrange(OVERRIDES_KEY, 0, -1)]  # type: ignore[arg-type]
    found = []
    for tenant in tenants:
        override = get_override(redis, tenant)
        if override is not None:
            found.append(override)
    return found


def decode_override(tenant: str, raw: Mapping[Any, Any]) -> dict[str, Any]:
    fields = {as_text(k): as_text(v) for k, v in raw.items()}
    expires_ms = int(fields.get("expires_ms", 0))
    limits: dict[str, float | int] = {}
    for enforced in LIMIT_FIELDS.values():
        if enforced in fields:
            limits[enforced] = float(fields[enforced]) if "rate" in enforced else int(fields[enforced])
    return {
        "tenant": tenant,
        "mode": fields.get("mode", ""),
        "reason": fields.get("reason", ""),
        "by": fields.get("by", ""),
        "created_ms": int(fields.get("created_ms", 0)),
        "expires_ms": expires_ms,
        "expires_in_s": max(0.0, round((expires_ms - time.time() * 1000) / 1000, 1)),
        "limits": limits,
    }


def audit(redis: SyncRedis, entry: Mapping[str, Any]) -> None:
    pipe = redis.pipeline(transaction=True)  # one key
    pipe.lpush(AUDIT_KEY, json.dumps(entry, sort_keys=True))
    pipe.ltrim(AUDIT_KEY, 0, AUDIT_KEPT - 1)
    pipe.execute()


def audit_entries(redis: SyncRedis, count: int = 100) -> list[dict[str, Any]]:
    return [json.loads(as_text(raw)) for raw in redis.lrange(AUDIT_KEY, 0, count - 1)]
