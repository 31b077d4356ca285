"""The Envoy bootstrap for each deployment mode, as `mimir-edge render-envoy` prints it.

- `full` / `canary`: ext_authz (with the body) in front of the distributor. Canary differs only in
  NGINX, which sends a tenant's traffic here or straight to Mimir.
- `mirror`: the same checks, but Envoy answers 204 itself and never forwards: NGINX already sent
  the original to Mimir, a forwarded mirror would be ingested twice.

Transport of the ext_authz call (`authz_transport`; `rls` lists the addresses of that transport):
- `http` (the default with `charge=check`): Envoy's `http_service` to the RLS's AUTHZ_HTTP_ADDR,
  the same decision at a fraction of grpcio's per-call CPU (see rls/http_authz.py). With the RLS's
  failure mode deny, the RLS's 503 reaches the client as Envoy's own 503, without `Retry-After`.
- `grpc` (the default with `charge=ratelimit`): `envoy.service.auth.v3.Authorization/Check` on the
  RLS's GRPC_ADDR. Ratelimit charging needs it: the rate limit filter speaks gRPC only, so
  `charge=ratelimit` with an explicit `http` is refused.

Charging, exactly once per request and dimension:
- `check` (default): ext_authz Check decides requests and items in one atomic call.
- `ratelimit`: Check only counts (told so by a route context extension) and returns the item
  count as dynamic metadata; the rate limit filter charges requests (descriptor without
  hits_addend) and items (same descriptor, hits_addend from that metadata) via ShouldRateLimit.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

import yaml

from mimir_edge.contract import (
    CHARGE_BY_RATELIMIT,
    CHARGE_EXTENSION,
    CHECK_PREFIX,
    DEFAULT_TENANT_HEADER,
    HEADER_PREFIX,
    HEALTH_PATH,
    METADATA_HITS,
    METADATA_NAMESPACE,
    METADATA_PROTOCOL,
    OTLP_PATH,
    PROTOCOL_DESCRIPTOR_KEY,
    RATELIMIT_DOMAIN,
    REASON_HEADER,
    TENANT_DESCRIPTOR_KEY,
)

MODES = ("mirror", "canary", "full")
CHARGES = ("check", "ratelimit")
TRANSPORTS = ("grpc", "http")
#: What `authz_transport` is when not given: HTTP (less RLS CPU per check), except that ratelimit
#: charging needs gRPC.
DEFAULT_TRANSPORT = {"check": "http", "ratelimit": "grpc"}

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_EXT_AUTHZ = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
_EXT_AUTHZ_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"
_RATELIMIT = "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit"
_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HTTP_OPTIONS = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_PREVIOUS_HOSTS = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"


@dataclass(frozen=True, slots=True)
class EnvoyOptions:
    rls: tuple[tuple[str, int], ...]
    upstream: tuple[str, int]
    mode: str = "full"
    charge: str = "check"
    listen: tuple[str, int] = ("0.0.0.0", 8080)
    admin: tuple[str, int] = ("127.0.0.1", 9901)
    max_request_bytes: int = 52428800
    tenant_header: str = DEFAULT_TENANT_HEADER
    failure_mode_allow: bool = True
    authz_timeout_s: float = 0.5
    #: Passed to the route; remote_write to a busy distributor can be slow.
    upstream_timeout_s: float = 30.0
    #: False renders a plain proxy with no enforcement filters: the benchmarks' baseline.
    enforcement_filters: bool = True
    #: "" (not given): DEFAULT_TRANSPORT[charge]; read back, it is always "grpc" or "http".
    authz_transport: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.charge not in CHARGES:
            raise ValueError(f"charge must be one of {', '.join(CHARGES)}, got {self.charge!r}")
        if not self.authz_transport:
            # Frozen: resolved once here, so every reader sees the transport actually rendered.
            object.__setattr__(self, "authz_transport", DEFAULT_TRANSPORT[self.charge])
        if self.authz_transport not in TRANSPORTS:
            raise ValueError(f"authz_transport must be one of {', '.join(TRANSPORTS)}, got {self.authz_transport!r}")
        if self.authz_transport == "http" and self.charge == "ratelimit":
            raise ValueError(
                "charge=ratelimit needs authz_transport=grpc (its default): the rate limit filter speaks gRPC only"
            )
        if not self.rls:
            raise ValueError("at least one RLS address is needed")


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _cluster(name: str, endpoints: tuple[tuple[str, int], ...], *, http2: bool, connect_timeout: str) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if all(_is_ip(h) for h, _ in endpoints) else "STRICT_DNS",
        "connect_timeout": connect_timeout,
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(h, p)}} for h, p in endpoints]}],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _HTTP_OPTIONS,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def _rls_cluster(endpoints: tuple[tuple[str, int], ...], transport: str) -> dict[str, Any]:
    grpc = transport == "grpc"
    cluster = _cluster("rls", endpoints, http2=grpc, connect_timeout="0.25s")
    # Active health checks (NOT_SERVING / 503 while draining or before Redis was reached) and
    # outlier ejection of a replica that keeps failing.
    cluster["health_checks"] = [
        {
            "timeout": "0.5s",
            "interval": "1s",
            "unhealthy_threshold": 1,
            "healthy_threshold": 1,
            **({"grpc_health_check": {}} if grpc else {"http_health_check": {"path": HEALTH_PATH}}),
        }
    ]
    if grpc:
        # A Check always answers with HTTP 200 (the verdict is in the message): only transport
        # failures count.
        ejection: dict[str, Any] = {"consecutive_gateway_failure": 2, "enforcing_consecutive_gateway_failure": 100}
    else:
        # Over HTTP a verdict can be a 5xx (503 while Redis is down and FAILURE_MODE_ALLOW=false):
        # an answer, not a broken replica. Only errors of Envoy's own making (connect failure,
        # reset, timeout) eject.
        ejection = {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 2,
            "enforcing_consecutive_local_origin_failure": 100,
            "enforcing_consecutive_5xx": 0,
            "enforcing_consecutive_gateway_failure": 0,
            "enforcing_success_rate": 0,
        }
    cluster["outlier_detection"] = {
        **ejection,
        "interval": "1s",
        "base_ejection_time": "5s",
        "max_ejection_percent": 50,
    }
    # A replica that dies with N checks in flight has all N retried at once. Envoy's default of 3
    # concurrent retries per cluster made the 4th and later client errors; as many as its default
    # limit of requests (1024) bounds retries by the load, not by a constant.
    cluster["circuit_breakers"] = {"thresholds": [{"max_retries": 1024}]}
    return cluster


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _retry_policy(retry_on: str, timeout_s: float) -> dict[str, Any]:
    """Retries on another replica when one is gone or refuses: a replica that dies mid-call costs
    a retry, not a client error."""
    return {
        "retry_on": retry_on,
        "num_retries": 2,
        # Envoy makes the back-off's max_interval the per-try timeout of the call
        # (Http::Utility::convertCoreToRouteRetryPolicy): anything shorter than the authz timeout
        # cuts a slow check (a large body, a busy replica) off, asks again (charging again) and
        # then fails it. The two retries back off at most 5 and 15 ms whatever the ceiling.
        "retry_back_off": {"base_interval": "0.005s", "max_interval": _duration(max(timeout_s, 0.005))},
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": _PREVIOUS_HOSTS},
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }


def _rls_grpc_service(timeout_s: float) -> dict[str, Any]:
    return {
        "envoy_grpc": {"cluster_name": "rls"},
        "timeout": _duration(timeout_s),
        "retry_policy": _retry_policy("connect-failure,refused-stream,reset,unavailable,cancelled", timeout_s),
    }


def _rls_http_service(timeout_s: float) -> dict[str, Any]:
    """The RLS's ext_authz HTTP service: checks under CHECK_PREFIX; our headers go upstream on
    200 and to the client on a denial."""
    return {
        "server_uri": {"uri": "http://rls", "cluster": "rls", "timeout": _duration(timeout_s)},
        "path_prefix": CHECK_PREFIX,
        # Retried only on transport failures. (A 5xx answer is not retried; Envoy takes it for an
        # authorization-server error and applies failure_mode_allow / status_on_error to it.)
        "retry_policy": _retry_policy("connect-failure,reset", timeout_s),
        "authorization_response": {
            "allowed_upstream_headers": {"patterns": [{"prefix": HEADER_PREFIX}]},
            "allowed_client_headers": {
                "patterns": [{"exact": "retry-after"}, {"exact": "content-type"}, {"prefix": HEADER_PREFIX}]
            },
        },
    }


#: The rate limit filter's 429 to an OTLP write (charge=ratelimit), in OTLP's shape: Envoy knows
#: neither the limit nor its value, the RLS names it in REASON_HEADER.
OTLP_RATE_LIMITED_MESSAGE = (
    "the request has been rejected because the tenant exceeded its request rate or ingestion rate limit "
    f"(err-mimir-tenant-max-request-rate or err-mimir-tenant-max-ingestion-rate; the {REASON_HEADER} header "
    "names it)"
)
_RESOURCE_EXHAUSTED = 8


def _otlp_status_protobuf(message: str) -> bytes:
    """google.rpc.Status{code: RESOURCE_EXHAUSTED, message} encoded by hand: rendering imports no protobuf."""
    text = message.encode()
    assert len(text) < 1 << 14  # a two-byte varint length at most
    length = bytes([len(text)]) if len(text) < 0x80 else bytes([(len(text) & 0x7F) | 0x80, len(text) >> 7])
    return bytes([0x08, _RESOURCE_EXHAUSTED, 0x12]) + length + text


def _otlp_local_replies() -> dict[str, Any]:
    """With charge=ratelimit the rate limit filter answers 429 itself, with no body: for an OTLP
    write, rewrite it into a google.rpc.Status in the request's format (JSON for application/json,
    protobuf otherwise), as the Check's own 429 is. Retry-After comes from the RLS."""

    def header(name: str, match: dict[str, Any]) -> dict[str, Any]:
        return {"header_filter": {"header": {"name": name, "string_match": match}}}

    def mapper(json_request: bool, body: dict[str, str], content_type: str) -> dict[str, Any]:
        filters = [
            {"response_flag_filter": {"flags": ["RL"]}},
            header(":path", {"safe_regex": {"regex": OTLP_PATH + r"(\?.*)?"}}),
        ]
        if json_request:
            filters.append(header("content-type", {"exact": "application/json"}))
        return {
            "filter": {"and_filter": {"filters": filters}},
            "body": body,
            "body_format_override": {
                "text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"},
                "content_type": content_type,
            },
        }

    as_json = json.dumps({"code": _RESOURCE_EXHAUSTED, "message": OTLP_RATE_LIMITED_MESSAGE}, separators=(",", ":"))
    as_protobuf = base64.b64encode(_otlp_status_protobuf(OTLP_RATE_LIMITED_MESSAGE)).decode()
    return {
        "mappers": [
            # The first mapper that matches applies: JSON requests, then every other OTLP write.
            mapper(True, {"inline_string": as_json}, "application/json"),
            mapper(False, {"inline_bytes": as_protobuf}, "application/x-protobuf"),
        ]
    }


