"""Start a program, wait until it is ready, stop it by PID. Never by name."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class MissingProgram(RuntimeError):
    """A real program the caller needs is not installed; the message says how to get it."""


class StartFailed(RuntimeError):
    pass


def _ephemeral_low() -> int:
    """Where the kernel starts choosing ports for outgoing connections and bind(0)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


#: Ports for our servers come from below the kernel's ephemeral range: a port the kernel picks for
#: some outgoing connection can then never land on one we chose but have not bound yet.
PORTS_LOW = 10000
PORTS_HIGH = _ephemeral_low()
#: `mimir-edge up` (and so `make demo`) without --port-base uses DEFAULT_PORT_BASE .. + PORT_SPAN - 1.
DEFAULT_PORT_BASE = 18000
PORT_SPAN = 50
#: Never handed out by free_port*: `make demo` must find its default ports free while servers that
#: tests (or anything else using these helpers) started are still running.
DEFAULT_PORTS = range(DEFAULT_PORT_BASE, DEFAULT_PORT_BASE + PORT_SPAN)
_handed_out: set[int] = set()


def _available(host: str, port: int) -> bool:
    return port not in DEFAULT_PORTS and port not in _handed_out and _bindable(host, port)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", high: int | None = None) -> int:
    """A free port below the ephemeral range, never handed out twice by this process."""
    top = high or PORTS_HIGH
    for _ in range(1000):
        port = random.randrange(PORTS_LOW, top)
        if _available(host, port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {PORTS_LOW}-{top}")


def free_port_pair(offset: int, host: str = "127.0.0.1") -> int:
    """A free port P such that P + offset is free too (Redis Cluster's bus port is P + 10000)."""
    for _ in range(200):
        port = free_port(host, high=PORTS_HIGH - offset)
        if _available(host, port + offset):
            _handed_out.add(port + offset)
            return port
    raise RuntimeError(f"no free port pair with offset {offset}")


def free_port_block(count: int, host: str = "127.0.0.1", low: int = PORTS_LOW, high: int = PORTS_HIGH - 100) -> int:
    """A base B, a multiple of 100, with ports B .. B+count-1 all free and none of DEFAULT_PORTS."""
    for _ in range(100):
        base = random.randrange(low, high) // 100 * 100
        if base < DEFAULT_PORTS.stop and DEFAULT_PORTS.start < base + count:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((host, port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        _handed_out.update(range(base, base + count))
        return base
    raise RuntimeError(f"no block of {count} free ports")


def find_program(name: str, how_to_install: str, extra: Sequence[str | None] = ()) -> str:
    """Path of `name` on PATH (or one of `extra`); MissingProgram saying how to install it."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in extra:
        if candidate and Path(candidate).is_file():
            return candidate
    raise MissingProgram(f"{name} is not installed: {how_to_install}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Process:
    name: str
    argv: Sequence[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    #: Set by stop() and kill(): an exit after that was asked for.
    stopping: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self, ready: Callable[[], bool], timeout_s: float = 15.0, env: dict[str, str] | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise StartFailed(f"{self.name} exited with {self.popen.returncode}; log: {self.tail()}")
            if ready():
                return
            time.sleep(0.02)
        self.stop()
        raise StartFailed(f"{self.name} was not ready after {timeout_s} s; log: {self.tail()}")

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def exited_unasked(self) -> str | None:
        """If the process ended without stop() or kill() asking it to: how (exit code and the
        end of its log), for a test to fail with instead of a refused connection."""
        if self.popen is None or self.stopping or self.popen.poll() is None:
            return None
        code = self.popen.returncode
        return f"{self.name} (pid {self.popen.pid}) exited by itself with {code}; {self.log_path}:\n{self.tail(40)}"

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout_s`; only this PID."""
        self.stopping = True
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)

    def terminate(self) -> None:
        """SIGTERM without waiting: the caller watches how the process stops."""
        self.stopping = True
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.stopping = True
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
