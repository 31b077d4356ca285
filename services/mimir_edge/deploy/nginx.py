"""The NGINX config for each rollout phase, as `mimir-edge render-nginx` prints it.

Both of Mimir's write paths are routed by phase: remote_write (`push_path`) and OTLP
(`/otlp/v1/metrics`), always the same way for one tenant.

- `direct` (rollback): every write straight to the distributor; no Envoy anywhere.
- `mirror`: every write goes to the distributor (the one real write) and is mirrored to Envoy,
  whose answer NGINX discards. Envoy in mirror mode answers the copy itself (shadow decision,
  204). The copy is also sent to a path the distributor does not ingest (`MIRROR_PATH`, and
  `MIRROR_OTLP_PATH` for OTLP, which still ends in the OTLP path so the RLS counts it as OTLP),
  so even an Envoy that forwards cannot make Mimir ingest a write twice.
- `canary`: `split_clients` on the tenant (never on the request id): a tenant is wholly enforced
  or wholly not, for both protocols. NGINX hashes the key with MurmurHash2 and the percentages
  are cumulative ranges of the hash, so raising the percentage only moves tenants from direct to
  Envoy (`on_canary` predicts the side of a tenant).
- `full`: every write through Envoy.

Every other path (queries, rules, Alertmanager, ...) is the same in every phase: a phase changes
where a write goes, never which paths are served. Without `passthrough` they get a 404 naming what
is served (the edge fronts writes only); with `passthrough` (Mimir's gateway or query-frontend)
they go there untouched. Mimir's Influx write path is always refused: the edge cannot count it,
and passing it on would let a tenant over its limit write around the edge.

The tenant is the tenant header or, when it is absent, the user of a known basic-auth pair
(`basic_auth_tenants`): Prometheus 2.42 cannot send custom headers but does send basic auth.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, replace

from mimir_edge.contract import (
    DEFAULT_TENANT_HEADER,
    MIRROR_OTLP_PATH,
    MIRROR_PATH,
    OTLP_PATH,
    ROUTE_HEADER,
)

PHASES = ("direct", "mirror", "canary", "full")
CANARY_STEPS = (10, 25, 50, 75, 100)
#: The rollout's phases in order; each is one example ConfigMap (examples/nginx-<name>.yaml).
EXAMPLE_NAMES = ("direct", "mirror", *(f"canary-{p}" for p in CANARY_STEPS), "full")

DEFAULT_DISTRIBUTOR = ("distributor.mimir.svc.cluster.local", 8080)
#: The umbrella chart (charts/mimir-edge-enforcement) names Envoy's Service mimir-envoy; installed in the
#: namespace docs/deployment-guide.md uses.
DEFAULT_ENVOY = ("mimir-envoy.mimir-edge-enforcement.svc.cluster.local", 8080)
DEFAULT_CONFIGMAP = "mimir-edge-nginx"
PHASE_ANNOTATION = "mimir-edge.io/phase"
#: Mimir's Influx line protocol write path (experimental in Mimir): a write the edge cannot count.
INFLUX_PATH = "/api/v1/push/influx/write"
#: Seconds NGINX waits for a passed-through answer: above Mimir's default query timeout (2 m), so
#: a slow query is answered by Mimir, not cut off by NGINX.
PASSTHROUGH_READ_TIMEOUT_S = 300
REGENERATE = "mimir-edge render-nginx --all-examples examples/"

# Mimir's tenant id alphabet (a basic-auth user becomes a tenant id, and is quoted in the config).
_TENANT_ID = re.compile(r"^[A-Za-z0-9!\-_.*'()]{1,150}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]+$")
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
_PATH = re.compile(r"^/[A-Za-z0-9/_\-.]*$")
_DIR = re.compile(r"^/[A-Za-z0-9/_\-.]*$")


@dataclass(frozen=True, slots=True)
class NginxOptions:
    phase: str = "full"
    #: Tenants (in % of the hash space) sent through Envoy; canary only, 1-100.
    canary_percent: int = 0
    listen: tuple[str, int] = ("0.0.0.0", 8080)
    distributor: tuple[str, int] = DEFAULT_DISTRIBUTOR
    envoy: tuple[str, int] = DEFAULT_ENVOY
    tenant_header: str = DEFAULT_TENANT_HEADER
    #: At least the RLS's MAX_REQUEST_BYTES, so Envoy/RLS decide about large bodies, not NGINX.
    client_max_body_size: int = 52428800
    #: (user, password) pairs: `Authorization: Basic base64(user:password)` → tenant `user`.
    basic_auth_tenants: tuple[tuple[str, str], ...] = ()
    #: The path clients push to, and the path the distributor is called with (a receiving
    #: Prometheus wants /api/v1/write).
    push_path: str = "/api/v1/push"
    upstream_path: str = "/api/v1/push"
    #: pid and temp files; must be writable (in Kubernetes: an emptyDir on /tmp).
    runtime_dir: str = "/tmp"
    #: Where every path that is not a write goes, untouched (Mimir's gateway or query-frontend);
    #: None: those paths get a 404 naming what this NGINX serves.
    passthrough: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}, got {self.phase!r}")
        if self.phase == "canary" and not 1 <= self.canary_percent <= 100:
            raise ValueError(f"canary percent must be 1-100, got {self.canary_percent}")
        if self.phase != "canary" and self.canary_percent:
            raise ValueError("a canary percent is only meaningful in the canary phase")
        addresses = (self.listen, self.distributor, self.envoy, *((self.passthrough,) if self.passthrough else ()))
        for host, port in addresses:
            if not _HOST.match(host) or not 0 <= port < 65536:
                raise ValueError(f"{host}:{port} is not a valid host:port")
        if not _HEADER.match(self.tenant_header):
            raise ValueError(f"{self.tenant_header!r} is not a header name")
        if self.client_max_body_size < 1:
            raise ValueError("client_max_body_size must be positive")
        for user, password in self.basic_auth_tenants:
            if not _TENANT_ID.match(user):
                raise ValueError(f"basic-auth user {user!r} is not a valid Mimir tenant id")
            if not password or "\n" in password:
                raise ValueError(f"basic-auth user {user!r} needs a one-line password")
        for path in (self.push_path, self.upstream_path):
            if not _PATH.match(path):
                raise ValueError(f"{path!r} is not a plain absolute path")
        if self.push_path in (OTLP_PATH, INFLUX_PATH, MIRROR_PATH, MIRROR_OTLP_PATH, "/healthz"):
            raise ValueError(f"push path {self.push_path!r} is a path this config already routes")
        if not _DIR.match(self.runtime_dir):
            raise ValueError(f"{self.runtime_dir!r} is not a plain absolute directory")

    @property
    def name(self) -> str:
        """The rollout phase: direct, mirror, canary-<percent>, full."""
        return f"canary-{self.canary_percent}" if self.phase == "canary" else self.phase


def example_options(name: str) -> NginxOptions:
    """The options of examples/nginx-<name>.yaml (in-cluster default addresses)."""
    if name not in EXAMPLE_NAMES:
        raise ValueError(f"no example {name!r}; one of {', '.join(EXAMPLE_NAMES)}")
    if name.startswith("canary-"):
        return NginxOptions(phase="canary", canary_percent=int(name.removeprefix("canary-")))
    return NginxOptions(phase=name)


def phase_options(name: str, base: NginxOptions) -> NginxOptions:
    """`base` (addresses, header, ...) in the rollout phase `name`."""
    example = example_options(name)
    return replace(base, phase=example.phase, canary_percent=example.canary_percent)


def murmur_hash2(data: bytes) -> int:
    """NGINX's ngx_murmur_hash2 (seed 0), the hash split_clients puts its key through."""
    m = 0x5BD1E995
    h = len(data) & 0xFFFFFFFF
    full = len(data) - len(data) % 4
    for i in range(0, full, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = data[full:]
    if rest:  # the 1-3 trailing bytes, little-endian, as the C switch's fall-through does
        h ^= int.from_bytes(rest, "little")
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def on_canary(tenant: str, percent: int) -> bool:
    """Whether NGINX's canary config at `percent` sends `tenant` through Envoy."""
    if percent >= 100:
        return True
    # split_clients: the first `percent` of the 32-bit hash space (cumulative, in 1/100 %).
    return murmur_hash2(tenant.encode()) < percent * 100 * 0xFFFFFFFF // 10000


def _variable(header: str) -> str:
    return "$http_" + header.lower().replace("-", "_")


def _tenant_maps(options: NginxOptions) -> list[str]:
    header_var = _variable(options.tenant_header)
    lines = []
    if options.basic_auth_tenants:
        lines += [
            "    # Basic-auth user → tenant, for clients that cannot send the tenant header. Exact",
            "    # credentials only: an unknown pair gives no tenant, which Envoy/Mimir answer with 401.",
            "    map $http_authorization $basic_auth_tenant {",
            '        default "";',
        ]
        for user, password in options.basic_auth_tenants:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            lines.append(f'        "Basic {token}" "{user}";')
        lines += ["    }", ""]
        fallback = "$basic_auth_tenant"
    else:
        fallback = '""'
    lines += [
        f"    # The tenant: the {options.tenant_header} header, else the basic-auth tenant.",
        f"    map {header_var} $tenant {{",
        f'        "" {fallback};',
        f"        default {header_var};",
        "    }",
        "",
    ]
    return lines


def _route(options: NginxOptions) -> list[str]:
    if options.phase == "canary":
        rule = (
            ["        * envoy;  # 100 %: every tenant"]
            if options.canary_percent == 100
            else [f"        {options.canary_percent}% envoy;", "        * distributor;"]
        )
        return [
            "    # By tenant, never by request: each tenant's traffic is wholly enforced or not at all.",
            "    # MurmurHash2 of the tenant against cumulative ranges: raising the percentage only moves",
            "    # tenants from the distributor to Envoy. Requests without a tenant all land on one side,",
            "    # where they get 401.",
            '    split_clients "${tenant}" $edge_route {',
            *rule,
            "    }",
            "",
        ]
    label = {"direct": "distributor", "mirror": "distributor+mirror", "full": "envoy"}[options.phase]
    return [
        f"    # Where this phase sends a write (logged and returned as {ROUTE_HEADER}).",
        "    map $tenant $edge_route {",
        f"        default {label};",
        "    }",
        "",
    ]


def _upstream(name: str, address: tuple[str, int]) -> list[str]:
    host, port = address
    return [
        f"    upstream {name} {{",
        f"        server {host}:{port};",
        "        keepalive 64;",
        "        keepalive_timeout 60s;",
        "    }",
        "",
    ]


def _write_location(options: NginxOptions, path: str, upstream_path: str, mirror: tuple[str, str]) -> list[str]:
    """One write path, routed by phase; `mirror` is (internal location, path at Envoy) of its copy."""
    mirror_location, mirror_path = mirror
    lines = [f"        location = {path} {{"]
    if options.phase == "canary":
        target = f"http://$edge_route{upstream_path}"
    elif options.phase == "full":
        target = f"http://envoy{upstream_path}"
    else:
        target = f"http://distributor{upstream_path}"
    if options.phase == "mirror":
        lines += [
            "            # The copy to Envoy: read the body once, send it to both; the copy's answer is",
            "            # discarded. The client's answer is the distributor's.",
            f"            mirror {mirror_location};",
            "            mirror_request_body on;",
        ]
    lines += [
        f"            add_header {ROUTE_HEADER} $edge_route always;",
        f"            proxy_pass {target};",
        "        }",
        "",
    ]
    if options.phase == "mirror":
        lines += [
            f"        location = {mirror_location} {{",
            "            internal;",
            "            # Short timeouts: NGINX answers the client at once, but the client's next request on",
            "            # the same keep-alive connection waits until this copy is done. Envoy answers within",
            "            # its ext_authz timeout (0.5 s) even when the RLS hangs.",
            "            proxy_connect_timeout 1s;",
            "            proxy_send_timeout 2s;",
            "            proxy_read_timeout 2s;",
            f"            proxy_pass http://envoy{mirror_path};",
            "        }",
            "",
        ]
    return lines


def _write_locations(options: NginxOptions) -> list[str]:
    return [
        "        # remote_write.",
        *_write_location(options, options.push_path, options.upstream_path, ("/_mimir_edge_mirror", MIRROR_PATH)),
        "        # OTLP: the same route as remote_write for the same tenant (one budget, one side of the",
        "        # canary). The path reaches Envoy unchanged: the RLS counts a write as OTLP by its path.",
        *_write_location(options, OTLP_PATH, OTLP_PATH, ("/_mimir_edge_mirror_otlp", MIRROR_OTLP_PATH)),
    ]


def served_paths(options: NginxOptions) -> str:
    """The write paths this NGINX routes, as its 404 names them."""
    return f"{options.push_path} and {OTLP_PATH}"


def _other_locations(options: NginxOptions) -> list[str]:
    lines = [
        "        # A write the edge cannot count: refused in every phase rather than passed around the limits.",
        f"        location ^~ {INFLUX_PATH} {{",
        "            default_type text/plain;",
        f'            return 404 "Influx writes are not enforced by Mimir Edge Enforcement; send remote_write to '
        f'{options.push_path} or OTLP to {OTLP_PATH}\\n";',
        "        }",
        "",
    ]
    if options.passthrough is None:
        return [
            *lines,
            "        # The edge fronts writes only: queries, rules and Alertmanager go to Mimir another way",
            "        # (render with --passthrough to pass them on from here).",
            "        location / {",
            "            default_type text/plain;",
            f'            return 404 "this NGINX serves only the writes {served_paths(options)}; queries, rules '
            'and Alertmanager go to Mimir directly\\n";',
            "        }",
        ]
    return [
        *lines,
        "        # Every other path (queries, rules, Alertmanager, Mimir's UI) to Mimir untouched: URI,",
        "        # query string, headers and the tenant as the client sent them.",
        "        location / {",
        f"            add_header {ROUTE_HEADER} passthrough always;",
        f"            proxy_read_timeout {PASSTHROUGH_READ_TIMEOUT_S}s;",
        "            proxy_pass http://passthrough;",
        "        }",
    ]


def _describe(options: NginxOptions) -> str:
    return {
        "direct": "every write straight to the distributor, no Envoy (the rollback config)",
        "mirror": "every write to the distributor, a copy to Envoy (shadow; its answer discarded)",
        "canary": f"{options.canary_percent} % of tenants (by tenant) through Envoy, the rest straight "
        "to the distributor",
        "full": "every write through Envoy",
    }[options.phase]


def _render(options: NginxOptions, digest: str) -> str:
    run = options.runtime_dir.rstrip("/") or ""
    listen_host, listen_port = options.listen
    lines = [
        f"# Mimir Edge Enforcement NGINX, phase {options.name}: {_describe(options)}.",
        f"# Generated by `mimir-edge render-nginx`; edit its options, not this file. Config digest {digest}",
        "# (GET /healthz answers it, so you can see which config a pod runs).",
        f"# Needs a writable {run}/ for the pid and temp files (an emptyDir with a read-only root filesystem).",
        "worker_processes auto;",
        f"pid {run}/nginx.pid;",
        "error_log stderr warn;",
        "",
        "events {",
        "    worker_connections 4096;",
        "}",
        "",
        "http {",
        f"    client_body_temp_path {run}/client_temp;",
        f"    proxy_temp_path {run}/proxy_temp;",
        f"    fastcgi_temp_path {run}/fastcgi_temp;",
        f"    uwsgi_temp_path {run}/uwsgi_temp;",
        f"    scgi_temp_path {run}/scgi_temp;",
        "    server_tokens off;",
        "",
        "    # remote_write bodies: up to MAX_REQUEST_BYTES; typical ones (a few hundred KB) stay in memory.",
        f"    client_max_body_size {options.client_max_body_size};",
        "    client_body_buffer_size 1m;",
        "    client_body_timeout 30s;",
        "    send_timeout 30s;",
        "    keepalive_timeout 75s;",
        "",
        *_tenant_maps(options),
        *_route(options),
        "    log_format edge '$remote_addr [$time_local] \"$request\" $status $body_bytes_sent '",
        "                    'tenant=\"$tenant\" route=$edge_route upstream=$upstream_addr '",
        "                    'upstream_status=$upstream_status rt=$request_time urt=$upstream_response_time';",
        "    access_log /dev/stdout edge;",
        "",
        "    # Idle upstream connections are closed after 60 s: below the upstreams' own idle timeout",
        "    # (Mimir's is 120 s), so NGINX never writes a POST into a connection the upstream is",
        "    # closing (NGINX does not retry a POST; the client would see a 502).",
        *_upstream("distributor", options.distributor),
    ]
    if options.phase != "direct":
        lines += _upstream("envoy", options.envoy)
    if options.passthrough is not None:
        lines += _upstream("passthrough", options.passthrough)
    lines += [
        "    server {",
        f"        listen {listen_host}:{listen_port};",
        "",
        "        # Keepalive to the upstreams; every client header (Content-Encoding, Content-Type,",
        "        # X-Prometheus-Remote-Write-Version, ...) is passed on, and every upstream status and",
        "        # header (429 with Retry-After, the RW 2.0 written counts) goes back unchanged.",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        f"        proxy_set_header {options.tenant_header} $tenant;",
        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "        proxy_connect_timeout 5s;",
        "        proxy_send_timeout 30s;",
        "        proxy_read_timeout 30s;",
        "        proxy_intercept_errors off;",
        "",
        "        location = /healthz {",
        "            access_log off;",
        "            default_type text/plain;",
        f'            return 200 "ok {options.name} {digest}\\n";',
        "        }",
        "",
        *_write_locations(options),
        *_other_locations(options),
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def render(options: NginxOptions) -> str:
    """The whole nginx.conf; its digest (in the header and in /healthz) names this exact text."""
    digest = hashlib.sha256(_render(options, "-").encode()).hexdigest()[:12]
    return _render(options, digest)


def digest_of(text: str) -> str:
    """The config digest a rendered nginx.conf carries (what its /healthz answers)."""
    found = re.search(r"Config digest ([0-9a-f]{12})", text)
    if not found:
        raise ValueError("not a config rendered by mimir-edge render-nginx")
    return found.group(1)


def healthz_body(options: NginxOptions) -> str:
    """What GET /healthz answers when NGINX runs `render(options)`."""
    return f"ok {options.name} {digest_of(render(options))}\n"


def configmap_yaml(options: NginxOptions, name: str = DEFAULT_CONFIGMAP) -> str:
    """A Kubernetes ConfigMap (data key nginx.conf) holding `render(options)`, annotated with its phase."""
    if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", name):
        raise ValueError(f"{name!r} is not a valid ConfigMap name")
    body = "".join(f"    {line}\n" if line else "\n" for line in render(options).splitlines())
    return (
        f"# NGINX for Mimir Edge Enforcement, phase {options.name}: {_describe(options)}.\n"
        f"# Generated by `{REGENERATE}` (or `mimir-edge render-nginx --phase ...`):\n"
        "# edit the renderer (services/mimir_edge/deploy/nginx.py), not this file.\n"
        f"# Apply with `mimir-edge rollout {'rollback' if options.phase == 'direct' else options.name}`.\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  labels:\n"
        "    app.kubernetes.io/name: mimir-edge-nginx\n"
        "    app.kubernetes.io/part-of: mimir-edge-enforcement\n"
        "  annotations:\n"
        f"    {PHASE_ANNOTATION}: {options.name}\n"
        "data:\n"
        "  nginx.conf: |\n"
        f"{body}"
    )
