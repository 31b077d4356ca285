"""`make loadtest`: start the local stack (`mimir-edge up`'s processes, with the limits of
loadtest/overrides.yaml), run locust headless against it for a bounded time, write the CSV,
JSON and HTML reports to loadtest/results/, stop everything, and exit with locust's status
(non-zero if any request failed; expected 429s are not failures)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from mimir_edge.localstack.processes import PORT_SPAN, free_port_block
from mimir_edge.localstack.up import LocalStack, UpOptions

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=20, help="how long locust runs (default %(default)s)")
    parser.add_argument("--users", type=int, default=20, help="concurrent senders (default %(default)s)")
    parser.add_argument("--replicas", type=int, default=2, help="RLS replicas (default %(default)s)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="report directory")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    prefix = args.out / "loadtest"
    with tempfile.TemporaryDirectory(prefix="mimir-edge-loadtest-") as state:
        stack = LocalStack(
            UpOptions(
                state_dir=Path(state),
                replicas=args.replicas,
                port_base=free_port_block(PORT_SPAN),
                overrides=HERE / "overrides.yaml",
                traffic_seconds=0,
                background_traffic=False,
            )
        )
        stack.start()
        try:
            host = stack.push_url.removesuffix("/api/v1/push")
            print(f"loadtest: {args.users} users for {args.seconds} s against {host} ({args.replicas} RLS replicas)")
            result = subprocess.run(
                [
                    str(Path(sys.executable).parent / "locust"),
                    "-f",
                    str(HERE / "locustfile.py"),
                    "--headless",
                    "-u",
                    str(args.users),
                    "-r",
                    str(args.users),
                    "-t",
                    f"{args.seconds}s",
                    "--host",
                    host,
                    "--csv",
                    str(prefix),
                    "--json-file",
                    str(prefix),
                    "--html",
                    f"{prefix}.html",
                    "--only-summary",
                    "--stop-timeout",
                    "5",
                ],
                timeout=args.seconds + 120,
                check=False,
            )
        finally:
            stack.stop()
    stats = json.loads(Path(f"{prefix}.json").read_text())
    sent = sum(s["num_requests"] for s in stats)
    failed = sum(s["num_failures"] for s in stats)
    limited = sum(s["num_requests"] for s in stats if s["name"].startswith("LIMITED"))
    print(f"\nloadtest: {sent} requests, {limited} limited (429, expected), {failed} failures")
    print(f"reports: {prefix}_stats.csv, {prefix}.json, {prefix}.html")
    if failed:
        print("loadtest FAILED: unexpected answers (see the reports)", file=sys.stderr)
    if limited == 0:
        print("loadtest FAILED: no tenant was limited; loadtest/overrides.yaml was not enforced", file=sys.stderr)
        return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
