"""Redis with AUTH, standalone and Cluster, with a password holding every character that breaks
a URL it is spliced into (`@ / : %`): REDIS_PASSWORD (or a percent-encoded password in REDIS_URL)
reaches every connection, the change subscription included; no log line and no admin answer shows
it; a wrong password is an outage the failure mode handles, not a crash."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from google.rpc import code_pb2
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.limits import MIMIR_DEFAULTS, TenantLimits
from mimir_edge.core.overrides import RuntimeOverrides
from mimir_edge.core.schema import LIMITS_CHANNEL
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.localstack.redis import HOST, RedisCluster, RedisServer, TlsFiles, cli, make_tls_files
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.localstack.sync import SyncProcess, http_get
from mimir_edge.rls.defaults import DefaultsCache
from mimir_edge.store.announcements import LimitChanges
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect, connect_sync
from mimir_edge.store.limits import LimitsStore
from structlog.testing import capture_logs

from tests.integration.test_admin_api import check

PASSWORD = "p@ss/w:rd%40x"
ENCODED = quote(PASSWORD, safe="")
#: Every way the password could leak: as it is, percent-encoded (as in a URL), half-encoded.
LEAKS = {PASSWORD, ENCODED, quote(PASSWORD)}
DEFAULTS = BucketLimits.from_tenant_limits(MIMIR_DEFAULTS)
SYNC = str(Path(sys.executable).parent / "mimir-overrides-sync")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path_factory.mktemp("auth-redis"), extra_args=("--requirepass", PASSWORD)).start()
    except MissingProgram as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Six nodes with requirepass and masterauth, as a production Cluster has."""
    try:
        cluster = RedisCluster(tmp_path_factory.mktemp("auth-cluster"), password=PASSWORD).start()
    except MissingProgram as exc:
        pytest.fail(str(exc))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Six nodes with AUTH and TLS only (clients and the cluster bus)."""
    workdir = tmp_path_factory.mktemp("tls-cluster")
    try:
        cluster = RedisCluster(workdir, password=PASSWORD, tls=make_tls_files(workdir / "tls")).start()
    except MissingProgram as exc:
        pytest.fail(str(exc))
    yield cluster
    cluster.stop()


def redis_env(request: pytest.FixtureRequest, kind: str, how: str) -> dict[str, str]:
    """The environment an operator gives both services: the password as REDIS_PASSWORD (how the
    charts do it) or percent-encoded in REDIS_URL. tls-cluster: AUTH and TLS (rediss://)."""
    env: dict[str, str] = {}
    scheme = "redis"
    if kind in ("cluster", "tls-cluster"):
        cluster: RedisCluster = request.getfixturevalue("auth_cluster" if kind == "cluster" else "tls_cluster")
        if cluster.tls is not None:
            scheme = "rediss"
            # Clients verify the nodes' certificate against the test CA (OpenSSL reads this).
            monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
            monkeypatch.setenv("SSL_CERT_FILE", str(cluster.tls.ca))
        env["REDIS_CLUSTER_NODES"] = cluster.startup_nodes
        where = "cluster-nodes:6379"  # REDIS_URL's host is not used in Cluster mode
    else:
        server: RedisServer = request.getfixturevalue("auth_server")
        where = f"{HOST}:{server.port}"
    if how == "env":
        env |= {"REDIS_URL": f"{scheme}://{where}/0", "REDIS_PASSWORD": PASSWORD}
    else:
        env["REDIS_URL"] = f"{scheme}://:{ENCODED}@{where}/0"
    return env


def config_of(env: dict[str, str], password: str | None = None) -> RedisConfig:
    return RedisConfig(
        url=env["REDIS_URL"],
        cluster_nodes=RedisConfig.parse_cluster_nodes(env.get("REDIS_CLUSTER_NODES", "")),
        password=env.get("REDIS_PASSWORD", "") if password is None else password,
        timeout_s=2.0,
    )


@pytest.mark.parametrize("kind", ["standalone", "cluster", "tls-cluster"])
async def test_every_client_authenticates_with_redis_password(request: pytest.FixtureRequest, kind: str) -> None:
    for how in ("env", "url"):
        good = config_of(redis_env(request, kind, how))
        redis = connect(good)
        store = BucketStore.for_config(good, redis)  # the lean client on standalone Redis
        decision = await store.decide(f"auth-{how}", requests=1, items=10, defaults=DEFAULTS)
        assert decision.allowed
        await store.close()
        await redis.aclose()
        sync = connect_sync(good)
        assert sync.ping() is True
        sync.close()

    # REDIS_PASSWORD wins over a password in the URL: here a wrong one.
    bad = config_of(redis_env(request, kind, "url"), password="wrong")
    redis = connect(bad)
    store = BucketStore.for_config(bad, redis)
    with pytest.raises(StoreUnavailable):
        await store.decide("auth-tenant", requests=1, items=10, defaults=DEFAULTS)
    await store.close()
    await redis.aclose()


def leaked(text: str) -> set[str]:
    return {form for form in LEAKS if form in text}


@pytest.mark.parametrize(("kind", "how"), [("standalone", "env"), ("standalone", "url"), ("cluster", "env")])
def test_rls_and_overrides_sync_work_and_never_show_the_password(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, how: str
) -> None:
    """Issue 14 items 2 and 7: both services reach a password-protected Redis / Cluster, and no
    log line (at debug level) nor /api/config shows the password in any form."""
    env = redis_env(request, kind, how) | {"LOG_LEVEL": "debug"}
    tenant = f"tiny-{kind}-{how}"  # this run's own: proves this sync wrote it
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(f"overrides:\n  {tenant}:\n    ingestion_rate: 1\n    ingestion_burst_size: 10\n")
    once = subprocess.run(
        # Each run names its own tenant alone: the others' are removed, which needs the flag.
        [SYNC, "--source", "file", "--path", str(overrides), "--once", "--allow-mass-delete"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert once.returncode == 0, once.stdout + once.stderr
    sync = SyncProcess(tmp_path, ["--source", "file", "--path", str(overrides), "--allow-mass-delete"], env=env)
    sync.start(timeout_s=30)
    rls = RlsProcess(tmp_path, env=env)
    try:
        rls.start(timeout_s=30)
        assert check(rls.grpc_addr, tenant) == code_pb2.RESOURCE_EXHAUSTED  # 50 samples > burst 10
        assert check(rls.grpc_addr, "roomy") == code_pb2.OK
        status, body = http_get(f"{rls.admin_url}/api/config")
        assert status == 200
        config = json.loads(body)
        assert config["redis_password"] == "<redacted>"
        if kind == "standalone":
            assert config["redis_url"].startswith("redis://") and ("***" in config["redis_url"]) == (how == "url")
        answers = {"/api/config": body}
        for path in ("/api/overview", "/api/tenants", f"/api/tenants/{tenant}"):
            status, answers[path] = http_get(f"{rls.admin_url}{path}")
            assert status == 200, (path, answers[path])
    finally:
        rls.stop()
        sync.stop()
    for path, text in answers.items():
        assert not leaked(text), f"{path} shows the password"
    rls_lines = rls.process.log_path.read_text().splitlines() if rls.process else []
    sync_lines = sync.log_lines()
    for line in [*rls_lines, *sync_lines, *once.stderr.splitlines(), *once.stdout.splitlines()]:
        assert not leaked(line), f"a log line shows the password: {line}"
    # The lines that name Redis are there (so the check above looked at them) and say where it is.
    started = [json.loads(line) for line in rls_lines if '"rls started"' in line]
    assert len(started) == 1 and started[0]["redis"]
    assert [json.loads(line)["redis"] for line in sync_lines if '"overrides-sync started"' in line]
    # The change subscription logged in too: no failure, so no reconnect loop.
    assert not [line for line in rls_lines if "subscription failed" in line]


async def subscribers(env: dict[str, str], tls: TlsFiles | None) -> int:
    """Subscribers to the change channel over every node (PUBSUB NUMSUB counts one node's)."""
    nodes = RedisConfig.parse_cluster_nodes(env.get("REDIS_CLUSTER_NODES", "")) or [
        (HOST, int(env["REDIS_URL"].rpartition(":")[2].split("/")[0]))
    ]

    def count(port: int) -> int:
        reply = cli(port, "PUBSUB", "NUMSUB", LIMITS_CHANNEL, password=PASSWORD, tls=tls).split()
        return int(reply[1]) if len(reply) == 2 else 0

    return sum([await asyncio.to_thread(count, port) for _, port in nodes])


async def eventually(condition: Callable[[], bool | Awaitable[bool]], what: str, timeout_s: float = 15.0) -> None:
    """Wait for `condition` (sync or async) with a deadline, letting the event loop run."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("kind", "how"), [("standalone", "env"), ("cluster", "url"), ("cluster", "env"), ("tls-cluster", "env")]
)
async def test_a_limits_change_reaches_a_replica_through_pubsub(
    request: pytest.FixtureRequest, kind: str, how: str
) -> None:
    """Issue 14 item 3: on a Cluster with AUTH or TLS the subscription used to drop the
    credentials and the rediss scheme (NOAUTH, retried every 0.5 s at debug level) so changes came
    only by the poll. Here the poll is an hour away: only the announcement can bring the change."""
    env = redis_env(request, kind, how)
    tls = request.getfixturevalue("tls_cluster").tls if kind == "tls-cluster" else None
    config = config_of(env)
    redis = connect(config)
    limits = LimitsStore(redis)
    before = TenantLimits(ingestion_rate=1111.0)
    await limits.reconcile(RuntimeOverrides(defaults=before, tenants={}))
    cache = DefaultsCache(LimitsStore(redis, timeout_s=2.0), refresh_s=3600, retry_s=0.05)
    listeners_before = await subscribers(env, tls)
    with capture_logs() as logged:
        tasks = [asyncio.create_task(cache.run()), asyncio.create_task(cache.follow_changes(config))]
        try:
            await eventually(cache.loaded.is_set, "the first load")
            await eventually(lambda: _more(subscribers(env, tls), listeners_before), "the replica to subscribe")
            assert cache.limits.ingestion_rate == 1111.0
            after = TenantLimits(ingestion_rate=2222.0)
            await limits.reconcile(RuntimeOverrides(defaults=after, tenants={}))
            await eventually(lambda: cache.limits.ingestion_rate == 2222.0, "the change to arrive")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await redis.aclose()
    assert [e for e in logged if e["log_level"] in ("warning", "error")] == []


async def _more(count: Awaitable[int], than: int) -> bool:
    return await count > than


def failures(logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logged if e["event"].startswith("limits change subscription failed")]


async def test_a_refused_subscription_is_a_warning_retried_with_backoff(auth_cluster: RedisCluster) -> None:
    config = RedisConfig(
        cluster_nodes=RedisConfig.parse_cluster_nodes(auth_cluster.startup_nodes), password="Zq9-wrong", timeout_s=2.0
    )
    changes = LimitChanges(config, retry_s=0.01, max_retry_s=0.04)
    calls = 0

    async def on_change() -> None:
        nonlocal calls
        calls += 1

    with capture_logs() as logged:
        task = asyncio.create_task(changes.follow(on_change))
        try:
            await eventually(lambda: len(failures(logged)) >= 5, "five failed attempts")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    seen = failures(logged)[:5]
    assert {e["log_level"] for e in seen} == {"warning"}
    assert [e["retry_in_s"] for e in seen] == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert all(e["error"].startswith("AuthenticationError") for e in seen), seen
    assert not [e for e in seen if "Zq9" in json.dumps(e)]
    assert len({e["redis"] for e in seen}) > 1  # each node in turn
    assert calls == 0 and changes.received == 0 and not changes.subscribed
