"""docker-compose.yml agrees with the contract. There is no Docker engine on these machines (and
none in CI), so the file is checked, not run: every service's command goes through the real
argument parser of the program it names, env var names and ports match the contract, the mounted
Envoy and NGINX configs are fresh renders that real `envoy --mode validate` and `nginx -t` accept,
and every file it mounts exists."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from mimir_edge.address import parse_host_port
from mimir_edge.cli import build_parser as cli_parser
from mimir_edge.config_reference import env_vars, rls_parser
from mimir_edge.config_reference import sync_parser as sync_env_parser
from mimir_edge.deploy.envoy import EnvoyOptions, render_yaml
from mimir_edge.deploy.nginx import NginxOptions, render
from mimir_edge.localstack.envoy import envoy_binary
from mimir_edge.localstack.nginx import check_config
from mimir_edge.localstack.processes import MissingProgram
from mimir_edge.rls.enforcer import FailureMode
from mimir_edge.rls.settings import parse_settings
from mimir_edge.settings import parse_bool
from mimir_edge.sync.main import build_parser as sync_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
# The variables the programs' parsers read (docs/configuration.md is generated from the same parsers).
RLS_ENV = env_vars(rls_parser())
SYNC_ENV = env_vars(sync_env_parser())
SCRIPTS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
#: `make compose-configs`: the RLS's ext_authz HTTP ports (the default transport), and the RLS's
#: FAILURE_MODE_ALLOW as Envoy's failure mode.
ENVOY_OPTIONS = EnvoyOptions(
    rls=(("rls-1", 8083), ("rls-2", 8083), ("rls-3", 8083)),
    upstream=("distributor", 8080),
    listen=("0.0.0.0", 8080),
    admin=("0.0.0.0", 9901),
    failure_mode_allow=parse_bool(str(COMPOSE["x-rls"]["environment"]["FAILURE_MODE_ALLOW"])),
)
NGINX_OPTIONS = NginxOptions(
    phase="full", listen=("0.0.0.0", 8000), envoy=("envoy", 8080), distributor=("distributor", 8080), runtime_dir="/tmp"
)


def container_ports(service: dict[str, Any]) -> set[int]:
    published = {int(str(p).split(":")[-1]) for p in service.get("ports", [])}
    return published | {int(p) for p in service.get("expose", [])}


def port_of(address: str) -> int:
    return parse_host_port(address)[1]


def test_the_stack_has_every_component() -> None:
    assert {"redis", "overrides-sync", "rls-1", "rls-2", "rls-3", "distributor", "envoy", "nginx", "locust"} <= set(
        SERVICES
    )
    assert SERVICES["locust"]["profiles"] == ["load"], "locust is optional"
    locust = SERVICES["locust"]
    assert (ROOT / locust["build"]["dockerfile"]).is_file()
    locustfile = locust["command"][locust["command"].index("-f") + 1]
    mount = next(v for v in locust["volumes"] if locustfile.startswith(v.split(":")[1]))
    assert (ROOT / mount.split(":")[0] / Path(locustfile).name).is_file()
    assert locust["command"][locust["command"].index("--host") + 1] == "http://nginx:8000"


@pytest.mark.parametrize("name", ["rls-1", "rls-2", "rls-3"])
def test_rls_services_follow_the_contract(name: str, tmp_path: Path) -> None:
    service = SERVICES[name]
    assert service["build"] == "." and (ROOT / "Dockerfile").is_file()
    assert service["command"] == ["mimir-rls"] and "mimir-rls" in SCRIPTS
    env = {k: str(v) for k, v in service["environment"].items()}
    assert set(env) <= RLS_ENV, set(env) - RLS_ENV
    tokens = tmp_path / "tokens"
    tokens.write_text("x:y\n")
    settings = parse_settings([], env=env | {"ADMIN_TOKEN_FILE": str(tokens)})  # exits on any bad value
    ports = (settings.grpc_addr, settings.authz_http_addr, settings.admin_addr, settings.metrics_addr)
    assert tuple(port_of(a) for a in ports) == (8081, 8083, 8082, 9090)
    assert {8081, 8083, 8082, 9090} <= container_ports(service)
    assert settings.redis.url == "redis://redis:6379/0"
    assert service["read_only"] is True
    secret = COMPOSE["secrets"][service["secrets"][0]]["file"]
    assert (ROOT / secret).is_file() and env["ADMIN_TOKEN_FILE"].startswith("/run/secrets/")


def test_overrides_sync_service_parses_with_the_real_cli() -> None:
    service = SERVICES["overrides-sync"]
    command = service["command"]
    assert command[0] == "mimir-overrides-sync" and command[0] in SCRIPTS
    env = {k: str(v) for k, v in service["environment"].items()}
    assert set(env) <= SYNC_ENV, set(env) - SYNC_ENV
    args = sync_parser(env).parse_args(command[1:])
    assert args.source == "file" and args.redis_url == "redis://redis:6379/0"
    assert port_of(env["HTTP_ADDR"]) == 9091 and 9091 in container_ports(service)
    host_file, _, mounted = service["volumes"][0].partition(":")
    assert Path(mounted.removesuffix(":ro")) == Path(args.path) and (ROOT / host_file).is_file()


def test_stand_in_distributor_parses_and_matches_the_upstreams() -> None:
    command = SERVICES["distributor"]["command"]
    assert command[0] == "mimir-edge" and "mimir-edge" in SCRIPTS
    args = cli_parser().parse_args(command[1:])
    assert port_of(args.listen) == 8080 and 8080 in container_ports(SERVICES["distributor"])
    assert ENVOY_OPTIONS.upstream == ("distributor", 8080) == NGINX_OPTIONS.distributor


def test_envoy_config_is_a_fresh_render_that_envoy_accepts() -> None:
    mounted = SERVICES["envoy"]["volumes"][0].split(":")
    committed = (ROOT / mounted[0]).read_text()
    assert committed == render_yaml(ENVOY_OPTIONS), "run `make compose-configs` and commit"
    assert mounted[1] in SERVICES["envoy"]["command"]
    assert {8080, 9901} <= container_ports(SERVICES["envoy"])
    # Every RLS service is an endpoint, on its contract port.
    for name in ("rls-1", "rls-2", "rls-3"):
        assert f"address: {name}" in committed
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(ROOT / mounted[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_asks_over_http_and_fails_open_exactly_when_the_rls_does(tmp_path: Path) -> None:
    """Over HTTP Envoy applies its own failure mode to the RLS's 503: the two must agree."""
    envoy = yaml.safe_load((ROOT / SERVICES["envoy"]["volumes"][0].split(":")[0]).read_text())
    hcm = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    ext_authz = hcm["http_filters"][0]["typed_config"]
    assert "http_service" in ext_authz
    (tokens := tmp_path / "tokens").write_text("x:y\n")
    for name in ("rls-1", "rls-2", "rls-3"):
        env = {k: str(v) for k, v in SERVICES[name]["environment"].items()} | {"ADMIN_TOKEN_FILE": str(tokens)}
        settings = parse_settings([], env=env)
        assert settings.failure_mode is not FailureMode.LOCAL, "compose sets allow or deny"
        assert ext_authz["failure_mode_allow"] is settings.failure_mode_allow, name
    endpoints = envoy["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert {e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints} == {8083}


def test_nginx_config_is_a_fresh_render_that_nginx_accepts(tmp_path: Path) -> None:
    host_file, mounted, *_ = SERVICES["nginx"]["volumes"][0].split(":")
    committed = (ROOT / host_file).read_text()
    assert committed == render(NGINX_OPTIONS), "run `make compose-configs` and commit"
    assert mounted == "/etc/nginx/nginx.conf"
    assert 8000 in container_ports(SERVICES["nginx"])
    # NGINX resolves upstream names when it loads the config; there is no compose DNS here.
    local = committed.replace("server envoy:8080;", "server 127.0.0.1:9;")
    local = local.replace("server distributor:8080;", "server 127.0.0.1:9;")
    local = local.replace("listen 0.0.0.0:8000;", "listen 127.0.0.1:9;")
    local = re.sub(r"(?m)(^|\s)/tmp/", rf"\g<1>{tmp_path}/", local)
    config = tmp_path / "nginx.conf"
    config.write_text(local)
    try:
        checked = check_config(config, tmp_path)
    except MissingProgram as exc:
        pytest.fail(str(exc))
    assert checked.returncode == 0, checked.stderr


def test_every_mounted_file_exists_and_readme_says_there_is_no_docker_here() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
    readme = (ROOT / "README.md").read_text()
    assert "docker compose" in readme and "no Docker engine" in readme
