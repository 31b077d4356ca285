"""overrides-sync following a ConfigMap through the Kubernetes API, as a real process using the
real `kubernetes` client against tests/fake_kube_api.py (there is no kube-apiserver here):
initial sync, edits, a watch closed by the server, 410 Gone, an API server that goes away and
comes back, a deleted ConfigMap, and Lease leader election between two controllers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from mimir_edge.core.schema import SYNC_STATUS_KEY, decode_limits, limits_key
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.sync import SyncProcess

from tests.fake_kube_api import FakeKubeApi
from tests.waiting import wait_for

NS, NAME, KEY = "mimir", "mimir-overrides", "overrides.yaml"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"


def overrides(**rates: float) -> dict[str, str]:
    lines = ["overrides:"]
    for tenant, rate in rates.items():
        lines += [f"  {tenant}:", f"    ingestion_rate: {rate}"]
    return {KEY: "\n".join(lines) + "\n"}


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKubeApi]:
    fake = FakeKubeApi(bookmark_interval_s=0.5).start()
    yield fake
    fake.stop()


def kubeconfig(tmp_path: Path, kube: FakeKubeApi) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: fake\n  cluster:\n    server: {kube.url}\n"
        "users:\n- name: fake\n  user: {}\n"
        "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
        "current-context: fake\n"
    )
    return path


class Rates:
    def __init__(self, url: str):
        self.client = sync_redis.Redis.from_url(url, decode_responses=True)

    def __call__(self, tenant: str) -> float | None:
        fields = self.client.hgetall(limits_key(tenant))
        return decode_limits(fields).ingestion_rate if fields else None

    def status(self) -> dict[str, str]:
        return dict(self.client.hgetall(SYNC_STATUS_KEY))


@pytest.fixture
def rates(fresh_redis: RedisServer) -> Iterator[Rates]:
    r = Rates(fresh_redis.url)
    yield r
    r.client.close()


@pytest.fixture
def syncs() -> Iterator[list[SyncProcess]]:
    started: list[SyncProcess] = []
    yield started
    for s in started:
        s.stop()


def start_sync(syncs: list[SyncProcess], tmp_path: Path, kube: FakeKubeApi, redis_url: str, *extra: str) -> SyncProcess:
    args = [
        "--source",
        "kubernetes",
        "--kubeconfig",
        str(kubeconfig(tmp_path, kube)),
        "--namespace",
        NS,
        "--configmap",
        NAME,
        "--key",
        KEY,
        "--redis-url",
        redis_url,
        *extra,
    ]
    process = SyncProcess(tmp_path, args, env={"NO_PROXY": "*", "no_proxy": "*"}, name=f"sync-{len(syncs)}")
    syncs.append(process)
    return process.start()


def metric(sync: SyncProcess, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", sync.metrics(), re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_watch_follows_edits_resumes_relists_and_recovers(  # type: ignore[no-untyped-def]
    tmp_path: Path, kube: FakeKubeApi, fresh_redis: RedisServer, rates: Rates, syncs
) -> None:
    kube.set_configmap(NS, NAME, overrides(a=100))
    sync = start_sync(syncs, tmp_path, kube, fresh_redis.url)
    wait_for(lambda: rates("a") == 100, what="initial sync")
    lists = kube.count("GET", CONFIGMAPS, watch=False)
    assert lists == 1

    kube.set_configmap(NS, NAME, overrides(a=110))
    wait_for(lambda: rates("a") == 110, what="edit applied")

    # The server ends the watch: resumed from the last resourceVersion, no new list.
    watches = kube.count("GET", CONFIGMAPS, watch=True)
    kube.close_watches()
    wait_for(lambda: kube.count("GET", CONFIGMAPS, watch=True) > watches, what="watch resumed")
    kube.set_configmap(NS, NAME, overrides(a=120))
    wait_for(lambda: rates("a") == 120, what="edit after resume")
    assert kube.count("GET", CONFIGMAPS, watch=False) == lists

    # 410 Gone: the version is too old, so list again.
    kube.set_configmap(NS, NAME, overrides(a=125))
    kube.expire_history()
    wait_for(lambda: kube.count("GET", CONFIGMAPS, watch=False) > lists, what="re-list after 410")
    wait_for(lambda: rates("a") == 125, what="state after re-list")
    assert metric(sync, 'overrides_sync_watch_restarts_total{reason="gone"}') >= 1

    # The API server goes away for a while: back off, then recover and catch up. "A while" is two
    # failed attempts, seen in the metric, rather than a sleep that a slow host may not fill.
    kube.go_down()
    wait_for(
        lambda: metric(sync, 'overrides_sync_watch_restarts_total{reason="error"}') >= 2,
        timeout_s=30,
        what="two watch restarts on errors while the API server is down",
    )
    kube.set_configmap(NS, NAME, overrides(a=130))  # changed while the controller could not see it
    kube.come_up()
    wait_for(lambda: rates("a") == 130, timeout_s=30, what="recovery after the API server came back")
    assert any("configmap watch restarting" in line for line in sync.log_lines())


def test_deleted_configmap_keeps_limits_and_reports_it(  # type: ignore[no-untyped-def]
    tmp_path: Path, kube: FakeKubeApi, fresh_redis: RedisServer, rates: Rates, syncs
) -> None:
    kube.set_configmap(NS, NAME, overrides(a=100, b=200))
    sync = start_sync(syncs, tmp_path, kube, fresh_redis.url)
    wait_for(lambda: rates("b") == 200, what="initial sync")
    kube.delete_configmap(NS, NAME)
    wait_for(lambda: rates.status().get("condition") == "missing", what="condition reported")
    assert "does not exist" in rates.status()["last_error"]
    assert rates("a") == 100 and rates("b") == 200
    assert metric(sync, "overrides_sync_source_ok") == 0
    kube.set_configmap(NS, NAME, overrides(a=101, b=200))
    wait_for(lambda: rates("a") == 101 and rates.status().get("condition") == "ok", what="recreated")


def test_leader_election_one_writer_and_failover(  # type: ignore[no-untyped-def]
    tmp_path: Path, kube: FakeKubeApi, fresh_redis: RedisServer, rates: Rates, syncs
) -> None:
    kube.set_configmap(NS, NAME, overrides(a=100))
    election = ("--leader-elect", "--lease-duration", "2")
    first = start_sync(syncs, tmp_path, kube, fresh_redis.url, *election, "--identity", "first")
    second = start_sync(syncs, tmp_path, kube, fresh_redis.url, *election, "--identity", "second")
    wait_for(lambda: rates("a") == 100, what="initial sync by the leader")
    wait_for(
        lambda: metric(first, "overrides_sync_leader") + metric(second, "overrides_sync_leader") == 1,
        what="exactly one leader",
    )
    leader, follower = (first, second) if metric(first, "overrides_sync_leader") == 1 else (second, first)
    lease = kube.get_lease(NS, "mimir-overrides-sync")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == ("first" if leader is first else "second")

    for rate in (110, 120, 130):
        kube.set_configmap(NS, NAME, overrides(a=rate))
        wait_for(lambda rate=rate: rates("a") == rate, what=f"edit {rate}")
    # The counters move after the write that `rates` sees, and the follower sees each edit on its own time.
    wait_for(
        lambda: (
            metric(leader, 'overrides_sync_syncs_total{result="applied"}') >= 3
            and metric(follower, 'overrides_sync_syncs_total{result="deferred"}') >= 3
        ),
        what="3 edits applied by the leader and deferred by the follower",
    )
    assert metric(follower, 'overrides_sync_syncs_total{result="applied"}') == 0

    # The leader stops (and releases the Lease): the follower takes over and writes.
    assert leader.process is not None and leader.process.popen is not None
    leader.process.terminate()
    assert leader.process.popen.wait(timeout=15) == 0
    wait_for(lambda: metric(follower, "overrides_sync_leader") == 1, timeout_s=30, what="failover")
    kube.set_configmap(NS, NAME, overrides(a=140))
    wait_for(lambda: rates("a") == 140, what="the new leader writes")
