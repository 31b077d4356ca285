"""`mimir-overrides-sync --source file --once` against real Redis: what it writes, and that
the Lua path enforces it on the next call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mimir_edge.core.limits import MIMIR_DEFAULTS, TenantLimits
from mimir_edge.core.overrides import RuntimeOverrides
from mimir_edge.core.schema import DEFAULTS_KEY, SYNC_STATUS_KEY, TENANTS_KEY, decode_limits, limits_key
from mimir_edge.core.token_bucket import BucketLimits, Reason
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect
from mimir_edge.store.limits import LimitsStore

SYNC = str(Path(sys.executable).parent / "mimir-overrides-sync")


def run_sync(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNC, "--source", "file", "--once", "--redis-url", redis_url, "--log-format", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_sync_once_writes_limits_and_the_script_enforces_them(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        overrides = tmp_path / "overrides.yaml"
        overrides.write_text(
            "overrides:\n  small:\n    ingestion_rate: 10\n    ingestion_burst_size: 20\n"
            "  big:\n    ingestion_rate: 100000\n"
        )
        defaults = tmp_path / "defaults.yaml"
        defaults.write_text("limits:\n  ingestion_rate: 7\n  ingestion_burst_size: 7\n")
        done = run_sync(server.url, "--path", str(overrides), "--defaults-path", str(defaults))
        assert done.returncode == 0, done.stderr
        assert '"event": "synced"' in done.stderr and '"written": 2' in done.stderr

        redis = connect(RedisConfig(url=server.url, timeout_s=30))
        assert {t.decode() for t in await redis.smembers(TENANTS_KEY)} == {"small", "big"}
        assert decode_limits(await redis.hgetall(limits_key("small"))) == TenantLimits(
            ingestion_rate=10, ingestion_burst_size=20
        )
        assert decode_limits(await redis.hgetall(DEFAULTS_KEY)) == TenantLimits(
            ingestion_rate=7, ingestion_burst_size=7
        )
        assert int(await redis.hget(SYNC_STATUS_KEY, "generation")) == 1

        store = BucketStore.for_config(RedisConfig(url=server.url, timeout_s=30), redis)
        fallback = BucketLimits.from_tenant_limits(MIMIR_DEFAULTS)
        decision = await store.decide("small", requests=1, items=21, defaults=fallback)
        assert decision.reason is Reason.INGESTION_BURST and decision.limits.ingestion_burst == 20

        # The tenant disappears from the file: its limits are removed, the defaults apply.
        overrides.write_text("overrides:\n  big:\n    ingestion_rate: 100000\n")
        done = run_sync(server.url, "--path", str(overrides), "--defaults-path", str(defaults))
        assert done.returncode == 0, done.stderr
        assert '"removed": 1' in done.stderr and '"written": 0' in done.stderr
        assert await redis.exists(limits_key("small")) == 0
        decision = await store.decide("small", requests=1, items=1, defaults=fallback)
        assert not decision.tenant_limits
        await store.close()
        await redis.aclose()
    finally:
        server.stop()


async def test_broken_file_keeps_the_last_good_limits(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        overrides = tmp_path / "overrides.yaml"
        overrides.write_text("overrides:\n  a:\n    ingestion_rate: 10\n")
        assert run_sync(server.url, "--path", str(overrides)).returncode == 0
        overrides.write_text("overrides:\n  a:\n    ingestion_rate: -10\n")
        done = run_sync(server.url, "--path", str(overrides))
        assert done.returncode == 1
        assert "tenant 'a', field 'ingestion_rate'" in done.stderr
        redis = connect(RedisConfig(url=server.url, timeout_s=30))
        assert decode_limits(await redis.hgetall(limits_key("a"))).ingestion_rate == 10
        await redis.aclose()
    finally:
        server.stop()


async def test_sync_reports_unreachable_redis(tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("overrides: {}\n")
    from mimir_edge.localstack.processes import free_port

    done = run_sync(f"redis://127.0.0.1:{free_port()}/0", "--path", str(overrides))
    assert done.returncode == 1 and "redis" in done.stderr.lower()


async def test_reconcile_is_idempotent_on_cluster_and_standalone(redis) -> None:  # type: ignore[no-untyped-def]
    store = LimitsStore(redis)
    tenants = {f"idem-{i}": TenantLimits(ingestion_rate=100 + i) for i in range(20)}
    desired = RuntimeOverrides(defaults=MIMIR_DEFAULTS, tenants=tenants)
    first = await store.reconcile(desired)
    assert set(first.written) >= set(tenants)
    second = await store.reconcile(desired)
    assert second.written == () and second.removed == () and not second.defaults_changed
    assert second.generation == first.generation + 1
    assert {t: lim for t, lim in (await store.read_tenants()).items() if t.startswith("idem-")} == tenants
