"""A real `mimir-rls` process on free 127.0.0.1 ports."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mimir_edge.localstack.processes import Process, free_port, port_open

HOST = "127.0.0.1"


def grpc_serving(address: str, timeout_s: float = 0.5) -> bool:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    except grpc.RpcError:
        return False


@dataclass
class RlsProcess:
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    grpc_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    name: str = "mimir-rls"
    #: Wait for SERVING (Redis reached, limits known); False: only for the port to answer.
    wait_serving: bool = True
    process: Process | None = None

    @property
    def grpc_addr(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def start(self, timeout_s: float = 20.0) -> RlsProcess:
        env = {
            **os.environ,
            "GRPC_ADDR": self.grpc_addr,
            "ADMIN_ADDR": f"{HOST}:{self.admin_port}",
            "METRICS_ADDR": f"{HOST}:{self.metrics_port}",
            "LOG_FORMAT": "json",
            **self.env,
        }
        binary = Path(sys.executable).parent / "mimir-rls"
        argv = [str(binary)] if binary.exists() else [sys.executable, "-m", "mimir_edge.rls.main"]
        self.process = Process(
            f"{self.name}:{self.grpc_port}", argv, self.workdir / f"{self.name}-{self.grpc_port}.log"
        )

        def ready() -> bool:
            if self.wait_serving:
                return grpc_serving(self.grpc_addr)
            return port_open(HOST, self.grpc_port)

        self.process.start(ready, timeout_s=timeout_s, env=env)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        if self.process:
            self.process.kill()
