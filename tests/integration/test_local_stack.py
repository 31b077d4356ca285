"""`mimir-edge up` (what `make demo` runs) as a newcomer runs it: the stack comes up, the traffic
generator shows limited and unlimited tenants, the Admin UI and the push endpoint answer, Ctrl-C
stops everything and leaves no process behind; `mimir-edge down` cleans up after a crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mimir_edge.localstack.processes import free_port_block, port_open
from mimir_edge.localstack.traffic import RW1_HEADERS, Shape, compress, rw1_request
from mimir_edge.localstack.up import process_start_time

from tests.stack import post
from tests.waiting import wait_for

CLI = str(Path(sys.executable).parent / "mimir-edge")


class Up:
    """`mimir-edge up` in the background, its output collected line by line."""

    def __init__(self, state_dir: Path, *extra: str):
        self.state_dir = state_dir
        self.base = free_port_block(40)
        self.lines: list[str] = []
        self.popen = subprocess.Popen(
            [CLI, "up", "--port-base", str(self.base), "--state-dir", str(state_dir), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout_s: float = 90) -> None:
        wait_for(lambda: text in self.output or self.popen.poll() is not None, timeout_s=timeout_s, what=text)
        assert text in self.output, f"mimir-edge up exited {self.popen.poll()}:\n{self.output}"

    def recorded(self) -> list[dict[str, object]]:
        return list(json.loads((self.state_dir / "state.json").read_text())["processes"])

    def url(self, name: str) -> str:
        line = next(line for line in self.lines if line.strip().startswith(name))
        return next(word for word in line.split() if word.startswith("http://"))


def alive(entry: dict[str, object]) -> bool:
    """The recorded process still exists (same PID and same start time)."""
    return process_start_time(int(str(entry["pid"]))) == entry["start_time"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Up]:
    up = Up(tmp_path / "state", "--traffic-seconds", "5")
    try:
        yield up
    finally:
        if up.popen.poll() is None:
            up.popen.kill()
            up.popen.wait(10)
        subprocess.run([CLI, "down", "--state-dir", str(up.state_dir)], check=False, timeout=60)
        up.reader.join(timeout=10)  # EOF once every holder of the pipe is gone
        assert up.popen.stdout is not None
        up.popen.stdout.close()


def test_up_shows_the_product_working_and_ctrl_c_leaves_nothing(stack: Up) -> None:
    stack.wait_for("Ctrl-C stops everything")
    out = stack.output
    print(out)
    assert "LIMITED (429" in out and "within its limits" in out
    recorded = stack.recorded()
    names = {str(e["name"]) for e in recorded}
    assert {"redis", "overrides-sync", "rls-0", "rls-1", "rls-2", "envoy"} <= names
    assert all(alive(e) for e in recorded)

    with urllib.request.urlopen(stack.url("Admin UI"), timeout=5) as reply:
        assert reply.status == 200 and b"<html" in reply.read().lower()
    admin = stack.url("Admin UI").rstrip("/")
    with urllib.request.urlopen(f"{admin}/api/overview?window=600", timeout=5) as reply:
        overview = json.loads(reply.read())
    assert overview["totals"]["requests"]["denied"] > 0 and len(overview["replicas"]) == 3
    push = stack.url("push (remote_write)")
    reply = post(
        push.removesuffix("/api/v1/push"),
        compress(rw1_request(Shape(series=10))),
        {**RW1_HEADERS, "X-Scope-OrgID": "team-a"},
    )
    assert reply.status in (200, 204)

    stack.popen.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert stack.popen.wait(60) == 0
    assert "no process left behind" in stack.output
    leftovers = [e for e in recorded if alive(e)]
    assert leftovers == []
    assert not (stack.state_dir / "state.json").exists()
    ports = [stack.base + offset for offset in (0, 1, 2, 3, 4, 5, 10, 11, 12, 20, 21, 22, 30, 31, 32)]
    assert [p for p in ports if port_open("127.0.0.1", p)] == []


def test_down_cleans_up_after_a_crash(stack: Up) -> None:
    stack.wait_for("Ctrl-C stops everything")
    recorded = stack.recorded()
    stack.popen.kill()  # the supervisor dies without cleaning up
    stack.popen.wait(10)
    time.sleep(0.5)
    survivors = [e for e in recorded if alive(e)]
    assert survivors, "children run in their own sessions: they outlive a killed supervisor"
    result = subprocess.run(
        [CLI, "down", "--state-dir", str(stack.state_dir)], capture_output=True, text=True, timeout=60, check=False
    )
    print(result.stdout)
    assert result.returncode == 0
    assert [e for e in recorded if alive(e)] == []
    assert not (stack.state_dir / "state.json").exists()


def test_up_names_the_component_that_cannot_start(tmp_path: Path) -> None:
    base = free_port_block(40)
    import socket

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", base + 4))  # the Redis port
    blocker.listen()
    try:
        result = subprocess.run(
            [CLI, "up", "--port-base", str(base), "--state-dir", str(tmp_path / "s"), "--traffic-seconds", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        blocker.close()
    assert result.returncode == 1
    assert f"redis :{base + 4}" in result.stderr and "--port-base" in result.stderr
