"""`mimir-rls`: the Rate Limit Service entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mimir_edge.rls.settings import parse_settings


def main(argv: Sequence[str] | None = None) -> int:
    parse_settings(argv)
    print("mimir-rls: settings are valid; the gRPC server is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
