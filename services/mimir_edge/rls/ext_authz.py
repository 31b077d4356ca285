"""envoy.service.auth.v3.Authorization/Check: Envoy's ext_authz filter asks, with the body."""

from __future__ import annotations

import time

import grpc
from envoy.config.core.v3 import base_pb2 as core
from envoy.service.auth.v3 import external_auth_pb2 as authz
from envoy.service.auth.v3 import external_auth_pb2_grpc as authz_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import struct_pb2
from google.rpc import code_pb2, status_pb2

from mimir_edge.contract import (
    CHARGE_BY_RATELIMIT,
    CHARGE_EXTENSION,
    METADATA_HITS,
    METADATA_PROTOCOL,
    METADATA_SERIES,
    METADATA_TENANT,
)
from mimir_edge.rls.enforcer import CheckResult, Enforcer, protocol_for_path
from mimir_edge.rls.metrics import RlsMetrics

_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    413: code_pb2.INVALID_ARGUMENT,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}
_OVERWRITE = core.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def _header(key: str, value: str) -> core.HeaderValueOption:
    return core.HeaderValueOption(header=core.HeaderValue(key=key, value=value), append_action=_OVERWRITE)


def check_response(result: CheckResult) -> authz.CheckResponse:
    """The one place a CheckResult becomes Envoy's answer."""
    verdict = result.verdict
    # DeniedHttpResponse.body is a protobuf `string`: no binary body (an OTLP protobuf Status) fits.
    headers = [_header(key, value) for key, value in result.headers(binary=False)]
    if verdict.admitted:
        metadata = struct_pb2.Struct()
        if result.counts is not None:
            metadata.update({METADATA_HITS: result.counts.items, METADATA_SERIES: result.counts.series})
        if result.tenant is not None:
            metadata.update({METADATA_TENANT: result.tenant, METADATA_PROTOCOL: result.protocol.value})
        return authz.CheckResponse(
            status=status_pb2.Status(code=code_pb2.OK),
            ok_response=authz.OkHttpResponse(headers=headers),
            dynamic_metadata=metadata,
        )
    return authz.CheckResponse(
        status=status_pb2.Status(code=_GRPC_CODES.get(verdict.http_status, code_pb2.PERMISSION_DENIED)),
        denied_response=authz.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=verdict.http_status),
            headers=headers,
            body=result.body(binary=False).decode(),
        ),
    )


class AuthorizationServicer(authz_grpc.AuthorizationServicer):  # type: ignore[misc]
    def __init__(self, enforcer: Enforcer, metrics: RlsMetrics):
        self._enforcer = enforcer
        self._metrics = metrics

    async def Check(self, request: authz.CheckRequest, context: grpc.aio.ServicerContext) -> authz.CheckResponse:
        started = time.perf_counter()
        http = request.attributes.request.http
        body = http.raw_body or http.body.encode()
        charge = request.attributes.context_extensions.get(CHARGE_EXTENSION) != CHARGE_BY_RATELIMIT
        try:
            result = await self._enforcer.check(http.headers, body, charge=charge, path=http.path)
        except Exception as exc:
            result = self._enforcer.internal_error(exc, protocol_for_path(http.path))
        response = check_response(result)
        self._metrics.check_seconds.observe(time.perf_counter() - started)
        return response
