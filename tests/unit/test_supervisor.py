"""The supervisor of a process's long-lived tasks: a failure is logged with its traceback and
makes the exit code non-zero; a stop signal ends everything with exit code 0."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest
import structlog
from mimir_edge import cancellation
from mimir_edge.supervisor import EXIT_CRASHED, Supervisor, where
from structlog.testing import capture_logs

log = structlog.get_logger("test")


async def forever() -> None:
    await asyncio.Event().wait()


async def fails_after(ready: asyncio.Event) -> None:
    await ready.wait()
    raise ValueError("bug in a loop")


async def test_the_first_failure_ends_the_wait_and_is_logged_with_its_traceback() -> None:
    go = asyncio.Event()
    tasks = Supervisor(log)
    with capture_logs() as logs:
        tasks.start("steady", forever())
        tasks.start("buggy", fails_after(go))
        go.set()
        await asyncio.wait_for(tasks.wait(asyncio.Event()), timeout=10)
        await tasks.aclose()
    assert tasks.failed == "buggy" and tasks.exit_code == EXIT_CRASHED
    [entry] = logs
    assert entry["event"] == "task failed" and entry["task"] == "buggy" and entry["log_level"] == "error"
    assert entry["error"] == "ValueError: bug in a loop"
    error = entry["exc_info"]
    assert isinstance(error, ValueError) and error.__traceback__ is not None


async def test_the_traceback_reaches_the_rendered_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    from mimir_edge import logs

    logs.configure("json", "info")
    try:
        tasks = Supervisor(structlog.get_logger("test"))
        go = asyncio.Event()
        go.set()
        tasks.start("buggy", fails_after(go))
        await asyncio.wait_for(tasks.wait(asyncio.Event()), timeout=10)
        await tasks.aclose()
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in fails_after" in err
    assert "ValueError: bug in a loop" in err


async def test_stop_cancels_every_task_and_exits_zero() -> None:
    stop = asyncio.Event()
    cancelled: list[str] = []

    async def until_cancelled(name: str) -> None:
        try:
            await forever()
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    tasks = Supervisor(log)
    with capture_logs() as logs:
        tasks.start("a", until_cancelled("a"))
        tasks.start("b", until_cancelled("b"))
        await asyncio.sleep(0)  # both running
        stop.set()
        await asyncio.wait_for(tasks.wait(stop), timeout=10)
        await tasks.aclose()
    assert sorted(cancelled) == ["a", "b"]
    assert tasks.failed is None and tasks.exit_code == 0 and logs == []


async def test_a_loop_that_returns_has_stopped_doing_its_job() -> None:
    async def returns() -> None:
        return None

    tasks = Supervisor(log)
    with capture_logs() as logs:
        tasks.start("one-shot", returns(), may_finish=True)
        tasks.start("loop", returns())
        await asyncio.wait_for(tasks.wait(asyncio.Event()), timeout=10)
        await tasks.aclose()
    assert tasks.failed == "loop" and tasks.exit_code == EXIT_CRASHED
    assert [(e["event"], e["task"]) for e in logs] == [("task ended", "loop")]


async def test_a_failure_while_shutting_down_counts() -> None:
    async def fails_on_cancel() -> None:
        try:
            await forever()
        finally:
            raise RuntimeError("final flush broke")

    stop = asyncio.Event()
    tasks = Supervisor(log)
    with capture_logs() as logs:
        tasks.start("flusher", fails_on_cancel())
        await asyncio.sleep(0)
        stop.set()
        await tasks.wait(stop)
        await tasks.aclose()
    assert tasks.failed == "flusher" and tasks.exit_code == EXIT_CRASHED
    assert [(e["event"], e["error"]) for e in logs] == [("task failed", "RuntimeError: final flush broke")]


async def test_a_task_cancelled_by_someone_else_is_reported() -> None:
    tasks = Supervisor(log)
    with capture_logs() as logs:
        tasks.start("victim", forever())
        await asyncio.sleep(0)
        [victim] = [t for t in asyncio.all_tasks() if t.get_name() == "victim"]
        victim.cancel()
        await asyncio.wait_for(tasks.wait(asyncio.Event()), timeout=10)
        await tasks.aclose()
    assert tasks.failed == "victim" and [e["event"] for e in logs] == ["task cancelled"]


async def test_a_task_that_loses_its_cancellation_is_cancelled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen under load: the heartbeat's cancellation landed as its Redis call's timeout, the loop
    went on sleeping, and the process never exited. aclose() must not wait on it forever."""
    monkeypatch.setattr("mimir_edge.supervisor.RECANCEL_S", 0.05, raising=False)
    lost = asyncio.Event()

    async def swallows_the_first_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # what a lost cancellation looks like from outside
            lost.set()
        await asyncio.Event().wait()

    with capture_logs() as logs:
        tasks = Supervisor(log)
        tasks.start("heartbeat", swallows_the_first_cancel())
        await asyncio.sleep(0)
        await asyncio.wait_for(tasks.aclose(), timeout=10)
    assert lost.is_set()
    assert [e["task"] for e in logs if e["event"] == "task still running after cancel: cancelling again"] == [
        "heartbeat"
    ]
    assert tasks.exit_code == 0


def test_the_recancel_warning_says_where_the_task_waits() -> None:
    async def outer() -> None:
        await inner()

    async def inner() -> None:
        await asyncio.Event().wait()

    async def main() -> str:
        task = asyncio.get_running_loop().create_task(outer())
        await asyncio.sleep(0)
        try:
            return where(task)  # type: ignore[arg-type]
        finally:
            task.cancel()

    assert re.fullmatch(r"outer:\d+ > inner:\d+ > wait:\d+", asyncio.run(main()))


async def test_a_loop_whose_redis_write_swallowed_the_cancellation_ends_at_its_next_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What failed a CI run: SIGTERM's cancellation landed while redis-py awaited a socket write
    with `asyncio.wait_for`, which on Python 3.11 returns the write's result instead of raising
    (CPython gh-86296), and the heartbeat went on to sleep: the RLS exited 5 s late, after the
    supervisor's second cancel. Its loops pause with `cancellation.sleep`, which ends them."""
    monkeypatch.setattr("mimir_edge.supervisor.RECANCEL_S", 3600.0)
    swallowed: list[bool] = []
    writing = asyncio.Event()

    async def heartbeat() -> None:
        while True:
            write = asyncio.ensure_future(asyncio.sleep(0))  # a socket write: done at once
            await write
            writing.set()  # the shutdown's cancel lands while wait_for waits on the done write
            await asyncio.wait_for(write, timeout=1.0)
            swallowed.append(True)  # reached only where wait_for lost the cancellation
            await cancellation.sleep(3600)

    with capture_logs() as logs:
        tasks = Supervisor(log)
        tasks.start("heartbeat", heartbeat())
        await writing.wait()
        await asyncio.wait_for(tasks.aclose(), timeout=10)
    if sys.version_info < (3, 12):
        assert swallowed == [True], "the Python this runs on no longer loses the cancellation"
    assert [e for e in logs if e["event"] == "task still running after cancel: cancelling again"] == []
    assert tasks.exit_code == 0
