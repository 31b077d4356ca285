"""`mimir-rls`: the Rate Limit Service entry point."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import structlog

from mimir_edge import logs
from mimir_edge.rls.server import StartupError, serve
from mimir_edge.rls.settings import parse_settings


def main(argv: Sequence[str] | None = None) -> int:
    logs.report_native_crashes()
    settings = parse_settings(argv)
    logs.configure(settings.log_format, settings.log_level)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    try:
        with runner:
            return runner.run(serve(settings))
    except StartupError as exc:
        structlog.get_logger("rls").error("rls failed to start", error=str(exc))
        print(f"mimir-rls: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
