"""Wiring of one RLS process: Redis, the servicers, health, metrics, signals."""

from __future__ import annotations

import asyncio
import gc
import signal
import time
from typing import Any

import grpc
import structlog
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc as rls_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from mimir_edge import __version__, cancellation
from mimir_edge.address import parse_host_port
from mimir_edge.admin import server as admin
from mimir_edge.admin.stats import StatsRecorder
from mimir_edge.admin.view import FleetView
from mimir_edge.core.schema import HEARTBEAT_S
from mimir_edge.core.token_bucket import BucketLimits
from mimir_edge.rls.defaults import DefaultsCache
from mimir_edge.rls.enforcer import Enforcer, EnforcerConfig, FailureMode
from mimir_edge.rls.ext_authz import AuthorizationServicer
from mimir_edge.rls.http_authz import HttpAuthzServer
from mimir_edge.rls.local import LocalLimiter
from mimir_edge.rls.metrics import RlsMetrics
from mimir_edge.rls.ratelimit import RateLimitServicer
from mimir_edge.rls.registry import ReplicaRegistry
from mimir_edge.rls.settings import RlsSettings
from mimir_edge.store.address import redact_url
from mimir_edge.store.breaker import BreakerState, CircuitBreaker
from mimir_edge.store.buckets import BucketStore
from mimir_edge.store.client import SyncRedis, connect, connect_sync
from mimir_edge.store.limits import LimitsStore, read_tenant_limits
from mimir_edge.supervisor import Supervisor

log = structlog.get_logger("rls")

#: Room for the CheckRequest's headers and attributes around a body of MAX_REQUEST_BYTES.
MESSAGE_OVERHEAD_BYTES = 1 << 20
SHUTDOWN_GRACE_S = 10.0
SERVICES = (
    "envoy.service.auth.v3.Authorization",
    "envoy.service.ratelimit.v3.RateLimitService",
)


class StartupError(RuntimeError):
    pass


