"""RLS settings: the contract's environment variables, each also a kebab-case flag."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mimir_edge import logs
from mimir_edge.address import parse_host_port
from mimir_edge.core.remote_write import DEFAULT_COUNTER, Counter, select_counter
from mimir_edge.rls.enforcer import FailureMode
from mimir_edge.rls.local import MAX_TENANTS
from mimir_edge.settings import absolute_path, add_redis_flags, env_flag, parse_bool, redis_config
from mimir_edge.store.client import RedisConfig


@dataclass(frozen=True, slots=True)
class RlsSettings:
    grpc_addr: str
    admin_addr: str
    metrics_addr: str
    redis: RedisConfig
    failure_mode: FailureMode
    enforcement_disabled: bool
    max_request_bytes: int
    tenant_header: str
    log_format: str
    log_level: str
    replicas_hint: int = 0
    #: Tenants whose buckets local mode keeps in memory (an LRU); see rls/local.py.
    local_max_tenants: int = MAX_TENANTS
    #: Bearer token for the admin API's mutating calls; never logged or shown.
    admin_token: str = field(default="", repr=False)
    admin_token_file: str = ""
    #: Tenants that get their own label in /metrics (empty: the first METRICS_MAX_TENANTS seen).
    metrics_tenants: tuple[str, ...] = ()
    metrics_max_tenants: int = 200
    #: The ext_authz HTTP service (see rls/http_authz.py); empty: not served.
    authz_http_addr: str = ""
    #: What counts remote_write bodies: the compiled walker when it was built, else upb.
    counter: Counter = DEFAULT_COUNTER

    @property
    def failure_mode_allow(self) -> bool:
        return self.failure_mode is FailureMode.ALLOW


def build_parser(env: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mimir-rls",
        description="Rate Limit Service for Envoy: enforces Mimir's per-tenant limits from Redis.",
    )
    env_flag(
        parser,
        "GRPC_ADDR",
        env,
        default="0.0.0.0:8081",
        help="gRPC listen address (ext_authz Check, ShouldRateLimit, health)",
    )
    env_flag(
        parser,
        "AUTHZ_HTTP_ADDR",
        env,
        default="0.0.0.0:8083",
        help="ext_authz over HTTP/1.1 listen address (Envoy http_service; empty: off)",
    )
    env_flag(parser, "ADMIN_ADDR", env, default="0.0.0.0:8082", help="admin API and UI listen address")
    env_flag(parser, "METRICS_ADDR", env, default="0.0.0.0:9090", help="Prometheus /metrics listen address")
    add_redis_flags(parser, env)
    env_flag(
        parser,
        "FAILURE_MODE_ALLOW",
        env,
        default=True,
        type=parse_bool,
        help="admit requests when Redis is unreachable (false: answer 503)",
    )
    env_flag(
        parser,
        "FAILURE_MODE",
        env,
        default="",
        choices=("", "allow", "deny", "local"),
        help="allow, deny (503) or local (each replica enforces its share in memory) while Redis is "
        "unreachable; overrides FAILURE_MODE_ALLOW when set",
    )
    env_flag(
        parser,
        "REPLICAS_HINT",
        env,
        default=0,
        type=int,
        help="replicas to assume in local mode before the heartbeat registry was read",
    )
    env_flag(
        parser,
        "LOCAL_MAX_TENANTS",
        env,
        default=MAX_TENANTS,
        type=int,
        help="local mode: most tenants whose buckets a replica keeps in memory (least recently seen dropped)",
    )
    env_flag(
        parser,
        "ENFORCEMENT_DISABLED",
        env,
        default=False,
        type=parse_bool,
        help="shadow mode: decide, count and log, never deny",
    )
    env_flag(
        parser,
        "MAX_REQUEST_BYTES",
        env,
        default=52428800,
        type=int,
        help="largest body accepted, compressed and decompressed",
    )
    env_flag(parser, "TENANT_HEADER", env, default="X-Scope-OrgID", help="header naming the tenant")
    env_flag(
        parser,
        "ADMIN_TOKEN",
        env,
        default="",
        help="bearer token for the admin API's mutating calls (prefer ADMIN_TOKEN_FILE); "
        "without a token the admin API is read-only",
    )
    env_flag(
        parser,
        "ADMIN_TOKEN_FILE",
        env,
        default="",
        help="file of admin API tokens, one `name:token` per line (re-read when it changes)",
    )
    env_flag(
        parser,
        "METRICS_TENANTS",
        env,
        default="",
        help="comma-separated tenants that get their own tenant label in /metrics; others count as __other__",
    )
    env_flag(
        parser,
        "METRICS_MAX_TENANTS",
        env,
        default=200,
        type=int,
        help="without METRICS_TENANTS: how many tenants (first seen) get their own label",
    )
    env_flag(
        parser,
        "REMOTE_WRITE_COUNTER",
        env,
        default="auto",
        choices=("auto", "native", "upb"),
        help="what counts remote_write bodies: native (the compiled walker), upb (the plain twin), or auto "
        "(native when the install compiled it)",
    )
    logs.add_log_flags(parser, env)
    return parser


def _address(parser: argparse.ArgumentParser, flag: str, value: str) -> str:
    try:
        parse_host_port(value)
    except ValueError as exc:
        parser.error(f"{flag}: {exc}")
    return value


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> RlsSettings:
    """Read flags and environment once; exits with a clear message on any invalid value."""
    parser = build_parser(env)
    args = parser.parse_args(argv)
    if args.max_request_bytes <= 0:
        parser.error("--max-request-bytes must be positive")
    if not args.tenant_header.strip():
        parser.error("--tenant-header must not be empty")
    if args.local_max_tenants < 1:
        parser.error("--local-max-tenants must be at least 1")
    if args.metrics_max_tenants < 0:
        parser.error("--metrics-max-tenants must not be negative")
    if args.admin_token_file and not os.path.isfile(args.admin_token_file):
        parser.error(f"--admin-token-file: {args.admin_token_file!r} is not a file")
    try:
        counter = select_counter(args.remote_write_counter)
    except ValueError as exc:
        parser.error(f"--remote-write-counter: {exc}")
    return RlsSettings(
        grpc_addr=_address(parser, "--grpc-addr", args.grpc_addr),
        admin_addr=_address(parser, "--admin-addr", args.admin_addr),
        metrics_addr=_address(parser, "--metrics-addr", args.metrics_addr),
        redis=redis_config(parser, args),
        failure_mode=FailureMode(args.failure_mode)
        if args.failure_mode
        else (FailureMode.ALLOW if args.failure_mode_allow else FailureMode.DENY),
        replicas_hint=args.replicas_hint,
        local_max_tenants=args.local_max_tenants,
        enforcement_disabled=args.enforcement_disabled,
        max_request_bytes=args.max_request_bytes,
        tenant_header=args.tenant_header.strip().lower(),
        log_format=args.log_format,
        log_level=args.log_level,
        admin_token=args.admin_token,
        admin_token_file=str(absolute_path(args.admin_token_file)) if args.admin_token_file else "",
        metrics_tenants=tuple(t.strip() for t in args.metrics_tenants.split(",") if t.strip()),
        metrics_max_tenants=args.metrics_max_tenants,
        authz_http_addr=_address(parser, "--authz-http-addr", args.authz_http_addr) if args.authz_http_addr else "",
        counter=counter,
    )
