"""A limit change in the overrides source is enforced by every RLS replica: real Redis,
overrides-sync following a file, 3 `mimir-rls` replicas behind real Envoy. How fast (well under a
second) is measured by bench/propagation.py on the same code path: a loaded host moves the figure,
so the test prints it and asserts only that every change arrives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mimir_edge.deploy.envoy import EnvoyOptions
from mimir_edge.localstack.distributor import StandInDistributor
from mimir_edge.localstack.propagation import HIGH_RATE, LOW_RATE, Prober, measure_changes, overrides_document, summary
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.sync import SyncProcess
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request

from tests.stack import Stack, post
from tests.waiting import wait_for

TENANT = "propagating"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.close()


def test_limit_changes_reach_every_replica(tmp_path: Path, fresh_redis: RedisServer, stack: Stack) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text(overrides_document(TENANT, HIGH_RATE))
    sync = SyncProcess(
        tmp_path, ["--source", "file", "--path", str(path), "--redis-url", fresh_redis.url, "--interval", "0.05"]
    ).start()
    distributor = StandInDistributor().start()
    prober = None
    try:
        replicas = [stack.add_rls({"REDIS_URL": fresh_redis.url, "LOG_LEVEL": "warning"}) for _ in range(3)]
        rls = tuple(("127.0.0.1", r.authz_http_port) for r in replicas)  # the default transport
        envoy = stack.add_envoy(
            EnvoyOptions(
                rls=rls, upstream=("127.0.0.1", distributor.port), listen=("127.0.0.1", 0), admin=("127.0.0.1", 0)
            )
        )
        prober = Prober([r.grpc_addr for r in replicas], TENANT)
        wait_for(lambda: all(prober.admits(i) for i in range(3)), what="initial limits")

        # A change that never arrives fails here, naming the replicas that missed it.
        changes = measure_changes(path, TENANT, prober, replicas=3, changes=20, timeout_s=30)
        stats = summary(changes)
        print(
            f"\npropagation over {stats['changes']} changes: p50 {stats['p50_ms']} ms, "
            f"p99 {stats['p99_ms']} ms, max {stats['max_ms']} ms"
        )
        assert [c.rate for c in changes] == [LOW_RATE, HIGH_RATE] * 10

        # And through Envoy: lowered → 429 naming the new limit.
        path.write_text(overrides_document(TENANT, LOW_RATE))
        body = compress(rw1_request(Shape(series=50)))
        headers = {**RW1_HEADERS, "X-Scope-OrgID": TENANT}
        reply = wait_for(lambda: (r := post(envoy.url, body, headers)).status == 429 and r, what="429 via Envoy")
        assert "burst size limit, set to 10" in reply.body.decode()
    finally:
        if prober is not None:
            prober.close()
        distributor.stop()
        sync.stop()
