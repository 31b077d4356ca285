"""The Redis schema: key names and how limits are encoded in hashes.

Every per-tenant key carries the tenant as a Cluster hash tag, so a tenant's limits and bucket
live in one slot and one script call reads and updates both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from mimir_edge.core.limits import FIELD_KINDS, FieldKind, TenantLimits

PREFIX = "mee"

DEFAULTS_KEY = f"{PREFIX}:defaults"
TENANTS_KEY = f"{PREFIX}:tenants"
SYNC_STATUS_KEY = f"{PREFIX}:sync"
#: Sorted set of live RLS replicas (score: last heartbeat, ms); details in replica_key(id).
REPLICAS_KEY = f"{PREFIX}:replicas"
#: Seconds between an RLS replica's heartbeats into REPLICAS_KEY.
HEARTBEAT_S = 2.0
#: A replica whose last heartbeat is older than this is not counted as live (local mode's share,
#: the admin API's replica list); its replica_key expires after it too.
LIVE_FOR_S = 10.0
#: overrides-sync publishes here after a change; RLS replicas refresh their defaults at once.
LIMITS_CHANNEL = f"{PREFIX}:limits-changed"

#: The fields the Lua script enforces (burst factor already applied); the Mimir fields are
#: stored beside them for operators.
ENFORCED_FIELDS = ("request_rate", "request_burst", "ingestion_rate", "ingestion_burst")


def limits_key(tenant: str) -> str:
    """Hash of the tenant's effective limits, written by overrides-sync."""
    return f"{PREFIX}:{{{tenant}}}:limits"


def bucket_key(tenant: str) -> str:
    """Hash of the tenant's token bucket state, written only by the Lua script."""
    return f"{PREFIX}:{{{tenant}}}:bucket"


def override_key(tenant: str) -> str:
    """Hash of the tenant's emergency override (admin API), expiring with its TTL; read by the
    Lua script on every decision."""
    return f"{PREFIX}:{{{tenant}}}:override"


def ha_key(tenant: str) -> str:
    """Hash of the tenant's HA tracker (cluster -> elected replica, last seen, failovers), written
    only by the Lua script; forgotten after 30 minutes without an HA request."""
    return f"{PREFIX}:{{{tenant}}}:ha"


def replica_key(replica_id: str) -> str:
    """Hash describing one RLS replica (version, mode, breaker state), expiring with its heartbeat."""
    return f"{PREFIX}:replica:{replica_id}"


def encode_limits(limits: TenantLimits) -> dict[str, str]:
    """The hash stored for a tenant (or the defaults). Floats (durations in seconds) use repr: exact
    round trip; booleans are "1"/"0", as the Lua script reads them."""
    encoded = {name: _encode_field(FIELD_KINDS[name], value) for name, value in asdict(limits).items()}
    encoded["request_burst"] = str(limits.request_burst_size)
    encoded["ingestion_burst"] = str(limits.effective_ingestion_burst)
    return encoded


def decode_limits(fields: Mapping[bytes | str, bytes | str]) -> TenantLimits:
    """Inverse of encode_limits; fields it does not know are ignored (so are fields a newer writer
    added, and an older writer's hash lacking new fields decodes with Mimir's defaults for them)."""
    values: dict[str, object] = {}
    for raw_name, raw_value in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        kind = FIELD_KINDS.get(name)
        if kind is None:
            continue
        text = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
        values[name] = _decode_field(kind, text)
    return TenantLimits(**values)  # type: ignore[arg-type]


def _encode_field(kind: FieldKind, value: object) -> str:
    if kind is FieldKind.BOOL:
        return "1" if value else "0"
    if kind is FieldKind.LABEL_NAME:
        return str(value)
    return repr(value)


def _decode_field(kind: FieldKind, text: str) -> object:
    if kind is FieldKind.BOOL:
        return text == "1"
    if kind is FieldKind.LABEL_NAME:
        return text
    if kind in (FieldKind.FLOAT, FieldKind.DURATION):
        return float(text)
    return int(text)
