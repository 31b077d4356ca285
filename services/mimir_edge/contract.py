"""The wire contract between the RLS and the configs that call it: paths, header names, metadata,
descriptor and context extension keys.

Both sides read these names from here: the RLS (rls/) when it answers, the renderers (deploy/)
when they write the Envoy and NGINX configs that route to it and read its answers. This module
imports nothing, so rendering a config never imports grpc, the store or redis.
"""

from __future__ import annotations

#: The header naming the tenant, as Mimir reads it (TENANT_HEADER changes it).
DEFAULT_TENANT_HEADER = "X-Scope-OrgID"

#: Mimir's OTLP metrics path: checks for it are counted as OTLP, every other path as remote_write.
OTLP_PATH = "/otlp/v1/metrics"

# NGINX's mirror phase sends a copy of each write to Envoy on a path the distributor has no route
# for (404), so even an Envoy that forwards cannot make Mimir ingest a write twice.
#: Where mirrored remote_write copies go.
MIRROR_PATH = "/mimir-edge/mirror"
#: Where mirrored OTLP copies go: the path still names the protocol, so the RLS counts them as OTLP.
MIRROR_OTLP_PATH = MIRROR_PATH + OTLP_PATH
#: The paths whose checks are counted as OTLP.
OTLP_CHECK_PATHS = frozenset({OTLP_PATH, MIRROR_OTLP_PATH})

# ext_authz over HTTP (Envoy's `http_service`, the RLS's AUTHZ_HTTP_ADDR).
#: Envoy's `http_service.path_prefix`: a check for POST /api/v1/push arrives as
#: POST /ext_authz/api/v1/push.
CHECK_PREFIX = "/ext_authz"
#: Envoy's active health check of the HTTP transport: 200 while serving, 503 otherwise.
HEALTH_PATH = "/healthz"

# Headers the RLS adds (lower case, as HTTP/2 and Envoy carry them).
#: Every header the RLS adds starts with this; the Envoy config lets exactly these through.
HEADER_PREFIX = "x-mimir-edge-"
#: On admitted requests, to the distributor: the outcome (allowed, would_deny, failure_allowed).
DECISION_HEADER = HEADER_PREFIX + "decision"
#: On admitted requests, to the distributor: the items and series counted in the body.
ITEMS_HEADER = HEADER_PREFIX + "items"
SERIES_HEADER = HEADER_PREFIX + "series"
#: On denials, to the client: why (a core.verdict.Cause value).
REASON_HEADER = HEADER_PREFIX + "reason"
#: Set by NGINX on every answer: which way this phase sent the write (envoy or distributor).
ROUTE_HEADER = "X-Mimir-Edge-Route"

# Dynamic metadata the Check answer sets on admitted requests (namespace: the ext_authz filter).
METADATA_NAMESPACE = "envoy.filters.http.ext_authz"
#: The item count: the rate limit filter's `hits_addend` for the items bucket.
METADATA_HITS = "hits"
METADATA_SERIES = "series"
METADATA_TENANT = "tenant"
#: The write's protocol (remote_write or otlp), for the rate limit filter's descriptor.
METADATA_PROTOCOL = "protocol"

# The rate limit filter (`charge=ratelimit`).
RATELIMIT_DOMAIN = "mimir-edge"
#: The one descriptor entry the RLS knows: `[(TENANT_DESCRIPTOR_KEY, tenant)]`.
TENANT_DESCRIPTOR_KEY = "tenant"
#: Optional second entry `(PROTOCOL_DESCRIPTOR_KEY, "remote_write" | "otlp")`, taken from
#: METADATA_PROTOCOL: only labels the decision (metrics, admin stats); both share one budget.
PROTOCOL_DESCRIPTOR_KEY = "protocol"
#: Set by the generated Envoy config (`check_settings.context_extensions`) when the rate limit
#: filter charges the buckets: Check then only counts, so each request is charged once.
CHARGE_EXTENSION = "mimir_edge_charge"
CHARGE_BY_RATELIMIT = "ratelimit"
