"""The counting differential at scale: a million generated and mutated bodies through both counters.

    python -m bench.counting_fuzz [--cases 1000000] [--seed 17]

Each body (tests/wire_bodies.py: valid RW1/RW2 requests, wrong wire types, truncations, over-long
varints, nested groups, huge lengths...) is counted by the compiled walker and by upb; the run
prints how many gave equal counts, how many were refused by both with the same error class, and
every mismatch (with its body in hex), and writes the figures to bench/results/counting_fuzz.json.
Not part of `make bench`: it takes about half an hour on one core.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter as Tally
from pathlib import Path

from mimir_edge.core.remote_write import Counter, Protocol, WriteCounts, count_decompressed

from tests.wire_bodies import Generator

RESULTS = Path(__file__).resolve().parent / "results" / "counting_fuzz.json"


def outcome(raw: bytes, protocol: Protocol, counter: Counter) -> WriteCounts | str:
    """The counts, or the class of the error raised (any class: a crash must show as a mismatch)."""
    try:
        return count_decompressed(raw, protocol, counter)
    except Exception as exc:
        return type(exc).__name__


def run(cases: int, seed: int) -> dict[str, object]:
    generator = Generator(random.Random(seed))
    tally: Tally[str] = Tally()
    mismatches: list[dict[str, object]] = []
    body_bytes = 0
    started = time.perf_counter()
    for i in range(cases):
        number, raw = generator.body()
        protocol = Protocol.RW1 if number == 1 else Protocol.RW2
        body_bytes += len(raw)
        native = outcome(raw, protocol, Counter.NATIVE)
        upb = outcome(raw, protocol, Counter.UPB)
        if native == upb:
            tally["equal counts" if isinstance(native, WriteCounts) else f"both refused ({native})"] += 1
        else:
            tally["mismatch"] += 1
            if len(mismatches) < 20:
                mismatches.append(
                    {"case": i, "protocol": number, "native": str(native), "upb": str(upb), "hex": raw.hex()}
                )
                print(f"MISMATCH case {i}: native={native} upb={upb} body={raw[:64].hex()}...", file=sys.stderr)
        if (i + 1) % 100_000 == 0:
            print(f"{i + 1:,} cases, {time.perf_counter() - started:.0f} s: {dict(tally)}", file=sys.stderr, flush=True)
    return {
        "cases": cases,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "body_bytes": body_bytes,
        "outcomes": dict(tally),
        "mismatches": mismatches,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    result = run(args.cases, args.seed)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "mismatches"}, indent=2))
    print(f"mismatches: {result['outcomes'].get('mismatch', 0)}")  # type: ignore[attr-defined]
    return 1 if result["mismatches"] else 0


if __name__ == "__main__":
    sys.exit(main())
