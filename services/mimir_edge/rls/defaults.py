"""The default limits the RLS passes to the script for tenants without their own: read from
Redis at start, refreshed when overrides-sync announces a change (pub/sub) and periodically in
case an announcement was missed; the last good copy is kept while Redis is away."""

from __future__ import annotations

import asyncio

import structlog

from mimir_edge import cancellation
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.limits import MIMIR_DEFAULTS
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.store.announcements import LimitChanges
from mimir_edge.store.client import RedisConfig
from mimir_edge.store.limits import LimitsStore

log = structlog.get_logger("rls.defaults")


class DefaultsCache:
    def __init__(self, store: LimitsStore, *, refresh_s: float = 10.0, retry_s: float = 0.5):
        self._store = store
        self._refresh_s = refresh_s
        self._retry_s = retry_s
        self.limits = BucketLimits.from_tenant_limits(MIMIR_DEFAULTS)
        self.loaded = asyncio.Event()

    async def refresh(self) -> bool:
        try:
            defaults = await self._store.read_defaults()
        except StoreUnavailable as exc:
            log.warning("default limits not refreshed", error=str(exc))
            return False
        limits = BucketLimits.from_tenant_limits(defaults)
        if limits != self.limits or not self.loaded.is_set():
            log.info("default limits loaded", **{k: getattr(limits, k) for k in limits.__slots__})
        self.limits = limits
        self.loaded.set()
        return True

    async def run(self) -> None:
        """Refresh forever: quickly until the first success, then every `refresh_s`."""
        while True:
            ok = await self.refresh()
            await cancellation.sleep(self._refresh_s if ok else self._retry_s)

    async def follow_changes(self, config: RedisConfig) -> None:
        """Refresh on every change announcement (and after each (re)subscription)."""
        await LimitChanges(config, retry_s=self._retry_s).follow(self.refresh)
