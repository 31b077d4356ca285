"""Redis with AUTH, standalone and Cluster: REDIS_URL's credentials reach every node (in Cluster
mode REDIS_URL carries the credentials and scheme, REDIS_CLUSTER_NODES the nodes), and a wrong
password is an outage the failure mode handles, not a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.rpc import code_pb2
from mimir_edge.core.errors import StoreUnavailable
from mimir_edge.core.limits import MIMIR_DEFAULTS
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.localstack.redis import RedisCluster
from mimir_edge.localstack.rls import RlsProcess
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import RedisConfig, connect, connect_sync

from tests.integration.test_admin_api import check

PASSWORD = "cluster-secret"
DEFAULTS = BucketLimits.from_tenant_limits(MIMIR_DEFAULTS)


@pytest.fixture(scope="module")
def auth_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path_factory.mktemp("auth-cluster"), password=PASSWORD).start()
    yield cluster
    cluster.stop()


def config(cluster: RedisCluster, password: str) -> RedisConfig:
    return RedisConfig(
        url=f"redis://:{password}@unused:0/0",
        cluster_nodes=RedisConfig.parse_cluster_nodes(cluster.startup_nodes),
        timeout_s=2.0,
    )


async def test_cluster_clients_authenticate_with_the_url_credentials(auth_cluster: RedisCluster) -> None:
    good = config(auth_cluster, PASSWORD)
    redis = connect(good)
    store = BucketStore.for_config(good, redis)
    decision = await store.decide("auth-tenant", requests=1, items=10, defaults=DEFAULTS)
    assert decision.allowed
    await store.close()
    await redis.aclose()
    sync = connect_sync(good)
    assert sync.ping() is True
    sync.close()

    bad = config(auth_cluster, "wrong")
    redis = connect(bad)
    store = BucketStore.for_config(bad, redis)
    with pytest.raises(StoreUnavailable):
        await store.decide("auth-tenant", requests=1, items=10, defaults=DEFAULTS)
    await store.close()
    await redis.aclose()


def test_rls_and_overrides_sync_on_an_auth_cluster(auth_cluster: RedisCluster, tmp_path: Path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("overrides:\n  tiny:\n    ingestion_rate: 1\n    ingestion_burst_size: 10\n")
    env = {"REDIS_URL": f"redis://:{PASSWORD}@unused:0/0", "REDIS_CLUSTER_NODES": auth_cluster.startup_nodes}
    sync = subprocess.run(
        [
            str(Path(sys.executable).parent / "mimir-overrides-sync"),
            "--source",
            "file",
            "--path",
            str(overrides),
            "--once",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sync.returncode == 0, sync.stdout + sync.stderr
    rls = RlsProcess(tmp_path, env=env).start(timeout_s=30)
    try:
        assert check(rls.grpc_addr, "tiny") == code_pb2.RESOURCE_EXHAUSTED  # 50 samples > burst 10
        assert check(rls.grpc_addr, "roomy") == code_pb2.OK
    finally:
        rls.stop()
