"""A bug in a long-running task ends the real process non-zero with its traceback in the log, so
Kubernetes restarts it; Redis going away does not; SIGTERM still exits 0.

The fault is injected by a `python -c` wrapper that replaces one function of the running code
with one that raises after some healthy calls, then calls the entry point's real `main()`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2 as common
from envoy.service.ratelimit.v3 import rls_pb2 as rls_pb
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from mimir_edge.localstack.processes import Process, free_port
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.rls import HOST, grpc_serving
from mimir_edge.localstack.sync import SyncProcess, http_get
from mimir_edge.supervisor import EXIT_CRASHED

from tests.fake_kube_api import FakeKubeApi
from tests.stack import Stack
from tests.waiting import wait_for

#: Replaces `{module}.{cls}.{method}` (a coroutine function, or a plain one: `{async_}` and
#: `{await_}` empty) with one that raises after `{healthy}` calls, then runs the entry point as
#: its console script would.
INJECT = """
import sys
import {module} as target

original = target.{cls}.{method}
calls = 0

{async_}def broken(*args, **kwargs):
    global calls
    calls += 1
    if calls > {healthy}:
        raise RuntimeError("injected fault in {method}")
    return {await_}original(*args, **kwargs)

target.{cls}.{method} = broken
from {entry} import main
sys.exit(main(sys.argv[1:]))
"""
EXIT_TIMEOUT_S = 60.0


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def run_injected(
    processes: list[Process],
    workdir: Path,
    entry: str,
    target: str,
    healthy: int,
    args: list[str],
    env: dict[str, str],
    *,
    coroutine: bool = True,
) -> tuple[int, list[dict[str, object]], str]:
    """Start the wrapped entry point, wait for it to exit on its own; (code, JSON log lines, log)."""
    module, cls, method = target.rsplit(".", 2)
    code = INJECT.format(
        module=module,
        cls=cls,
        method=method,
        healthy=healthy,
        entry=entry,
        async_="async " if coroutine else "",
        await_="await " if coroutine else "",
    )
    process = Process(f"{entry}:{method}", [sys.executable, "-c", code, *args], workdir / f"{method}.log")
    processes.append(process)
    process.start(lambda: True, env={**os.environ, **env})
    assert process.popen is not None
    try:
        returncode = process.popen.wait(EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"still running {EXIT_TIMEOUT_S} s after the fault was injected; log: {process.tail()}"
        ) from None
    text = process.log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return returncode, lines, text


def events(lines: list[dict[str, object]]) -> list[object]:
    return [line.get("event") for line in lines]


def rls_env(redis_url: str) -> dict[str, str]:
    return {
        "GRPC_ADDR": f"{HOST}:{free_port()}",
        "ADMIN_ADDR": f"{HOST}:{free_port()}",
        "METRICS_ADDR": f"{HOST}:{free_port()}",
        "AUTHZ_HTTP_ADDR": f"{HOST}:{free_port()}",
        "REDIS_URL": redis_url,
        "LOG_FORMAT": "json",
    }


@pytest.mark.parametrize(
    ("target", "healthy", "tasks"),
    [
        ("mimir_edge.rls.registry.ReplicaRegistry.run_once", 1, {"heartbeat"}),
        ("mimir_edge.admin.stats.StatsRecorder.flush", 0, {"stats-flush"}),
        # Both the periodic refresh and the change follower call refresh(): whichever is first.
        ("mimir_edge.rls.defaults.DefaultsCache.refresh", 2, {"defaults-refresh", "defaults-follow"}),
    ],
)
def test_rls_exits_non_zero_when_a_background_task_fails(
    processes: list[Process], tmp_path: Path, redis_server: RedisServer, target: str, healthy: int, tasks: set[str]
) -> None:
    returncode, lines, text = run_injected(
        processes, tmp_path, "mimir_edge.rls.main", target, healthy, [], rls_env(redis_server.url)
    )
    assert returncode == EXIT_CRASHED, text[-3000:]
    [failure] = [line for line in lines if line.get("event") == "task failed"]
    assert failure["task"] in tasks and failure["level"] == "error"
    assert "Traceback (most recent call last)" in str(failure["exception"])
    assert f"RuntimeError: injected fault in {target.rsplit('.', 1)[1]}" in str(failure["exception"])
    # It had started; it drained like on SIGTERM, then said why it stops.
    seen = events(lines)
    assert seen.index("rls started") < seen.index("task failed") < seen.index("rls stopped")
    assert lines[-1]["event"] == "rls stopped" and lines[-1]["exit_code"] == EXIT_CRASHED


@pytest.mark.parametrize(
    ("target", "task"),
    [
        ("mimir_edge.sync.service.SyncService.handle", "follow-source"),
        ("mimir_edge.sync.service.SyncService.retry_pending", "retry-pending"),
    ],
)
def test_sync_exits_non_zero_when_a_task_fails(
    processes: list[Process], tmp_path: Path, fresh_redis: RedisServer, target: str, task: str
) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("overrides:\n  a:\n    ingestion_rate: 100\n")
    args = ["--source", "file", "--path", str(path), "--redis-url", fresh_redis.url]
    args += ["--interval", "0.05", "--http-addr", f"{HOST}:{free_port()}", "--log-format", "json"]
    returncode, lines, text = run_injected(processes, tmp_path, "mimir_edge.sync.main", target, 0, args, {})
    assert returncode == EXIT_CRASHED, text[-3000:]
    [failure] = [line for line in lines if line.get("event") == "task failed"]
    assert failure["task"] == task and failure["level"] == "error"
    assert "Traceback (most recent call last)" in str(failure["exception"])
    assert f"RuntimeError: injected fault in {target.rsplit('.', 1)[1]}" in str(failure["exception"])
    seen = events(lines)
    assert seen.index("overrides-sync started") < seen.index("task failed") < seen.index("overrides-sync stopped")
    assert lines[-1]["exit_code"] == EXIT_CRASHED and lines[-1]["failed_task"] == task


def test_sync_exits_non_zero_when_the_configmap_watch_thread_dies(
    processes: list[Process], tmp_path: Path, fresh_redis: RedisServer
) -> None:
    """The watch runs in a thread; an error it does not retry (a bug, a 403) ended the thread and
    left the sync waiting for events forever."""
    kubeconfig = tmp_path / "kubeconfig"
    with FakeKubeApi() as kube:
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: {kube.url}\n"
            "users:\n- name: fake\n  user: {}\n"
            "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
            "current-context: fake\n"
        )
        args = ["--source", "kubernetes", "--kubeconfig", str(kubeconfig), "--redis-url", fresh_redis.url]
        args += ["--http-addr", f"{HOST}:{free_port()}", "--log-format", "json"]
        returncode, lines, text = run_injected(
            processes,
            tmp_path,
            "mimir_edge.sync.main",
            "mimir_edge.sync.kubernetes.ConfigMapSource._list",
            0,
            args,
            {"NO_PROXY": "*", "no_proxy": "*"},
            coroutine=False,
        )
    assert returncode == EXIT_CRASHED, text[-3000:]
    [failure] = [line for line in lines if line.get("event") == "task failed"]
    assert failure["task"] == "follow-source"
    assert "RuntimeError: injected fault in _list" in str(failure["exception"])
    assert "in _run" in str(failure["exception"])  # the thread's own frames are in the traceback


def metric(text: str, name: str) -> float:
    """The value of one sample line `name value` (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_rls_rides_out_a_redis_outage_then_sigterm_exits_zero(tmp_path: Path) -> None:
    """Redis away is expected: the heartbeat, defaults follower and stats flush keep handling it."""
    redis = RedisServer(tmp_path / "redis").start()
    stack = Stack(tmp_path)
    try:
        rls = stack.add_rls({"REDIS_URL": redis.url, "FAILURE_MODE": "local"})
        redis.kill()
        entry = common.RateLimitDescriptor.Entry(key="tenant", value="t")
        request = rls_pb.RateLimitRequest(descriptors=[common.RateLimitDescriptor(entries=[entry])])

        def flush_errors() -> float:
            # Decisions give the stats something to flush; each failed flush is counted.
            with grpc.insecure_channel(rls.grpc_addr) as channel:
                rls_grpc.RateLimitServiceStub(channel).ShouldRateLimit(request, timeout=5)
            return metric(http_get(rls.metrics_url)[1], 'rls_stats_flushes_total{result="error"}')

        # Three failed flushes: >= 3 s of outage, past a heartbeat (2 s) and several
        # reconnections of the defaults follower (0.5 s apart).
        wait_for(lambda: flush_errors() >= 3, timeout_s=30, what="three failed stats flushes")
        assert rls.process is not None and rls.process.popen is not None
        assert rls.process.running(), rls.process.tail()
        assert grpc_serving(rls.grpc_addr)
        rls.process.terminate()
        assert rls.process.popen.wait(timeout=30) == 0, rls.process.tail()
        assert "task failed" not in rls.process.log_path.read_text()
    finally:
        stack.close()
        redis.stop()


def test_sync_rides_out_a_redis_outage_then_sigterm_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("overrides:\n  a:\n    ingestion_rate: 100\n")
    sync = SyncProcess(tmp_path, ["--source", "file", "--path", str(path), "--interval", "0.05"])
    sync.args += ["--redis-url", f"redis://{HOST}:{free_port()}/0"]  # nothing listens there
    try:
        sync.start()
        # The kept document is retried every second, each attempt counted.
        wait_for(
            lambda: metric(sync.metrics(), 'overrides_sync_errors_total{kind="redis"}') >= 3,
            timeout_s=30,
            what="three failed writes",
        )
        assert sync.process is not None and sync.process.popen is not None
        assert sync.process.running(), sync.process.tail()
        sync.process.terminate()
        assert sync.process.popen.wait(timeout=30) == 0, sync.process.tail()
        lines = [json.loads(line) for line in sync.log_lines() if line.startswith("{")]
        assert lines[-1]["event"] == "overrides-sync stopped" and lines[-1]["exit_code"] == 0
        assert "task failed" not in events(lines)
    finally:
        sync.stop()


def test_a_native_crash_leaves_every_threads_stack_in_the_log(tmp_path: Path) -> None:
    """A segfault in an extension (grpc, uvloop, hiredis, the counting walker) ends the process at
    once, past the supervisor: faulthandler still writes where each thread was."""
    redis = RedisServer(tmp_path / "redis").start()
    stack = Stack(tmp_path)
    path = tmp_path / "overrides.yaml"
    path.write_text("overrides:\n  a:\n    ingestion_rate: 100\n")
    sync = SyncProcess(tmp_path, ["--source", "file", "--path", str(path), "--redis-url", redis.url])
    try:
        rls = stack.add_rls({"REDIS_URL": redis.url})
        sync.start()
        for process in (rls.process, sync.process):
            assert process is not None and process.popen is not None
            process.stopping = True  # the crash below is this test's doing
            process.popen.send_signal(signal.SIGSEGV)
            assert process.popen.wait(timeout=30) == -signal.SIGSEGV
            log = process.log_path.read_text()
            assert "Fatal Python error: Segmentation fault" in log, process.tail()
            assert "most recent call first" in log, process.tail()
    finally:
        sync.stop()
        stack.close()
        redis.stop()
