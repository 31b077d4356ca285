"""Bounded waiting for something that happens in another process (or another task)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], *, timeout_s: float = 30.0, interval_s: float = 0.02, what: str = "") -> T:
    """Call `check` until it returns something truthy; fail after `timeout_s` saying `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check}")
        time.sleep(interval_s)


async def wait_for_async(
    check: Callable[[], Awaitable[T]], *, timeout_s: float = 30.0, interval_s: float = 0.02, what: str = ""
) -> T:
    """`wait_for` inside an event loop: await `check` until truthy, sleeping without blocking the loop."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what or check}")
        await asyncio.sleep(interval_s)
