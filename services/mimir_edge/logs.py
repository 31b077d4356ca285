"""structlog setup, once per process: JSON lines (or console) on stderr."""

from __future__ import annotations

import logging
import sys

import structlog


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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
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
