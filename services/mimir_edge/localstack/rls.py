"""A real `mimir-rls` process on free 127.0.0.1 ports."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mimir_edge.localstack.processes import Process, StartFailed, free_port, port_open

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
    #: The ext_authz HTTP service (Envoy's `authz_transport="http"`).
    authz_http_port: int = field(default_factory=free_port)
    name: str = "mimir-rls"
    #: Wait for SERVING (Redis reached, limits known); False: only for the port to answer.
    wait_serving: bool = True
    process: Process | None = None

    @property
    def grpc_addr(self) -> str:
        return f"{HOST}:{self.grpc_port}"

    @property
    def authz_http_addr(self) -> str:
        return f"{HOST}:{self.authz_http_port}"

    def authz_port(self, transport: str) -> int:
        """Where Envoy asks this replica over `transport` (EnvoyOptions.authz_transport)."""
        return self.grpc_port if transport == "grpc" else self.authz_http_port

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.admin_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def start(self, timeout_s: float = 20.0, attempts: int = 3) -> RlsProcess:
        """Start and wait until ready. A port taken between choosing it and binding it (another
        process's outgoing connection can land on it) is retried on fresh ports."""
        for attempt in range(attempts):
            try:
                return self._start(timeout_s)
            except StartFailed as exc:
                if "already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.grpc_port, self.admin_port, self.metrics_port = free_port(), free_port(), free_port()
                self.authz_http_port = free_port()
        raise AssertionError("unreachable")

    def _start(self, timeout_s: float) -> RlsProcess:
        env = {
            **os.environ,
            "GRPC_ADDR": self.grpc_addr,
            "ADMIN_ADDR": f"{HOST}:{self.admin_port}",
            "METRICS_ADDR": f"{HOST}:{self.metrics_port}",
            "AUTHZ_HTTP_ADDR": self.authz_http_addr,
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
            # The admin port opens after the gRPC and metrics ports are bound: the process is up.
            return port_open(HOST, self.admin_port)

        self.process.start(ready, timeout_s=timeout_s, env=env)
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        if self.process:
            self.process.kill()
