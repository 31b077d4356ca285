"""The project's error hierarchy, all in one place.

    EdgeError                      base; ``http_status`` is the answer a client should see
    ├── InvalidRequest (400)       a request we refuse to admit as it is
    │   ├── InvalidBody (400)      not snappy block format, or not the protobuf it claims to be
    │   └── InvalidTenant (401)    missing, empty or malformed tenant id
    ├── PayloadTooLarge (413)      body, or its declared decompressed size, over the bound
    ├── UnsupportedMediaType (415) a content type or encoding we cannot count
    ├── OverridesError             a runtime overrides / defaults file we refuse (names tenant, field)
    └── StoreUnavailable (503)     Redis could not answer in time; the failure mode decides

Adapters translate foreign exceptions (redis, grpc, yaml) into these at their edge, and each
servicer maps these to its protocol's answers in one function.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of every error the project raises on purpose."""

    http_status: int = 500


class InvalidRequest(EdgeError):
    http_status = 400


class InvalidBody(InvalidRequest):
    http_status = 400


class InvalidTenant(InvalidRequest):
    http_status = 401


class PayloadTooLarge(EdgeError):
    http_status = 413


class UnsupportedMediaType(EdgeError):
    http_status = 415


class OverridesError(EdgeError):
    """A runtime overrides or defaults document that cannot be used, as a whole."""

    def __init__(self, message: str, *, tenant: str | None = None, field: str | None = None):
        where = []
        if tenant is not None:
            where.append(f"tenant {tenant!r}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.tenant = tenant
        self.field = field


class StoreUnavailable(EdgeError):
    http_status = 503
