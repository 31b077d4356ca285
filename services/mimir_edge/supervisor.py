"""The long-lived tasks of one process, watched: the first that fails ends the process non-zero.

A background loop that dies quietly leaves a process that looks alive and no longer does its job
(a sync that never writes again, an RLS whose heartbeat or stats flush stopped), and Kubernetes
only restarts what exits. So each task handles the errors it expects itself (Redis being away
follows the failure mode and never reaches here); anything else is a bug: it is logged with its
traceback at once, the process shuts down as on SIGTERM, and exits with EXIT_CRASHED so the pod
is restarted (the readiness probe and Envoy's outlier detection take it out meanwhile).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

#: sysexits.h EX_SOFTWARE, "internal software error": a task failed, not a bad flag (2) or an
#: unreachable dependency at start (1).
EXIT_CRASHED = 70
#: How long aclose() waits for cancelled tasks before cancelling the ones still running again:
#: longer than any clean-up a task does on its way out (each bounded by its own Redis timeout).
RECANCEL_S = 5.0


class Supervisor:
    """Start tasks with `start`, `await wait(stop)`, shut down, `await aclose()`, exit `exit_code`."""

    def __init__(self, log: structlog.typing.FilteringBoundLogger):
        self._log = log
        self._tasks: dict[asyncio.Task[object], bool] = {}
        self._closing = False
        self._failed = asyncio.Event()
        #: The name of the first task that failed, if any.
        self.failed: str | None = None

    def start(self, name: str, coro: Coroutine[Any, Any, object], *, may_finish: bool = False) -> None:
        """Run `coro` as task `name`. It must run until cancelled, unless `may_finish`
        (a one-shot job): a task that returns early has stopped doing its job, a failure too."""
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[task] = may_finish
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        may_finish = self._tasks[task]
        if task.cancelled():
            if not self._closing:  # nobody but aclose() cancels these: say so rather than hang on
                self._fail(task, "task cancelled")
            return
        error = task.exception()  # retrieved here, so asyncio never reports it "never retrieved"
        if error is not None:
            self._fail(task, "task failed", error)
        elif not may_finish and not self._closing:
            self._fail(task, "task ended")

    def _fail(self, task: asyncio.Task[object], event: str, error: BaseException | None = None) -> None:
        if error is not None:
            self._log.error(event, task=task.get_name(), error=f"{type(error).__name__}: {error}", exc_info=error)
        else:
            self._log.error(event, task=task.get_name())
        if self.failed is None:
            self.failed = task.get_name()
        self._failed.set()

    async def wait(self, stop: asyncio.Event) -> None:
        """Until `stop` is set (SIGTERM, SIGINT) or a task failed, whichever comes first."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._failed.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def aclose(self) -> None:
        """Cancel every task and wait for them; one failing on its way out counts as failed.

        A cancellation can be lost: on Python 3.11, `asyncio.wait_for` (which redis-py awaits every
        command's write with) swallows one that lands as its inner future completes, and the task
        carries on into its next loop (see `mimir_edge.cancellation`). The loops of these tasks
        pause with `cancellation.sleep`, which ends such a task at its next pause. As a backstop
        for any other place, a task still running after RECANCEL_S is cancelled again, until it
        ends: shutting down must not hang on a lost cancellation."""
        self._closing = True
        pending: set[asyncio.Task[object]] = set(self._tasks)
        for task in pending:
            task.cancel()
        while pending:
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
            for task in pending:
                self._log.warning(
                    "task still running after cancel: cancelling again", task=task.get_name(), where=where(task)
                )
                task.cancel()

    @property
    def exit_code(self) -> int:
        return EXIT_CRASHED if self.failed is not None else 0


def where(task: asyncio.Task[object]) -> str:
    """Where a suspended task waits, outermost call first ("heartbeat:212 > sleep:649"): what to
    look at when one does not end on cancel. (`Task.get_stack()` shows only the outermost frame
    of a suspended coroutine; this follows what each frame awaits.)"""
    parts: list[str] = []
    awaiting: Any = task.get_coro()
    while awaiting is not None and len(parts) < 16:
        frame = getattr(awaiting, "cr_frame", None) or getattr(awaiting, "ag_frame", None)
        if frame is None:
            break
        parts.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        awaiting = getattr(awaiting, "cr_await", None) or getattr(awaiting, "ag_await", None)
    return " > ".join(parts)
