"""Cancellation that a library swallowed, honoured at the next pause of a long-running loop.

On Python 3.11, `asyncio.wait_for` loses the cancellation of the task awaiting it when its inner
future completes in the same loop turn (CPython gh-86296, fixed in 3.12 by rewriting wait_for on
`asyncio.timeout`). redis-py awaits every command's socket write with `wait_for(…, socket_timeout)`,
and that write almost always completes at once: a SIGTERM that lands while a heartbeat, stats
flush or limits refresh is writing to Redis is lost, the task goes on to its next sleep, and
shutting down waits for the supervisor to cancel it again. The lost cancellation is still counted
on the task (`Task.cancelling()`: nothing called `uncancel()`), so a loop that checks before it
sleeps ends at once instead.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise CancelledError if this task was cancelled and something swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def sleep(seconds: float) -> None:
    """`asyncio.sleep` for the loops of long-running tasks: first honours a lost cancellation."""
    raise_if_cancelled()
    await asyncio.sleep(seconds)
