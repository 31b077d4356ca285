"""Shared fixtures: real redis-server processes on free 127.0.0.1 ports, stopped by PID.

A missing program fails the test with how to install it; nothing is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest
import structlog
import uvloop
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.localstack.redis import RedisCluster, RedisServer
from mimir_edge.store.client import Redis, RedisConfig, connect


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Tests marked `both_loops` run on asyncio's loop and on uvloop (what the RLS uses)."""
    if item.get_closest_marker("both_loops") is None:
        return {"asyncio": asyncio.new_event_loop}
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """A test that runs an entry point in-process configures logging for the whole process: undo
    it, so the next test's loggers are not bound to this test's configuration."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    except MissingProgram as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    try:
        cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    except MissingProgram as exc:
        pytest.fail(str(exc))
    yield cluster
    cluster.stop()


# The tests' own Redis clients wait this long for an answer. No test is about these timeouts; a
# short one only fails a test when a loaded host is slow to accept a connection (seen at 2 s, with
# 20 clients connecting to a Cluster while both cores were busy).
CLIENT_TIMEOUT_S = 30.0


@pytest.fixture(params=["standalone", "cluster"])
def redis_config(request: pytest.FixtureRequest) -> RedisConfig:
    """The same test against a standalone server and against a 6-node Cluster."""
    if request.param == "standalone":
        server: RedisServer = request.getfixturevalue("redis_server")
        return RedisConfig(url=server.url, timeout_s=CLIENT_TIMEOUT_S)
    cluster: RedisCluster = request.getfixturevalue("redis_cluster")
    return RedisConfig(cluster_nodes=RedisConfig.parse_cluster_nodes(cluster.startup_nodes), timeout_s=CLIENT_TIMEOUT_S)


@pytest.fixture
async def redis(redis_config: RedisConfig) -> AsyncIterator[Redis]:
    client = connect(redis_config)
    yield client
    await client.aclose()


@pytest.fixture
def artifacts_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, for tests that write the global keys (defaults, index)."""
    try:
        server = RedisServer(tmp_path / "fresh-redis").start()
    except MissingProgram as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()
