"""overrides-sync following a file, as a real process against real Redis: edits, the atomic
symlink swap of a mounted ConfigMap, delete and recreate, broken documents, mass deletes, dry
runs, and the RLS picking up a defaults change within a second."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis as sync_redis
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from google.rpc import code_pb2
from mimir_edge.core.schema import DEFAULTS_KEY, SYNC_STATUS_KEY, TENANTS_KEY, decode_limits, limits_key
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.sync import SyncProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from tests.stack import Stack
from tests.waiting import wait_for

SYNC = str(Path(sys.executable).parent / "mimir-overrides-sync")


def overrides_yaml(**rates: float) -> str:
    lines = ["overrides:"]
    for tenant, rate in rates.items():
        lines += [f"  {tenant}:", f"    ingestion_rate: {rate}"]
    return "\n".join(lines) + "\n"


class RedisView:
    def __init__(self, url: str):
        self.client = sync_redis.Redis.from_url(url, decode_responses=True)

    def rate(self, tenant: str) -> float | None:
        fields = self.client.hgetall(limits_key(tenant))
        return decode_limits(fields).ingestion_rate if fields else None

    def status(self) -> dict[str, str]:
        return dict(self.client.hgetall(SYNC_STATUS_KEY))

    def tenants(self) -> set[str]:
        return set(self.client.smembers(TENANTS_KEY))


@pytest.fixture
def view(fresh_redis: RedisServer) -> Iterator[RedisView]:
    v = RedisView(fresh_redis.url)
    yield v
    v.client.close()


@pytest.fixture
def syncs(tmp_path: Path) -> Iterator[list[SyncProcess]]:
    started: list[SyncProcess] = []
    yield started
    for s in started:
        s.stop()


def start_sync(syncs: list[SyncProcess], tmp_path: Path, redis_url: str, *args: str) -> SyncProcess:
    process = SyncProcess(tmp_path, ["--source", "file", "--redis-url", redis_url, "--interval", "0.05", *args])
    syncs.append(process)
    return process.start()


def test_edit_and_broken_yaml(tmp_path: Path, fresh_redis: RedisServer, view: RedisView, syncs) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "overrides.yaml"
    path.write_text(overrides_yaml(a=100, b=200))
    sync = start_sync(syncs, tmp_path, fresh_redis.url, "--path", str(path))
    wait_for(lambda: view.rate("a") == 100 and view.rate("b") == 200, what="initial sync")

    path.write_text(overrides_yaml(a=150, b=200))
    wait_for(lambda: view.rate("a") == 150, what="edit applied")

    path.write_text("overrides:\n  a:\n    ingestion_rate: [oops\n")
    wait_for(lambda: view.status().get("condition") == "invalid", what="invalid document reported")
    assert view.rate("a") == 150 and view.rate("b") == 200  # last good limits kept
    assert "not valid YAML" in view.status()["last_error"]
    assert 'overrides_sync_errors_total{kind="invalid"} 1.0' in sync.metrics()

    path.write_text(overrides_yaml(a=175, b=200))
    wait_for(lambda: view.rate("a") == 175 and view.status().get("condition") == "ok", what="recovery")
    synced = [json.loads(line) for line in sync.log_lines() if '"synced"' in line]
    assert synced[-1]["written"] == 1 and synced[-1]["tenants_written"] == ["a"]


def configmap_volume(root: Path, text: str, generation: int) -> None:
    """Write `text` the way the kubelet updates a ConfigMap volume: a new timestamped dir, then an
    atomic rename of the `..data` symlink; `overrides.yaml` itself is a symlink into `..data`."""
    version = root / f"..2026_11_27_00_00_{generation:02d}.000000001"
    version.mkdir()
    (version / "overrides.yaml").write_text(text)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(version.name)
    os.replace(tmp_link, root / "..data")
    if not (root / "overrides.yaml").is_symlink():
        (root / "overrides.yaml").symlink_to("..data/overrides.yaml")


def test_atomic_symlink_swap(tmp_path: Path, fresh_redis: RedisServer, view: RedisView, syncs) -> None:  # type: ignore[no-untyped-def]
    volume = tmp_path / "volume"
    volume.mkdir()
    configmap_volume(volume, overrides_yaml(a=10), 1)
    start_sync(syncs, tmp_path, fresh_redis.url, "--path", str(volume / "overrides.yaml"))
    wait_for(lambda: view.rate("a") == 10, what="initial sync")
    for generation, rate in enumerate((20, 30, 40), start=2):
        configmap_volume(volume, overrides_yaml(a=rate), generation)
        wait_for(lambda rate=rate: view.rate("a") == rate, what=f"swap to {rate}")


def test_delete_and_recreate(tmp_path: Path, fresh_redis: RedisServer, view: RedisView, syncs) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "overrides.yaml"
    path.write_text(overrides_yaml(a=10, b=20))
    sync = start_sync(syncs, tmp_path, fresh_redis.url, "--path", str(path))
    wait_for(lambda: view.rate("b") == 20, what="initial sync")
    path.unlink()
    wait_for(lambda: view.status().get("condition") == "missing", what="missing reported")
    assert view.rate("a") == 10 and view.rate("b") == 20
    assert "overrides_sync_source_ok 0.0" in sync.metrics()
    path.write_text(overrides_yaml(a=11))  # b is gone from the new document: removed, defaults apply
    wait_for(lambda: view.rate("a") == 11 and view.rate("b") is None, what="recreated file applied")
    assert view.tenants() == {"a"}


def test_tenant_removal_and_mass_delete_guard(tmp_path: Path, fresh_redis: RedisServer, view: RedisView) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text(overrides_yaml(**{f"t{i}": 100 + i for i in range(10)}))
    once = [SYNC, "--source", "file", "--once", "--path", str(path), "--redis-url", fresh_redis.url]
    assert subprocess.run(once, capture_output=True, timeout=60).returncode == 0
    assert len(view.tenants()) == 10

    path.write_text(overrides_yaml(**{f"t{i}": 100 + i for i in range(6)}))  # 4 of 10 removed: fine
    assert subprocess.run(once, capture_output=True, timeout=60).returncode == 0
    assert view.tenants() == {f"t{i}" for i in range(6)}

    path.write_text(overrides_yaml(t0=100))  # 5 of 6 removed: suspicious
    refused = subprocess.run(once, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "mass delete refused" in refused.stderr
    assert len(view.tenants()) == 6 and view.status()["condition"] == "refused"

    allowed = subprocess.run([*once, "--allow-mass-delete"], capture_output=True, text=True, timeout=60)
    assert allowed.returncode == 0, allowed.stderr
    assert view.tenants() == {"t0"}


def test_dry_run_prints_the_diff_and_writes_nothing(tmp_path: Path, fresh_redis: RedisServer, view: RedisView) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text(overrides_yaml(a=10, b=20))
    base = [SYNC, "--source", "file", "--once", "--path", str(path), "--redis-url", fresh_redis.url]
    assert subprocess.run(base, capture_output=True, timeout=60).returncode == 0
    generation = view.status()["generation"]
    path.write_text(overrides_yaml(a=15, c=30))
    out = subprocess.run([*base, "--dry-run"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    changes = [json.loads(line) for line in out.stdout.splitlines()]
    assert {"change": "update", "tenant": "a", "fields": {"ingestion_rate": [10.0, 15.0]}} in changes
    assert any(c["change"] == "add" and c["tenant"] == "c" for c in changes)
    assert {"change": "remove", "tenant": "b"} in changes
    assert view.rate("a") == 10 and view.rate("c") is None and view.status()["generation"] == generation


def check(stub: authz_grpc.AuthorizationStub, tenant: str, items: int) -> int:
    request = authz.CheckRequest()
    request.attributes.request.http.headers.update({**RW1_HEADERS, "x-scope-orgid": tenant})
    request.attributes.request.http.raw_body = compress(rw1_request(Shape(series=items)))
    return int(stub.Check(request, timeout=5).status.code)


def test_a_defaults_change_reaches_the_rls_by_notification(  # type: ignore[no-untyped-def]
    tmp_path: Path, fresh_redis: RedisServer, view: RedisView, syncs
) -> None:
    overrides, defaults = tmp_path / "overrides.yaml", tmp_path / "defaults.yaml"
    overrides.write_text(overrides_yaml(a=10))
    defaults.write_text("ingestion_rate: 1000\ningestion_burst_size: 1000\n")
    start_sync(syncs, tmp_path, fresh_redis.url, "--path", str(overrides), "--defaults-path", str(defaults))
    wait_for(lambda: view.client.hget(DEFAULTS_KEY, "ingestion_burst") == "1000", what="defaults written")
    stack = Stack(tmp_path)
    try:
        rls_starting = time.monotonic()
        rls = stack.add_rls({"REDIS_URL": fresh_redis.url})
        probes = itertools.count()

        def fresh_tenant_admitted() -> bool:
            # A tenant of its own per probe, so a probe finds a full bucket at the default burst:
            # 50 items fit a burst of 1000, never one of 20, whatever the probes before it spent.
            return check(stub, f"no-overrides-{next(probes)}", 50) == code_pb2.OK

        with grpc.insecure_channel(rls.grpc_addr) as channel:
            stub = authz_grpc.AuthorizationStub(channel)
            assert fresh_tenant_admitted()
            defaults.write_text("ingestion_rate: 1000\ningestion_burst_size: 20\n")
            started = time.monotonic()
            # The RLS also re-reads the defaults 10 s after it first loaded them (after rls_starting):
            # enforced before then, however slow the host, the change came by the sync's notification.
            wait_for(
                lambda: not fresh_tenant_admitted(),
                timeout_s=rls_starting + 9.5 - started,
                what="the new default burst (20) enforced by the RLS before its own 10 s re-read",
            )
            print(f"\ndefaults change enforced after {time.monotonic() - started:.3f} s")
    finally:
        stack.close()
