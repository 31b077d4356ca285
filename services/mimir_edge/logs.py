"""structlog setup, once per process: JSON lines (or console) on stderr."""

from __future__ import annotations

import faulthandler
import logging
import sys
import time

import structlog


class _CurrentStderr:
    """sys.stderr as it is when a line is written, not when logging was configured: loggers are
    cached on first use, and a stream replaced since (a test's capture) must not be written to."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def report_native_crashes() -> None:
    """A native crash (a segfault in an extension module, an abort) ends the process past any
    Python handler: write every thread's Python stack to the process's stderr first, the
    container's log, so it does not end without a word."""
    stream = sys.__stderr__
    if stream is not None and not faulthandler.is_enabled():
        faulthandler.enable(file=stream)


def configure(log_format: str = "json", level: str = "info") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def add_log_flags(parser, env) -> None:  # type: ignore[no-untyped-def]
    from mimir_edge.settings import env_flag

    env_flag(parser, "LOG_FORMAT", env, default="json", choices=("json", "console"), help="log line format")
    env_flag(
        parser,
        "LOG_LEVEL",
        env,
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="lowest level logged",
    )


class Sampler:
    """At most one log line per key per `interval_s`, for events that can repeat thousands of
    times a second (a tenant denied on every request). `admit(key)` answers how many lines were
    skipped since the last one written, or None to skip this one. Keys are bounded: past
    `max_keys` the oldest half is forgotten (so a forgotten key logs again at once)."""

    def __init__(self, interval_s: float = 10.0, max_keys: int = 10_000):
        self._interval = interval_s
        self._max_keys = max_keys
        self._last: dict[object, tuple[float, int]] = {}

    def admit(self, key: object, now: float | None = None) -> int | None:
        t = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and t - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self._max_keys:
            for old in list(self._last)[: self._max_keys // 2]:
                del self._last[old]
        self._last[key] = (t, 0)
        return last[1] if last is not None else 0
