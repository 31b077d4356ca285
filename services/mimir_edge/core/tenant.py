"""Tenant ids as Mimir accepts them (dskit's tenant.ValidTenantID)."""

from __future__ import annotations

import re

from mimir_edge.core.errors import InvalidTenant

MAX_TENANT_ID_LENGTH = 150
_VALID = re.compile(r"[A-Za-z0-9!\-_.*'()]+")


def validate_tenant_id(tenant: str | None) -> str:
    """Return `tenant` if Mimir would accept it; raise InvalidTenant otherwise."""
    if not tenant:
        raise InvalidTenant("no org id")
    if len(tenant) > MAX_TENANT_ID_LENGTH:
        raise InvalidTenant(f"tenant id longer than {MAX_TENANT_ID_LENGTH} characters")
    if tenant in (".", "..") or not _VALID.fullmatch(tenant):
        raise InvalidTenant(f"tenant id {tenant!r} contains unsupported characters")
    return tenant
