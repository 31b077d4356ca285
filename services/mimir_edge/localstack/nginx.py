"""A real NGINX (Debian's `nginx`) running a config from deploy/nginx.py, in a directory of its own.

Runs in the foreground (`daemon off`) with its pid file, temp files and error log in `workdir`,
so nothing outside it is touched; stopped by the master's PID. `reload()` rewrites the config and
sends SIGHUP: NGINX starts new workers on the new config and lets the old ones finish what they
are serving (a graceful reload, as `nginx -s reload` does).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from mimir_edge.deploy.nginx import NginxOptions, healthz_body, render
from mimir_edge.localstack.processes import Process, StartFailed, find_program, free_port

HOST = "127.0.0.1"
INSTALL_HINT = "apt-get install nginx (Debian's nginx 1.22)"
#: Where Debian puts it; /usr/sbin is not on every user's PATH.
SYSTEM_NGINX = "/usr/sbin/nginx"


def nginx_binary() -> str:
    return find_program("nginx", INSTALL_HINT, [SYSTEM_NGINX])


def _globals() -> str:
    """`-g` directives: in the foreground; as root, workers run as root too (not `nobody`), so they
    can use temp directories under a private (0700) test directory."""
    directives = "daemon off;"
    if os.geteuid() == 0:
        directives += f" user {pwd.getpwuid(0).pw_name};"
    return directives


def check_config(config: Path, prefix: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on `config` (relative paths resolve under `prefix`); returncode 0 = valid."""
    prefix.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            nginx_binary(),
            "-t",
            "-c",
            str(config),
            "-p",
            f"{prefix}/",
            "-e",
            str(prefix / "error-test.log"),
            "-g",
            _globals(),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def healthz(port: int, timeout_s: float = 0.5) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=timeout_s) as reply:
            return str(reply.read().decode())
    except (OSError, urllib.error.URLError):
        return None


@dataclass
class NginxProcess:
    """NGINX serving `options` on 127.0.0.1 (port 0 in `options.listen`: a free one)."""

    workdir: Path
    options: NginxOptions
    process: Process | None = None
    listen_port: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.listen_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "nginx.conf"

    def _localize(self, options: NginxOptions) -> NginxOptions:
        return replace(options, listen=(HOST, self.listen_port), runtime_dir=str(self.workdir))

    def _write(self, options: NginxOptions) -> None:
        self.config_path.write_text(render(options))
        checked = check_config(self.config_path, self.workdir)
        if checked.returncode != 0:
            raise StartFailed(f"nginx -t rejected the config: {checked.stderr.strip()}")

    def start(self, timeout_s: float = 15.0) -> NginxProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.listen_port = self.options.listen[1] or free_port()
        self.options = self._localize(self.options)
        self._write(self.options)
        argv = [
            nginx_binary(),
            "-c",
            str(self.config_path),
            "-p",
            f"{self.workdir}/",
            "-e",
            str(self.workdir / "error.log"),
            "-g",
            _globals(),
        ]
        expected = healthz_body(self.options)
        self.process = Process(f"nginx:{self.listen_port}", argv, self.workdir / "nginx.log")
        self.process.start(lambda: healthz(self.listen_port) == expected, timeout_s=timeout_s)
        return self

    def reload(self, options: NginxOptions, timeout_s: float = 15.0) -> None:
        """Switch to `options` (listen address and directories stay) with a graceful reload; returns
        once new connections are served by the new config (its /healthz digest)."""
        assert self.process is not None and self.process.running(), "nginx is not running"
        options = self._localize(options)
        self._write(options)  # nginx -t first: a broken config fails here, not silently in the master
        old_workers = self.worker_pids()
        os.kill(self.process.pid, signal.SIGHUP)
        expected = healthz_body(options)
        deadline = time.monotonic() + timeout_s
        # Done when the new config answers and every old worker has exited: until then an old
        # worker may still accept a connection and close it as it shuts down.
        while healthz(self.listen_port) != expected or (self.worker_pids() & old_workers) or not self.worker_pids():
            if time.monotonic() > deadline:
                raise StartFailed(f"nginx did not switch to the new config in {timeout_s} s: {self.tail()}")
            time.sleep(0.02)
        self.options = options

    def worker_pids(self) -> set[int]:
        """The master's children (its workers), from /proc."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return {int(pid) for pid in children.read_text().split()}
        except OSError:
            return set()

    def tail(self, lines: int = 20) -> str:
        return self.process.tail(lines) if self.process else "(not started)"

    def stop(self) -> None:
        """SIGTERM to the master (NGINX's fast shutdown; its workers exit with it), by PID."""
        if self.process:
            self.process.stop()
