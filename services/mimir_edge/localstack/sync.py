"""A real `mimir-overrides-sync` process, continuous, with its HTTP endpoint on a free port."""

from __future__ import annotations

import os
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from mimir_edge.localstack.processes import Process, free_port

HOST = "127.0.0.1"


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            return int(reply.status), str(reply.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:  # it holds the connection: closed here, not whenever the collector finds it
            return int(exc.code), exc.read().decode()


@dataclass
class SyncProcess:
    workdir: Path
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    name: str = "overrides-sync"
    process: Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    def start(self, timeout_s: float = 20.0) -> SyncProcess:
        binary = Path(sys.executable).parent / "mimir-overrides-sync"
        argv = [str(binary), "--http-addr", f"{HOST}:{self.http_port}", "--log-format", "json", *self.args]
        self.process = Process(
            f"{self.name}:{self.http_port}", argv, self.workdir / f"{self.name}-{self.http_port}.log"
        )

        def ready() -> bool:
            try:
                return http_get(f"{self.base_url}/healthz", 0.5)[0] == 200
            except OSError:
                return False

        self.process.start(ready, timeout_s=timeout_s, env={**os.environ, **self.env})
        return self

    def metrics(self) -> str:
        return http_get(f"{self.base_url}/metrics")[1]

    def log_lines(self) -> list[str]:
        return self.process.log_path.read_text().splitlines() if self.process else []

    def stop(self) -> None:
        if self.process:
            self.process.stop()
