"""The repository stands on its own: no file points outside it or names documents a user who
cloned it does not have."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What a clone does not have, and the wording that assumed it. Say what the thing is instead:
#: "the original deployment plan", "the Go reference implementation", "machines without a Docker engine".
FORBIDDEN = re.compile(
    # (spaces as [ ] so that grepping the repository for the phrases does not find this file)
    r"\.\./shared|\bthe[ ]seed\b|\bseed's\b|seed-deployment|these[ ]development[ ]machines"
    r"|(?-i:ARCHITECTURE\.md|PROTOCOL-FACTS)",
    flags=re.IGNORECASE,
)


def tracked_files() -> list[Path]:
    run = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60)
    return [ROOT / name for name in run.stdout.decode().split("\0") if name]


def test_the_scan_finds_the_phrases() -> None:
    assert FORBIDDEN.search("see ../" + "shared/docs/x.md")
    assert FORBIDDEN.search("The " + "seed's phases")
    assert FORBIDDEN.search("as in the " + "seed")
    assert FORBIDDEN.search("on these " + "development machines")
    assert not FORBIDDEN.search("docs/architecture.md, --seed 42, SEED = 11, murmur hash (seed 0)")


def test_no_tracked_file_refers_outside_the_repository() -> None:
    files = tracked_files()
    assert ROOT / "README.md" in files
    found = []
    for path in files:
        if path == Path(__file__).resolve() or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:  # binary
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found == []