def render(options: EnvoyOptions) -> dict[str, Any]:
    """The bootstrap as a plain structure (Envoy reads it as YAML or JSON)."""
    header = options.tenant_header.lower()
    service: dict[str, Any]
    if options.authz_transport == "grpc":
        service = {"grpc_service": _rls_grpc_service(options.authz_timeout_s)}
    else:
        # The HTTP service sees only the headers allowed here (Envoy adds Host, Method, Path,
        # Content-Length); these are the ones counting and the tenant need.
        names = (header, "content-type", "content-encoding")
        service = {
            "http_service": _rls_http_service(options.authz_timeout_s),
            "allowed_headers": {"patterns": [{"exact": name, "ignore_case": True} for name in names]},
        }
    ext_authz: dict[str, Any] = {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": _EXT_AUTHZ,
            "transport_api_version": "V3",
            **service,
            "failure_mode_allow": options.failure_mode_allow,
            # Envoy's default is 403, which clients drop; 503 is retried and loses nothing.
            "status_on_error": {"code": "ServiceUnavailable"},
            "with_request_body": {
                "max_request_bytes": options.max_request_bytes,
                "allow_partial_message": False,
                "pack_as_bytes": True,
            },
        },
    }
    filters = [ext_authz] if options.enforcement_filters else []
    route: dict[str, Any] = {"match": {"prefix": "/"}}
    if options.mode == "mirror":
        route["direct_response"] = {"status": 204}
    else:
        route["route"] = {"cluster": "distributor", "timeout": _duration(options.upstream_timeout_s)}

    if options.charge == "ratelimit" and options.enforcement_filters:
        route["typed_per_filter_config"] = {
            "envoy.filters.http.ext_authz": {
                "@type": _EXT_AUTHZ_ROUTE,
                "check_settings": {"context_extensions": {CHARGE_EXTENSION: CHARGE_BY_RATELIMIT}},
            }
        }
        tenant_action = {"request_headers": {"header_name": header, "descriptor_key": TENANT_DESCRIPTOR_KEY}}
        # The protocol Check counted (its dynamic metadata): only labels the decision in the
        # RLS's metrics and statistics; both protocols draw from the tenant's one budget.
        protocol_action = {
            "metadata": {
                "descriptor_key": PROTOCOL_DESCRIPTOR_KEY,
                "metadata_key": {"key": METADATA_NAMESPACE, "path": [{"key": METADATA_PROTOCOL}]},
                "default_value": "remote_write",  # never used: Check always sets it
                "source": "DYNAMIC",
            }
        }
        filters.append(
            {
                "name": "envoy.filters.http.ratelimit",
                "typed_config": {
                    "@type": _RATELIMIT,
                    "domain": RATELIMIT_DOMAIN,
                    "timeout": _duration(options.authz_timeout_s),
                    "failure_mode_deny": not options.failure_mode_allow,
                    "status_on_error": {"code": "ServiceUnavailable"},
                    "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
                    "rate_limit_service": {
                        "grpc_service": {"envoy_grpc": {"cluster_name": "rls"}},
                        "transport_api_version": "V3",
                    },
                    "rate_limits": [
                        # requests: no hits_addend of its own → the request-level one (1)
                        {"actions": [tenant_action, protocol_action]},
                        # items: the count ext_authz returned as dynamic metadata
                        {
                            "actions": [tenant_action, protocol_action],
                            "hits_addend": {"format": f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:{METADATA_HITS})%"},
                        },
                    ],
                },
            }
        )
    filters.append({"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER}})
    hcm: dict[str, Any] = {
        "@type": _HCM,
        "stat_prefix": "remote_write",
        "codec_type": "AUTO",
        "route_config": {
            "name": "remote_write",
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}],
        },
        "http_filters": filters,
    }
    if options.charge == "ratelimit" and options.enforcement_filters:
        hcm["local_reply_config"] = _otlp_local_replies()

    return {
        "admin": {"address": _socket(*options.admin)},
        "static_resources": {
            "listeners": [
                {
                    "name": "remote_write",
                    "address": _socket(*options.listen),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ],
                        }
                    ],
                }
            ],
            "clusters": [
                _rls_cluster(options.rls, options.authz_transport),
                _cluster("distributor", (options.upstream,), http2=False, connect_timeout="1s"),
            ],
        },
    }


def render_yaml(options: EnvoyOptions) -> str:
    header = (
        f"# Envoy bootstrap for Mimir Edge Enforcement, mode {options.mode}, charge {options.charge}, "
        f"ext_authz over {options.authz_transport}.\n"
    )
    header += "# Generated by `mimir-edge render-envoy`; edit the options, not this file.\n"
    return header + yaml.safe_dump(render(options), sort_keys=False)
