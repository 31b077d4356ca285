"""The Envoy chart renders the same bootstrap as `mimir-edge render-envoy`, and real Envoy accepts it.

For every mode x charge x ext_authz transport, the ConfigMap's envoy.yaml from `helm template` is compared, as parsed
YAML, with `mimir_edge.deploy.envoy.render()` given the same options; then `envoy --mode validate`
checks the helm-rendered file itself.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from mimir_edge.address import parse_host_port
from mimir_edge.config_reference import rls_parser
from mimir_edge.deploy.envoy import CHARGES, DEFAULT_TRANSPORT, MODES, TRANSPORTS, EnvoyOptions, render
from mimir_edge.localstack.envoy import envoy_binary
from mimir_edge.localstack.processes import MissingProgram

from tests.k8s_tools import (
    CHARTS,
    NAMESPACE,
    UMBRELLA,
    Helm,
    HelmFailed,
    Manifest,
    container,
    helm_binary,
    kinds,
    one,
    selects,
    values_file,
)

ENVOY = "mimir-envoy"
#: The rate limit filter speaks gRPC only: charge=ratelimit goes with the gRPC transport.
#: "" leaves config.authzTransport at its default (http, or grpc with charge=ratelimit).
CASES = [
    (mode, charge, transport)
    for mode in MODES
    for charge in CHARGES
    for transport in ("", *TRANSPORTS)
    if not (charge == "ratelimit" and transport == "http")
]
#: The RLS's default ports per transport, from its parser (the chart's defaults must match them).
RLS_PORTS = {
    transport: parse_host_port(rls_parser().get_default(dest))[1]
    for transport, dest in (("grpc", "grpc_addr"), ("http", "authz_http_addr"))
}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def envoy() -> str:
    try:
        return envoy_binary()
    except MissingProgram as exc:
        pytest.fail(str(exc))


def bootstrap(manifests: list[Manifest], name: str = ENVOY) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(one(manifests, "ConfigMap", name)["data"]["envoy.yaml"])
    return parsed


def umbrella(
    helm: Helm, mode: str, charge: str, transport: str = "", extra: dict[str, str] | None = None
) -> list[Manifest]:
    """The umbrella chart with production values; transport "" keeps the chart's default."""
    sets = {"envoy.config.mode": mode, "envoy.config.charge": charge, **(extra or {})}
    if transport:
        sets["envoy.config.authzTransport"] = transport
    return helm.template(UMBRELLA, [values_file("production")], sets)


@pytest.mark.parametrize(("mode", "charge", "transport"), CASES)
def test_umbrella_envoy_config_is_render_envoys(
    helm: Helm, envoy: str, tmp_path: Path, mode: str, charge: str, transport: str
) -> None:
    manifests = umbrella(helm, mode, charge, transport)
    got = bootstrap(manifests)
    port = RLS_PORTS[transport or DEFAULT_TRANSPORT[charge]]
    want = render(
        EnvoyOptions(
            rls=((f"mimir-rls-headless.{NAMESPACE}.svc.cluster.local", port),),
            upstream=("distributor.mimir.svc.cluster.local", 8080),
            mode=mode,
            charge=charge,
            authz_transport=transport,
            listen=("0.0.0.0", 8080),
            admin=("0.0.0.0", 9901),
            max_request_bytes=52428800,
            tenant_header="X-Scope-OrgID",
            failure_mode_allow=False,
        )
    )
    assert got == want

    path = tmp_path / "envoy.yaml"
    path.write_text(one(manifests, "ConfigMap", ENVOY)["data"]["envoy.yaml"])
    done = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("mode", "charge", "transport"),
    [("mirror", "ratelimit", "grpc"), ("full", "check", "grpc"), ("full", "check", "http"), ("canary", "check", "")],
)
def test_every_option_reaches_the_config(helm: Helm, tmp_path: Path, mode: str, charge: str, transport: str) -> None:
    """Non-default values everywhere, IP addresses (STATIC clusters) included: still equal."""
    config = {
        "mode": mode,
        "charge": charge,
        "authzTransport": transport,
        "rlsHttpPort": 18083,
        "listenPort": 18080,
        "adminPort": 19901,
        "rls": {"host": "10.0.0.7", "port": 18081},
        "upstream": {"host": "mimir-distributor.mimir.svc", "port": 9009},
        "maxRequestBytes": 1048576,
        "tenantHeader": "X-Tenant-ID",
        "failureModeAllow": False,
        "authzTimeoutSeconds": 0.25,
        "upstreamTimeoutSeconds": 12.5,
    }
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"config": config}))
    manifests = helm.template(CHARTS / "envoy", [values], release="edge", namespace="obs")
    want = render(
        EnvoyOptions(
            rls=(("10.0.0.7", 18081 if transport == "grpc" else 18083),),  # "" is http with charge check
            upstream=("mimir-distributor.mimir.svc", 9009),
            mode=mode,
            charge=charge,
            authz_transport=transport,
            listen=("0.0.0.0", 18080),
            admin=("0.0.0.0", 19901),
            max_request_bytes=1048576,
            tenant_header="X-Tenant-ID",
            failure_mode_allow=False,
            authz_timeout_s=0.25,
            upstream_timeout_s=12.5,
        )
    )
    assert bootstrap(manifests, "edge-envoy") == want
    d = one(manifests, "Deployment", "edge-envoy")
    ports = {p["name"]: p["containerPort"] for p in container(d, "envoy")["ports"]}
    assert ports == {"http": 18080, "admin": 19901}
    service = one(manifests, "Service", "edge-envoy")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"http": 18080, "admin": 19901}