async def serve(settings: RlsSettings) -> int:
    """Run until SIGTERM/SIGINT or a background task fails; then stop taking new calls, finish
    in-flight ones, and return the exit code (0 after a signal, EXIT_CRASHED after a failure)."""
    redis = connect(settings.redis)
    store = BucketStore.for_config(settings.redis, redis)
    metrics = RlsMetrics(max_tenants=settings.metrics_max_tenants, allow_tenants=settings.metrics_tenants)
    metrics.counter_implementation.labels(settings.counter.value).set(1)
    metrics.build_info.labels(__version__, settings.failure_mode.value, str(settings.enforcement_disabled).lower()).set(
        1
    )
    defaults = DefaultsCache(LimitsStore(redis, timeout_s=max(settings.redis.timeout_s, 1.0)))
    registry = ReplicaRegistry(
        redis,
        hint=settings.replicas_hint,
        details=lambda: {
            "failure_mode": settings.failure_mode.value,
            "shadow": str(settings.enforcement_disabled).lower(),
            "breaker": "open" if breaker.open else "closed",
            "grpc_addr": settings.grpc_addr,
            "admin_addr": settings.admin_addr,
            "started_ms": str(started_ms),
        },
    )
    started_ms = int(time.time() * 1000)
    stats = StatsRecorder(
        redis, replica_id=registry.replica_id, on_flush=lambda result: metrics.stats_flushes.labels(result).inc()
    )
    local = (
        LocalLimiter(lambda: registry.live, max_tenants=settings.local_max_tenants)
        if settings.failure_mode is FailureMode.LOCAL
        else None
    )

    def breaker_changed(state: BreakerState) -> None:
        metrics.breaker_state.set(int(state))
        metrics.breaker_transitions.labels(state.name.lower()).inc()
        if state is BreakerState.CLOSED and local is not None:
            local.reset()

    breaker = CircuitBreaker(store.ping, on_change=breaker_changed)
    enforcer = Enforcer(
        store,
        defaults,
        metrics,
        EnforcerConfig(
            tenant_header=settings.tenant_header,
            max_request_bytes=settings.max_request_bytes,
            shadow=settings.enforcement_disabled,
            failure_mode=settings.failure_mode,
            counter=settings.counter,
        ),
        breaker=breaker,
        local=local,
        stats=stats,
    )
    limit = settings.max_request_bytes + MESSAGE_OVERHEAD_BYTES
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.so_reuseport", 0),
        ]
    )
    authz_grpc.add_AuthorizationServicer_to_server(AuthorizationServicer(enforcer, metrics), server)
    rls_grpc.add_RateLimitServiceServicer_to_server(RateLimitServicer(enforcer, metrics), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    if server.add_insecure_port(settings.grpc_addr) == 0:
        raise StartupError(f"cannot listen on GRPC_ADDR {settings.grpc_addr}")
    metrics_host, metrics_port = parse_host_port(settings.metrics_addr)
    try:
        metrics_server, metrics_thread = start_http_server(metrics_port, metrics_host, registry=metrics.registry)
    except OSError as exc:
        raise StartupError(f"cannot listen on METRICS_ADDR {settings.metrics_addr}: {exc.strerror}") from None
    ready = {"serving": False}

    def api_ready() -> tuple[int, dict[str, object]]:
        state: dict[str, object] = {
            "ready": ready["serving"] and not breaker.open,
            "serving": ready["serving"],
            "redis_breaker": "open" if breaker.open else "closed",
            "defaults_loaded": defaults.loaded.is_set(),
            "failure_mode": settings.failure_mode.value,
            "shadow": settings.enforcement_disabled,
            "live_replicas": registry.live,
            "replica_id": registry.replica_id,
        }
        # Not ready while draining or before Redis was reached. An open breaker is reported but
        # keeps the replica ready: it still answers every check by its failure mode.
        return (200 if ready["serving"] else 503), state

    admin_redis = connect_sync(settings.redis)
    api = admin.Api(
        admin.AdminContext(
            view=FleetView(admin_redis, cluster=bool(settings.redis.cluster_nodes)),
            redis=admin_redis,
            tokens=admin.Tokens(token=settings.admin_token, path=settings.admin_token_file),
            replica_id=registry.replica_id,
            health=lambda: (200, {"status": "ok"}),
            ready=api_ready,
            config=lambda: effective_config(settings, registry.replica_id),
            current_limits=lambda tenant: current_limits(admin_redis, tenant, defaults.limits),
        ),
        on_request=lambda method, code: metrics.admin_requests.labels(method, str(code)).inc(),
    )
    await server.start()
    http_authz = HttpAuthzServer(
        enforcer, metrics, max_body_bytes=settings.max_request_bytes, serving=lambda: ready["serving"]
    )
    if settings.authz_http_addr:
        try:
            await http_authz.start(*parse_host_port(settings.authz_http_addr))
        except OSError as exc:
            raise StartupError(f"cannot listen on AUTHZ_HTTP_ADDR {settings.authz_http_addr}: {exc.strerror}") from None
    # The admin port opens last: once it answers, every port of the process is bound (what
    # "started" means to the local stack and the tests).
    admin_host, admin_port = parse_host_port(settings.admin_addr)
    try:
        admin_server = admin.serve(admin_host, admin_port, api)
    except OSError as exc:
        raise StartupError(f"cannot listen on ADMIN_ADDR {settings.admin_addr}: {exc.strerror}") from None
    # Everything alive now (modules, grpc, protobuf, prometheus: ~54k objects) lives as long as the
    # process: a full collection that walks them pauses the decision loop ~20 ms. Frozen, the
    # collector only looks at what the requests allocate.
    gc.freeze()
    log.info(
        "rls started",
        grpc_addr=settings.grpc_addr,
        authz_http_addr=settings.authz_http_addr or None,
        metrics_addr=settings.metrics_addr,
        redis=settings.redis.describe(),
        shadow=settings.enforcement_disabled,
        failure_mode=settings.failure_mode.value,
        counter=settings.counter.value,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async def become_ready() -> None:
        await defaults.loaded.wait()
        metrics.defaults_loaded.set(1)
        for name in ("", *SERVICES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        ready["serving"] = True
        log.info("rls ready")

    async def heartbeat() -> None:
        while True:
            await registry.run_once()
            metrics.live_replicas.set(registry.live)
            await cancellation.sleep(HEARTBEAT_S)

    # Each of these handles Redis being away itself; anything else they raise is a bug, and a
    # replica without its heartbeat, defaults or stats is better restarted than left half-alive.
    tasks = Supervisor(log)
    tasks.start("heartbeat", heartbeat())
    tasks.start("defaults-refresh", defaults.run())
    tasks.start("defaults-follow", defaults.follow_changes(settings.redis))
    tasks.start("become-ready", become_ready(), may_finish=True)
    tasks.start("stats-flush", stats.run())
    try:
        await tasks.wait(stop)
        log.info("rls stopping: not serving, draining in-flight calls", failed_task=tasks.failed)
        ready["serving"] = False
        for name in ("", *SERVICES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await asyncio.gather(server.stop(SHUTDOWN_GRACE_S), http_authz.stop(SHUTDOWN_GRACE_S))
    finally:
        await registry.leave()
        await tasks.aclose()
        await breaker.close()
        await store.close()
        await redis.aclose()
        metrics_server.shutdown()
        admin_server.shutdown()
        admin_redis.close()
        metrics_thread.join(timeout=5)
        log.info("rls stopped", exit_code=tasks.exit_code)
    return tasks.exit_code


def effective_config(settings: RlsSettings, replica_id: str) -> dict[str, Any]:
    """The settings in force, for /api/config: secrets redacted."""
    return {
        "replica_id": replica_id,
        "version": __version__,
        "grpc_addr": settings.grpc_addr,
        "authz_http_addr": settings.authz_http_addr,
        "admin_addr": settings.admin_addr,
        "metrics_addr": settings.metrics_addr,
        "redis_url": redact_url(settings.redis.url) if not settings.redis.cluster_nodes else "",
        "redis_username": settings.redis.credentials[0] or "",
        "redis_password": "<redacted>" if settings.redis.credentials[1] else "",
        "redis_cluster_nodes": [f"{host}:{port}" for host, port in settings.redis.cluster_nodes],
        "redis_timeout_s": settings.redis.timeout_s,
        "failure_mode": settings.failure_mode.value,
        "failure_mode_allow": settings.failure_mode_allow,
        "enforcement_disabled": settings.enforcement_disabled,
        "max_request_bytes": settings.max_request_bytes,
        "tenant_header": settings.tenant_header,
        "log_format": settings.log_format,
        "log_level": settings.log_level,
        "replicas_hint": settings.replicas_hint,
        "local_max_tenants": settings.local_max_tenants,
        "admin_token": "<redacted>" if settings.admin_token else "",
        "admin_token_file": settings.admin_token_file,
        "admin_writable": bool(settings.admin_token or settings.admin_token_file),
        "metrics_tenants": list(settings.metrics_tenants),
        "metrics_max_tenants": settings.metrics_max_tenants,
    }


def current_limits(redis: SyncRedis, tenant: str, defaults: BucketLimits) -> BucketLimits:
    """The tenant's enforced limits (overrides file, else defaults), for an emergency override's
    burst ratio."""
    stored = read_tenant_limits(redis, tenant)
    return BucketLimits.from_tenant_limits(stored) if stored is not None else defaults
