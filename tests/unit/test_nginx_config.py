"""The NGINX configs as text: the committed examples are exactly the renderer's output, each phase
has the properties the rollout relies on, and the HPA examples target the right Deployments.
(NGINX itself runs them in tests/integration/test_nginx_*.py.)"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from mimir_edge import cli
from mimir_edge.deploy.nginx import (
    EXAMPLE_NAMES,
    INFLUX_PATH,
    MIRROR_OTLP_PATH,
    MIRROR_PATH,
    OTLP_PATH,
    REGENERATE,
    NginxOptions,
    configmap_yaml,
    digest_of,
    example_options,
    healthz_body,
    murmur_hash2,
    on_canary,
    phase_options,
    render,
)
from mimir_edge.localstack import nginx as local_nginx
from mimir_edge.localstack.processes import MissingProgram

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_committed_example_is_the_renderer_output(name: str) -> None:
    path = EXAMPLES / f"nginx-{name}.yaml"
    assert path.exists(), f"{path} is missing: run `{REGENERATE}` and commit"
    assert path.read_text() == configmap_yaml(example_options(name)), f"{path} is stale: run `{REGENERATE}` and commit"
    assert f"`{REGENERATE}`" in path.read_text().splitlines()[1]


def test_no_other_nginx_examples() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("nginx-*.yaml")) == sorted(f"nginx-{n}.yaml" for n in EXAMPLE_NAMES)


def test_the_regeneration_command_writes_exactly_the_committed_files(tmp_path: Path) -> None:
    assert cli.main(["render-nginx", "--all-examples", str(tmp_path)]) == 0
    for name in EXAMPLE_NAMES:
        assert (tmp_path / f"nginx-{name}.yaml").read_text() == (EXAMPLES / f"nginx-{name}.yaml").read_text()


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_configmap_carries_the_config_and_its_phase(name: str) -> None:
    doc = yaml.safe_load((EXAMPLES / f"nginx-{name}.yaml").read_text())
    assert doc["metadata"]["name"] == "mimir-edge-nginx"
    assert "namespace" not in doc["metadata"]  # `kubectl -n` decides
    assert doc["metadata"]["annotations"] == {"mimir-edge.io/phase": name}
    assert doc["data"]["nginx.conf"] == render(example_options(name))


def test_no_phase_splits_by_request_and_canary_splits_by_tenant() -> None:
    for name in EXAMPLE_NAMES:
        assert "request_id" not in render(example_options(name))
    canary = render(example_options("canary-25"))
    assert 'split_clients "${tenant}" $edge_route {\n        25% envoy;\n        * distributor;\n    }' in canary
    assert "proxy_pass http://$edge_route/api/v1/push;" in canary
    # 100 %: every hash value, including 0xffffffff, which a lone "100% envoy;" range would miss
    assert "        * envoy;" in render(example_options("canary-100"))


def test_direct_has_no_envoy_and_full_has_no_direct_path() -> None:
    direct = render(example_options("direct"))
    assert "upstream envoy" not in direct and "http://envoy" not in direct and "mirror" not in direct
    assert "proxy_pass http://distributor/api/v1/push;" in direct
    full = render(example_options("full"))
    assert "proxy_pass http://envoy/api/v1/push;" in full
    assert "http://distributor" not in full


def test_mirror_writes_to_the_distributor_and_copies_to_envoy_off_the_push_path() -> None:
    mirror = render(example_options("mirror"))
    assert "mirror /_mimir_edge_mirror;\n            mirror_request_body on;" in mirror
    assert "proxy_pass http://distributor/api/v1/push;" in mirror
    assert f"proxy_pass http://envoy{MIRROR_PATH};" in mirror
    assert "internal;" in mirror
    assert 'Content-Length ""' not in mirror  # the original plan's mirror config dropped the body's length


def location(text: str, path: str) -> str:
    """The body of `location = path { ... }` in a rendered config."""
    start = text.index(f"        location = {path} {{\n")
    return text[start : text.index("\n        }\n", start)]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_otlp_takes_the_route_remote_write_takes_in_every_phase(name: str) -> None:
    text = render(example_options(name))
    push, otlp = location(text, "/api/v1/push"), location(text, OTLP_PATH)
    # Same block but for the path (and its mirror copy's location): same target, same route header.
    assert otlp.replace(OTLP_PATH, "/api/v1/push").replace("_mirror_otlp", "_mirror") == push
    assert f"/api/v1/push{OTLP_PATH}" not in text  # the OTLP path is never appended to the push path
    target = {"direct": "distributor", "mirror": "distributor", "full": "envoy"}.get(name, "$edge_route")
    assert f"proxy_pass http://{target}{OTLP_PATH};" in otlp


def test_mirror_copies_otlp_to_a_path_the_rls_counts_as_otlp() -> None:
    mirror = render(example_options("mirror"))
    assert "mirror /_mimir_edge_mirror_otlp;\n            mirror_request_body on;" in location(mirror, OTLP_PATH)
    copy = location(mirror, "/_mimir_edge_mirror_otlp")
    assert "internal;" in copy and f"proxy_pass http://envoy{MIRROR_OTLP_PATH};" in copy
    assert MIRROR_OTLP_PATH == MIRROR_PATH + OTLP_PATH  # still ends in Mimir's OTLP path: see rls/enforcer.py


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_other_paths_get_a_404_naming_the_served_writes(name: str) -> None:
    text = render(example_options(name))
    assert "upstream passthrough" not in text
    assert (
        '        location / {\n            default_type text/plain;\n            return 404 "this NGINX serves only '
        f'the writes /api/v1/push and {OTLP_PATH}; queries, rules and Alertmanager go to Mimir directly\\n";'
    ) in text


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_passthrough_sends_every_other_path_untouched_but_never_an_uncounted_write(name: str) -> None:
    text = render(phase_options(name, NginxOptions(passthrough=("mimir-gateway.mimir.svc", 80))))
    assert "    upstream passthrough {\n        server mimir-gateway.mimir.svc:80;" in text
    other = text[text.index("        location / {") :]
    # No URI on proxy_pass: the client's URI and query string go through unchanged.
    assert "proxy_pass http://passthrough;" in other and "return 404" not in other
    assert "proxy_read_timeout 300s;" in other  # above Mimir's 2 m query timeout
    influx = text[text.index(f"        location ^~ {INFLUX_PATH} {{") :]
    assert influx.index("return 404") < influx.index("}")


def test_remote_write_essentials() -> None:
    text = render(NginxOptions(client_max_body_size=52428800))
    for line in (
        "client_max_body_size 52428800;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "keepalive 64;",
        "proxy_set_header X-Scope-OrgID $tenant;",
        "proxy_intercept_errors off;",
        "location = /healthz {",
    ):
        assert line in text
    assert "proxy_hide_header" not in text and "proxy_request_buffering off" not in text


def test_basic_auth_map() -> None:
    text = render(NginxOptions(basic_auth_tenants=(("team-a", "pw"),), tenant_header="X-Tenant"))
    assert '"Basic dGVhbS1hOnB3" "team-a";' in text  # base64("team-a:pw")
    assert 'map $http_x_tenant $tenant {\n        "" $basic_auth_tenant;\n        default $http_x_tenant;' in text
    assert "proxy_set_header X-Tenant $tenant;" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"phase": "shadow"}, "phase must be one of"),
        ({"phase": "canary", "canary_percent": 0}, "1-100"),
        ({"phase": "canary", "canary_percent": 101}, "1-100"),
        ({"phase": "full", "canary_percent": 10}, "only meaningful"),
        ({"basic_auth_tenants": (('bad"user', "pw"),)}, "not a valid Mimir tenant id"),
        ({"basic_auth_tenants": (("user", ""),)}, "one-line password"),
        ({"distributor": ("mimir; evil", 80)}, "not a valid host:port"),
        ({"tenant_header": "X Scope"}, "not a header name"),
        ({"upstream_path": "api/v1/push"}, "plain absolute path"),
        ({"client_max_body_size": 0}, "positive"),
        ({"push_path": OTLP_PATH}, "already routes"),
        ({"push_path": MIRROR_PATH}, "already routes"),
        ({"passthrough": ("gateway; evil", 80)}, "not a valid host:port"),
    ],
)
def test_invalid_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NginxOptions(**kwargs)  # type: ignore[arg-type]


def test_digest_names_the_text_and_healthz_answers_it() -> None:
    a, b = render(example_options("canary-10")), render(example_options("canary-25"))
    assert digest_of(a) != digest_of(b)
    assert healthz_body(example_options("canary-10")) == f"ok canary-10 {digest_of(a)}\n"
    assert f'return 200 "ok canary-10 {digest_of(a)}\\n";' in a


def test_murmur_hash2_reference_values() -> None:
    # NGINX's own split_clients agrees with this port for 2,000 tenants in
    # tests/integration/test_nginx_canary.py; pinned here so a change shows up without NGINX.
    assert murmur_hash2(b"") == 0
    assert [murmur_hash2(s) for s in (b"a", b"ab", b"abc", b"abcd", b"tenant-0001")] == [
        0x92685F5E,
        0x1AA14063,
        0x13577C9B,
        0x26873021,
        0xFF9C821E,
    ]


def test_on_canary_is_monotonic_in_the_percentage() -> None:
    tenants = [f"t-{random.Random(i).random()}" for i in range(500)]
    previous: set[str] = set()
    for percent in range(1, 101):
        current = {t for t in tenants if on_canary(t, percent)}
        assert previous <= current
        previous = current
    assert previous == set(tenants)


def test_render_nginx_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["render-nginx", "--phase", "canary", "--percent", "25", "--distributor", "10.0.0.1:80"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out == render(
        NginxOptions(phase="canary", canary_percent=25, distributor=("10.0.0.1", 80))
    )
    out = tmp_path / "cm.yaml"
    assert cli.main(["render-nginx", "--phase", "mirror", "--configmap", "edge", "-o", str(out)]) == 0
    assert out.read_text() == configmap_yaml(NginxOptions(phase="mirror"), "edge")
    assert cli.main(["render-nginx", "--phase", "full", "--basic-auth-tenant", "nopassword"]) == 2
    assert "USER:PASSWORD" in capsys.readouterr().err
    assert cli.main(["render-nginx"]) == 2
    capsys.readouterr()
    assert cli.main(["render-nginx", "--phase", "full", "--passthrough", "gateway:80"]) == 0
    assert capsys.readouterr().out == render(NginxOptions(phase="full", passthrough=("gateway", 80)))


def test_missing_nginx_fails_saying_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(local_nginx, "SYSTEM_NGINX", "/nonexistent/nginx")
    with pytest.raises(MissingProgram, match="apt-get install nginx"):
        local_nginx.nginx_binary()


@pytest.mark.parametrize(
    ("path", "deployment", "component"),
    [("hpa-rls.yaml", "mimir-rls", "rls"), ("hpa-envoy.yaml", "mimir-envoy", "envoy")],
)
def test_hpa_examples(path: str, deployment: str, component: str) -> None:
    doc = yaml.safe_load((EXAMPLES / path).read_text())
    assert doc["apiVersion"] == "autoscaling/v2" and doc["kind"] == "HorizontalPodAutoscaler"
    spec = doc["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment}
    # The same floor and ceiling as the chart's production values (sized in docs/deployment-guide.md).
    production = yaml.safe_load((EXAMPLES.parent / "charts/mimir-edge-enforcement/values-production.yaml").read_text())
    values = production[component]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (values["replicas"], values["autoscaling"]["maxReplicas"])
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
