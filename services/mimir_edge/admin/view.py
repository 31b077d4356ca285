"""What the admin API shows, read from Redis: the same answer whichever replica serves it.

Everything here is blocking (redis-py's sync client) and runs on the admin server's threads, so
a slow admin page never holds up a decision on the event loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from mimir_edge.admin import overrides
from mimir_edge.admin.stats import (
    ALL_COUNTERS,
    DENIALS_INDEX_KEY,
    DENIALS_KEY,
    FINE,
    OTHER_TENANTS,
    Resolution,
    Totals,
    decode_counts,
    fleet_key,
    resolution_for,
    series_points,
    split_tenant_fields,
    tenants_key,
    window_starts,
)
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.limits import MIMIR_DEFAULTS, TenantLimits
from mimir_edge.core.schema import (
    DEFAULTS_KEY,
    ENFORCED_FIELDS,
    LIVE_FOR_S,
    REPLICAS_KEY,
    SYNC_STATUS_KEY,
    TENANTS_KEY,
    bucket_key,
    decode_limits,
    ha_key,
    limits_key,
    replica_key,
)
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.core.verdict import Outcome
from mimir_edge.store.client import SyncRedis, as_text, translated_errors

#: Rates ("now") are taken over the last minute of complete 10 s buckets.
RATE_WINDOW_S = 60
#: The Mimir limits that decide what a write is charged, shown on the tenant page with their source.
CHARGING_FIELDS = (
    "accept_ha_samples",
    "ha_cluster_label",
    "ha_replica_label",
    "ha_max_clusters",
    "ha_tracker_failover_timeout",
    "max_global_exemplars_per_user",
    "otel_convert_histograms_to_nhcb",
    "otel_native_delta_ingestion",
)
TOP_TENANTS = 10
SORT_KEYS = ("tenant", "items_per_s", "requests_per_s", "utilisation", "denied_requests", "ingestion_rate")
ADMITTED = (Outcome.ALLOWED, Outcome.SHADOW_DENIED, Outcome.FAILURE_ALLOWED)


class FleetView:
    def __init__(self, redis: SyncRedis, *, cluster: bool):
        self._redis = redis
        self._cluster = cluster

    # -- building blocks ---------------------------------------------------------------------

    def _hashes(self, keys: Sequence[str]) -> list[dict[str, int]]:
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return [decode_counts(raw) for raw in pipe.execute()]

    def fleet_series(self, window_s: float, now: float) -> tuple[Resolution, list[int], list[dict[str, int]]]:
        res = resolution_for(window_s)
        starts = window_starts(res, window_s, now)
        return res, starts, self._hashes([fleet_key(res, s) for s in starts])

    def tenant_totals(self, window_s: float, now: float) -> dict[str, Totals]:
        res = resolution_for(window_s)
        totals: dict[str, Totals] = {}
        for raw in self._hashes([tenants_key(res, s) for s in window_starts(res, window_s, now)]):
            for tenant, counters in split_tenant_fields(raw).items():
                totals.setdefault(tenant, Totals()).add(counters)
        return totals

    def tenant_rates(self, now: float) -> dict[str, Totals]:
        """Per-tenant totals over the last RATE_WINDOW_S of complete buckets."""
        end = FINE.start(now)
        return self.tenant_totals(RATE_WINDOW_S, end) if end > 0 else {}

    def limits(self, tenants: Sequence[str]) -> dict[str, TenantLimits | None]:
        pipe = self._redis.pipeline(transaction=False)
        for tenant in tenants:
            pipe.hgetall(limits_key(tenant))
        return {
            tenant: decode_limits(raw) if raw else None for tenant, raw in zip(tenants, pipe.execute(), strict=True)
        }

    def defaults(self) -> TenantLimits:
        raw = self._redis.hgetall(DEFAULTS_KEY)
        return decode_limits(raw) if raw else MIMIR_DEFAULTS

    def configured_tenants(self) -> list[str]:
        return sorted(as_text(t) for t in self._redis.smembers(TENANTS_KEY))

    # -- endpoints ---------------------------------------------------------------------------

    def overview(self, window_s: float, served_by: str) -> dict[str, Any]:
        now = time.time()
        res, starts, hashes = self.fleet_series(window_s, now)
        totals = Totals()
        for counts in hashes:
            totals.add(counts)
        _, rate_starts, rate_hashes = self.fleet_series(RATE_WINDOW_S, FINE.start(now))
        rate = Totals()
        for counts in rate_hashes:
            rate.add(counts)
        recent = self.tenant_totals(300, now)
        top = sorted(recent.items(), key=lambda kv: (-kv[1].items(), kv[0]))[:TOP_TENANTS]
        return {
            "served_by": served_by,
            "generated_ms": int(now * 1000),
            "window_s": window_s,
            "totals": totals.to_json(),
            "rates": _rates(rate, RATE_WINDOW_S if rate_starts else 1),
            "series": series_points(starts, hashes, res),
            "top_tenants": [
                {
                    "tenant": tenant,
                    "requests": t.requests(),
                    "items": t.items(),
                    "denied_requests": t.denied_requests,
                    "would_deny_requests": t.would_deny_requests,
                    "window_s": 300,
                }
                for tenant, t in top
            ],
            "replicas": self.replicas(),
            "redis": self.redis_status(),
            "sync": self.sync_status(),
            "overrides": overrides.list_overrides(self._redis),
        }

    def tenants(
        self, *, query: str, sort: str, descending: bool, page: int, per_page: int, window_s: float
    ) -> dict[str, Any]:
        now = time.time()
        window = self.tenant_totals(window_s, now)
        rates = self.tenant_rates(now)
        configured = self.configured_tenants()
        names = sorted((set(configured) | set(window)) - {OTHER_TENANTS})
        if OTHER_TENANTS in window:
            names.append(OTHER_TENANTS)
        if query:
            names = [n for n in names if query.lower() in n.lower()]
        configured_set = set(configured)
        defaults = self.defaults()
        active = self._overrides_by_tenant()
        # Limits are needed for every candidate only when sorting by them; else for the page.
        needs_all = sort in ("utilisation", "ingestion_rate")
        # A limits hash is the truth even for a tenant not (yet) in the index, so every row reads it.
        limits = self.limits([n for n in names if n != OTHER_TENANTS]) if needs_all else {}
        rows = [
            self._tenant_row(
                n, window.get(n), rates.get(n), limits.get(n), defaults, n in configured_set, active.get(n)
            )
            for n in names
        ]
        rows.sort(key=lambda row: _sort_key(row, sort), reverse=descending)
        total = len(rows)
        page_rows = rows[(page - 1) * per_page : page * per_page]
        if not needs_all:
            page_limits = self.limits([r["tenant"] for r in page_rows if r["tenant"] != OTHER_TENANTS])
            page_rows = [
                self._tenant_row(
                    r["tenant"],
                    window.get(r["tenant"]),
                    rates.get(r["tenant"]),
                    page_limits.get(r["tenant"]),
                    defaults,
                    r["configured"],
                    active.get(r["tenant"]),
                )
                for r in page_rows
            ]
        return {
            "total": total,
            "page": page,
            "per_page": per_page,
            "sort": sort,
            "order": "desc" if descending else "asc",
            "window_s": window_s,
            "rate_window_s": RATE_WINDOW_S,
            "tenants": page_rows,
        }

    def _overrides_by_tenant(self) -> dict[str, dict[str, Any]]:
        return {o["tenant"]: o for o in overrides.list_overrides(self._redis)}

    def _tenant_row(
        self,
        tenant: str,
        window: Totals | None,
        rate: Totals | None,
        limits: TenantLimits | None,
        defaults: TenantLimits,
        configured: bool,
        override: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        window = window or Totals()
        rate = rate or Totals()
        enforced = BucketLimits.from_tenant_limits(limits or defaults)
        if override:  # an emergency override replaces the fields it sets
            enforced = BucketLimits(**(_enforced(enforced) | override["limits"]))
        items_per_s = rate.items() / RATE_WINDOW_S
        return {
            "tenant": tenant,
            "configured": configured,
            "source": "overrides" if limits is not None else "defaults",
            "limits": _enforced(enforced),
            "usage": {
                "items_per_s": round(items_per_s, 3),
                "admitted_items_per_s": round(rate.items(*ADMITTED) / RATE_WINDOW_S, 3),
                "requests_per_s": round(rate.requests() / RATE_WINDOW_S, 3),
            },
            "utilisation": round(items_per_s / enforced.ingestion_rate, 4) if enforced.ingestion_rate > 0 else None,
            "window": {
                "requests": window.requests(),
                "items": window.items(),
                "denied_requests": window.denied_requests,
                "would_deny_requests": window.would_deny_requests,
                "denied_items": window.items(Outcome.DENIED, Outcome.FAILURE_DENIED),
                "by_reason": window.by_reason(),
            },
            "override": override,
        }

    def tenant(self, tenant: str, window_s: float) -> dict[str, Any]:
        now = time.time()
        res = resolution_for(window_s)
        starts = window_starts(res, window_s, now)
        pipe = self._redis.pipeline(transaction=False)
        for start in starts:
            pipe.hmget(tenants_key(res, start), [f"{tenant}|{c}" for c in ALL_COUNTERS])
        hashes = [
            {c: int(v) for c, v in zip(ALL_COUNTERS, values, strict=True) if v is not None} for values in pipe.execute()
        ]
        totals = Totals()
        for counts in hashes:
            totals.add(counts)
        rate = self.tenant_rates(now).get(tenant, Totals())
        own = self.limits([tenant])[tenant]
        defaults = self.defaults()
        override = overrides.get_override(self._redis, tenant)
        row = self._tenant_row(tenant, totals, rate, own, defaults, tenant in set(self.configured_tenants()), override)
        enforced = BucketLimits.from_tenant_limits(own or defaults)
        default_enforced = BucketLimits.from_tenant_limits(defaults)
        sources = {}
        for name in ENFORCED_FIELDS:
            if override and name in override["limits"]:
                sources[name] = "emergency_override"
            elif own is not None and getattr(enforced, name) != getattr(default_enforced, name):
                sources[name] = "overrides"
            else:
                sources[name] = "defaults"
        in_force = own or defaults
        charging = {name: getattr(in_force, name) for name in CHARGING_FIELDS}
        for name in CHARGING_FIELDS:
            differs = own is not None and getattr(own, name) != getattr(defaults, name)
            sources[name] = "overrides" if differs else "defaults"
        row.update(
            {
                "window_s": window_s,
                "limit_sources": sources,
                "configured_limits": asdict(own) if own else None,
                "charging": charging,
                "ha_clusters": self._ha_clusters(tenant),
                "override": override,
                "totals": totals.to_json(),
                "series": series_points(starts, hashes, res),
                "bucket": self._bucket(tenant, BucketLimits(**row["limits"])),
                "denials": [d for d in self.denials(100) if d["tenant"] == tenant],
            }
        )
        return row

    def _ha_clusters(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's HA tracker as the Lua script keeps it: one entry per cluster."""
        clusters = []
        for cluster, value in self._redis.hgetall(ha_key(tenant)).items():
            seen_us, failovers, replica = as_text(value).split(" ", 2)
            clusters.append(
                {
                    "cluster": as_text(cluster),
                    "elected_replica": replica,
                    "last_seen_ms": int(seen_us) // 1000,
                    "failovers": int(failovers),
                }
            )
        return sorted(clusters, key=lambda c: c["cluster"])

    def _bucket(self, tenant: str, limits: BucketLimits) -> dict[str, float] | None:
        """The tenant's bucket as the next decision would see it: refilled to now, capped at the
        burst in force (an emergency override's included)."""
        raw = {as_text(k): as_text(v) for k, v in self._redis.hgetall(bucket_key(tenant)).items()}
        if "it" not in raw:
            return None
        now_us = time.time() * 1_000_000

        def level(tokens: str, updated: str, rate: float, burst: int) -> float:
            elapsed = max(0.0, now_us - int(updated))
            return round(min(float(burst), float(tokens) + elapsed * rate / 1_000_000), 3)

        out = {
            "item_tokens": level(raw["it"], raw["iu"], limits.ingestion_rate, limits.ingestion_burst),
            "item_updated_ms": int(raw["iu"]) // 1000,
        }
        if "rt" in raw and limits.request_rate > 0:
            out["request_tokens"] = level(raw["rt"], raw["ru"], limits.request_rate, limits.request_burst)
        return out

    def denials(self, limit: int, window_s: float = 300) -> list[dict[str, Any]]:
        members = [as_text(m) for m in self._redis.zrevrange(DENIALS_INDEX_KEY, 0, limit - 1)]  # type: ignore[arg-type]
        if not members:
            return []
        details = self._redis.hmget(DENIALS_KEY, members)
        counts = self.tenant_totals(window_s, time.time())
        out = []
        for raw in details:
            if not raw:
                continue
            entry = json.loads(raw)
            t = counts.get(entry["tenant"], Totals())
            entry["window_s"] = window_s
            entry["requests_in_window"] = t.counters.get(f"c.{entry['reason']}", 0)
            out.append(entry)
        return out

    def replicas(self) -> list[dict[str, Any]]:
        now_ms = int(time.time() * 1000)
        ids = [as_text(i) for i in self._redis.zrangebyscore(REPLICAS_KEY, now_ms - int(LIVE_FOR_S * 1000), "+inf")]  # type: ignore[arg-type]
        pipe = self._redis.pipeline(transaction=False)
        for replica in ids:
            pipe.hgetall(replica_key(replica))
        out = []
        for raw in pipe.execute():
            if not raw:
                continue
            fields: dict[str, Any] = {as_text(k): as_text(v) for k, v in raw.items()}
            fields["age_s"] = round((now_ms - int(fields.get("heartbeat_ms", now_ms))) / 1000, 1)
            out.append(fields)
        return sorted(out, key=lambda r: r.get("id", ""))

    def redis_status(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            with translated_errors("PING"):
                self._redis.ping()
                latency_ms = (time.perf_counter() - started) * 1000
                info: Mapping[str, Any] = self._redis.info("server") if not self._cluster else {}
                memory: Mapping[str, Any] = self._redis.info("memory") if not self._cluster else {}
        except StoreUnavailable as exc:
            return {"ok": False, "mode": "cluster" if self._cluster else "standalone", "error": str(exc)}
        return {
            "ok": True,
            "mode": "cluster" if self._cluster else "standalone",
            "latency_ms": round(latency_ms, 3),
            "version": info.get("redis_version"),
            "used_memory_bytes": memory.get("used_memory"),
        }

    def sync_status(self) -> dict[str, Any]:
        raw = {as_text(k): as_text(v) for k, v in self._redis.hgetall(SYNC_STATUS_KEY).items()}
        if not raw:
            return {"seen": False}
        last = int(raw.get("last_success_ms", 0) or 0)
        return {
            "seen": True,
            "generation": int(raw.get("generation", 0) or 0),
            "last_success_ms": last,
            "age_s": round(time.time() - last / 1000, 1) if last else None,
            "tenants": int(raw.get("tenants", 0) or 0),
            "source": raw.get("source", ""),
            "condition": raw.get("condition", ""),
            "last_error": raw.get("last_error", ""),
        }


def _enforced(limits: BucketLimits) -> dict[str, float | int]:
    return {
        "ingestion_rate": limits.ingestion_rate,
        "ingestion_burst": limits.ingestion_burst,
        "request_rate": limits.request_rate,
        "request_burst": limits.request_burst,
    }


def _rates(totals: Totals, seconds: float) -> dict[str, Any]:
    return {
        "window_s": seconds,
        "requests_per_s": {o.value: round(totals.requests(o) / seconds, 3) for o in Outcome}
        | {"total": round(totals.requests() / seconds, 3)},
        "items_per_s": {o.value: round(totals.items(o) / seconds, 3) for o in Outcome}
        | {"total": round(totals.items() / seconds, 3)},
    }


def _sort_key(row: Mapping[str, Any], sort: str) -> tuple[Any, ...]:
    if sort == "tenant":
        return (row["tenant"],)
    if sort == "items_per_s":
        return (row["usage"]["items_per_s"], row["tenant"])
    if sort == "requests_per_s":
        return (row["usage"]["requests_per_s"], row["tenant"])
    if sort == "utilisation":
        return (row["utilisation"] or 0.0, row["tenant"])
    if sort == "denied_requests":
        return (row["window"]["would_deny_requests"], row["tenant"])
    return (row["limits"]["ingestion_rate"], row["tenant"])