@pytest.mark.parametrize(("transport", "port_name"), [("grpc", "grpc"), ("http", "authz-http")])
def test_envoy_reaches_every_rls_replica_through_the_headless_service(
    helm: Helm, transport: str, port_name: str
) -> None:
    manifests = umbrella(helm, "full", "check", transport)
    (endpoint,) = bootstrap(manifests)["static_resources"]["clusters"][0]["load_assignment"]["endpoints"]
    address = endpoint["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    service_name = address["address"].removesuffix(f".{NAMESPACE}.svc.cluster.local")
    service = one(manifests, "Service", service_name)
    assert service["spec"]["clusterIP"] == "None"
    assert address["port_value"] in {p["port"] for p in service["spec"]["ports"] if p["name"] == port_name}
    rls = one(manifests, "Deployment", "mimir-rls")
    assert selects(service["spec"]["selector"], rls["spec"]["template"]["metadata"]["labels"])
    ports = {p["name"]: p["containerPort"] for p in container(rls, "rls")["ports"]}
    env = {e["name"]: e.get("value") for e in container(rls, "rls")["env"]}
    assert env["AUTHZ_HTTP_ADDR"] == f"0.0.0.0:{ports['authz-http']}"
    assert env["GRPC_ADDR"] == f"0.0.0.0:{ports['grpc']}"


@pytest.mark.parametrize("charge", CHARGES)
def test_the_default_transport_is_http_and_grpc_for_ratelimit_charging(helm: Helm, charge: str) -> None:
    rls = bootstrap(umbrella(helm, "full", charge))["static_resources"]["clusters"][0]
    http = "http_health_check" in rls["health_checks"][0]
    assert http is (charge == "check")
    assert (
        rls["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"]
        == RLS_PORTS["http" if http else "grpc"]
    )


@pytest.mark.parametrize(("charge", "transport"), [("check", "http"), ("check", "grpc"), ("ratelimit", "grpc")])
@pytest.mark.parametrize("allow", [True, False])
def test_one_value_sets_the_failure_mode_of_the_rls_and_of_envoy(
    helm: Helm, charge: str, transport: str, allow: bool
) -> None:
    """global.failureModeAllow is the only failure-mode value: the RLS's FAILURE_MODE_ALLOW, Envoy's
    ext_authz failure_mode_allow and (ratelimit charging) the rate limit filter's failure_mode_deny."""
    manifests = umbrella(helm, "full", charge, transport, {"global.failureModeAllow": str(allow).lower()})
    env = {e["name"]: e.get("value") for e in container(one(manifests, "Deployment", "mimir-rls"), "rls")["env"]}
    assert env["FAILURE_MODE_ALLOW"] == str(allow).lower()
    filters = bootstrap(manifests)["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]["http_filters"]
    modes = {f["name"]: f["typed_config"] for f in filters}
    assert modes["envoy.filters.http.ext_authz"]["failure_mode_allow"] is allow
    if charge == "ratelimit":
        assert modes["envoy.filters.http.ratelimit"]["failure_mode_deny"] is not allow


@pytest.mark.parametrize(
    ("sets", "error"),
    [
        ({"envoy.config.failureModeAllow": "true"}, "set global.failureModeAllow, not envoy.config.failureModeAllow"),
        ({"rls.config.failureModeAllow": "false"}, "set global.failureModeAllow, not rls.config.failureModeAllow"),
        # production: global.failureModeAllow false
        ({"rls.config.failureMode": "allow"}, "rls.config.failureMode allow contradicts global.failureModeAllow"),
        ({"envoy.config.rlsHttpPort": "9999"}, "rlsHttpPort"),
    ],
)
def test_the_umbrella_refuses_a_second_failure_mode_or_port(helm: Helm, sets: dict[str, str], error: str) -> None:
    with pytest.raises(HelmFailed, match=error):
        umbrella(helm, "full", "check", extra=sets)


def test_ratelimit_charge_over_http_is_refused_with_a_reason(helm: Helm) -> None:
    with pytest.raises(HelmFailed, match="the rate limit filter speaks gRPC only"):
        umbrella(helm, "full", "ratelimit", "http")


def test_envoy_pods_run_the_configmap_and_roll_when_it_changes(helm: Helm) -> None:
    checksums: dict[str, set[str]] = {}
    for mode, charge, transport in CASES:
        manifests = umbrella(helm, mode, charge, transport)
        d = one(manifests, "Deployment", ENVOY)
        pod = d["spec"]["template"]
        c = container(d, "envoy")
        assert c["command"] == ["envoy"]
        assert c["args"][:2] == ["-c", "/etc/envoy/envoy.yaml"]
        assert c["args"][c["args"].index("--concurrency") + 1] == "2"
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/envoy")
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == ENVOY
        config = json.dumps(bootstrap(manifests), sort_keys=True)
        checksums.setdefault(config, set()).add(pod["metadata"]["annotations"]["checksum/config"])
    # canary and full are the same Envoy config (they differ in NGINX): one checksum per config.
    assert all(len(sums) == 1 for sums in checksums.values())
    assert len(set.union(*checksums.values())) == len(checksums) == 6


@pytest.mark.parametrize("env", ["dev", "staging", "production"])
def test_each_environment_renders_a_valid_envoy_config(helm: Helm, envoy: str, tmp_path: Path, env: str) -> None:
    manifests = helm.template(UMBRELLA, [values_file(env)])
    assert len(kinds(manifests, "ConfigMap")) == 1
    path = tmp_path / "envoy.yaml"
    path.write_text(one(manifests, "ConfigMap", ENVOY)["data"]["envoy.yaml"])
    done = subprocess.run(
        [envoy, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
