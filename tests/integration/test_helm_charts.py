"""The Helm charts, rendered by the real helm and checked by the real kubernetes-validate.

`helm lint --strict` passes for every chart and for the umbrella with each environment's values;
what `helm template` renders validates against Kubernetes 1.29 and 1.33 (strict); and the render
has the properties operators rely on: the original deployment plan's sizes per environment, HPAs and PDBs, RBAC scoped
to one ConfigMap and one Lease, hardened containers, probes on the real endpoints, and env vars
and flags that the real services accept.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from mimir_edge.config_reference import env_vars, rls_parser
from mimir_edge.config_reference import sync_parser as sync_env_parser
from mimir_edge.rls.settings import parse_settings
from mimir_edge.settings import redis_config
from mimir_edge.sync.main import build_parser as sync_parser

from tests.k8s_tools import (
    CHARTS,
    COMPONENT_CHARTS,
    ENVIRONMENTS,
    KUBE_VERSIONS,
    NAMESPACE,
    ROOT,
    UMBRELLA,
    Helm,
    HelmFailed,
    Manifest,
    container,
    container_port,
    env_of,
    env_values,
    helm_binary,
    kinds,
    kubernetes_validate_binary,
    one,
    pod_specs,
    selects,
    values_file,
)

RLS, ENVOY, SYNC, DEV_REDIS = "mimir-rls", "mimir-envoy", "mimir-overrides-sync", "mimir-edge-redis"

# The original deployment plan's sizes per environment (its "Environment-Specific Configurations").
PLANNED: dict[str, dict[str, Any]] = {
    "dev": {
        "rls": {"replicas": 1, "requests": ("100m", "128Mi"), "limits": ("1000m", "256Mi")},
        "envoy": {"replicas": 1, "requests": ("50m", "128Mi"), "limits": ("100m", "256Mi")},
        "maxRequestBytes": 10485760,
        "failureModeAllow": True,
    },
    # Sized from measurement (docs/deployment-guide.md, "Sizing"; BENCHMARKS.md rls_cpu, rls_memory).
    "staging": {
        "rls": {"replicas": 5, "requests": ("1000m", "256Mi"), "limits": ("1500m", "1Gi")},
        "envoy": {"replicas": 3, "requests": ("250m", "256Mi"), "limits": ("500m", "1Gi")},
        "maxRequestBytes": 52428800,
        "failureModeAllow": False,
    },
    "production": {
        "rls": {"replicas": 14, "requests": ("1000m", "256Mi"), "limits": ("1500m", "1Gi")},
        "envoy": {"replicas": 10, "requests": ("500m", "256Mi"), "limits": ("2000m", "1Gi")},
        "maxRequestBytes": 52428800,
        "failureModeAllow": False,
    },
}
# (minReplicas, maxReplicas, CPU target %) per Deployment; dev runs fixed single replicas.
HPA: dict[str, dict[str, tuple[int, int, int]]] = {
    "dev": {},
    "staging": {RLS: (5, 14, 70), ENVOY: (3, 6, 70)},
    "production": {RLS: (14, 40, 70), ENVOY: (10, 30, 70)},
}
SYNC_REPLICAS = {"dev": 1, "staging": 2, "production": 2}

# The variables the programs' parsers read (docs/configuration.md is generated from the same parsers).
# The chart passes admin tokens only as a mounted file (ADMIN_TOKEN_FILE), never as a plain env value.
RLS_ENV_CONTRACT = env_vars(rls_parser()) - {"ADMIN_TOKEN"}
SYNC_ENV = env_vars(sync_env_parser())
#: A password with every character that breaks a URL it is spliced into unencoded.
AWKWARD_PASSWORD = "p@ss/w:rd%40x"
# Kinds that are CRDs, which kubernetes-validate has no schema for; checked by hand below.
CRD_KINDS = {"ServiceMonitor"}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary(), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="module")
def renders(helm: Helm) -> dict[str, list[Manifest]]:
    """The umbrella rendered once per environment."""
    return {env: helm.template(UMBRELLA, [values_file(env)]) for env in ENVIRONMENTS}


def deployment(manifests: list[Manifest], name: str) -> Manifest:
    return one(manifests, "Deployment", name)


def http_connection_manager(manifests: list[Manifest]) -> dict[str, Any]:
    """The typed_config of the Envoy listener's HTTP connection manager, from the ConfigMap."""
    bootstrap = yaml.safe_load(one(manifests, "ConfigMap", ENVOY)["data"]["envoy.yaml"])
    hcm: dict[str, Any] = bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"
    ]
    return hcm


def expand(env: dict[str, Manifest], secrets: dict[str, str]) -> dict[str, str]:
    """Env as the kubelet would give it: secretKeyRef from `secrets` (by Secret name), $(VAR) expanded."""
    out: dict[str, str] = {}
    for name, entry in env.items():
        value = entry["value"] if "value" in entry else secrets[entry["valueFrom"]["secretKeyRef"]["name"]]
        for known, known_value in out.items():
            value = value.replace(f"$({known})", known_value)
        out[name] = value
    return out


# --- lint and layout ------------------------------------------------------------------------------


@pytest.mark.parametrize("chart", COMPONENT_CHARTS)
def test_component_chart_lints_strict(helm: Helm, chart: str) -> None:
    out = helm.lint(CHARTS / chart)
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("env", [None, *ENVIRONMENTS])
def test_umbrella_lints_strict_with_each_values_file(helm: Helm, env: str | None) -> None:
    out = helm.lint(UMBRELLA, [values_file(env)] if env else [])
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_umbrella_uses_the_component_charts_in_place() -> None:
    """charts/<name> in the umbrella are links to the sources: nothing packaged that could go stale."""
    meta = yaml.safe_load((UMBRELLA / "Chart.yaml").read_text())
    deps = {d["name"]: d for d in meta["dependencies"]}
    assert set(deps) == set(COMPONENT_CHARTS)
    for name, dep in deps.items():
        source = CHARTS / name
        assert dep["repository"] == f"file://../{name}"
        assert dep["version"] == yaml.safe_load((source / "Chart.yaml").read_text())["version"]
        link = UMBRELLA / "charts" / name
        assert link.is_symlink() and link.resolve() == source.resolve(), f"{link} must link to {source}"
    assert not list((UMBRELLA / "charts").glob("*.tgz")), "packaged subcharts would shadow the sources"


# --- schema validation ----------------------------------------------------------------------------


def validate(manifests: list[Manifest], tmp_path: Path) -> set[str]:
    """Run kubernetes-validate --strict for each KUBE_VERSION; returns the CRD kinds it was not given."""
    skipped = {m["kind"] for m in manifests if m["kind"] in CRD_KINDS}
    checked = [m for m in manifests if m["kind"] not in CRD_KINDS]
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(checked))
    args = [kubernetes_validate_binary(), "--strict", "--quiet"]
    for version in KUBE_VERSIONS:
        args += ["-k", version]
    done = subprocess.run([*args, str(path)], capture_output=True, text=True, timeout=60, check=False)
    # --quiet prints only problems; a kind without a schema would be a WARN with exit code 0.
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
    return skipped


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_render_passes_kubernetes_validate_strict(renders: dict[str, list[Manifest]], env: str, tmp_path: Path) -> None:
    skipped = validate(renders[env], tmp_path)
    assert skipped == (set() if env == "dev" else {"ServiceMonitor"})


def test_render_with_every_option_on_passes_kubernetes_validate(helm: Helm, tmp_path: Path) -> None:
    sets = {
        f"{chart}.{key}": "true"
        for chart in ("rls", "envoy", "overridesSync")
        for key in ("networkPolicy.enabled", "serviceMonitor.enabled")
    }
    sets |= {
        "rls.redis.auth.existingSecret": "redis-auth",
        "overridesSync.redis.auth.existingSecret": "redis-auth",
        "rls.redis.tls": "true",
        "overridesSync.redis.tls": "true",
        "rls.admin.tokenSecret.name": "admin-tokens",
        "rls.config.failureMode": "local",
        "rls.config.metricsTenants": "{a,b}",
        "rls.autoscaling.targetMemoryUtilizationPercentage": "80",
        "envoy.config.charge": "ratelimit",
        "overridesSync.overrides.defaultsKey": "defaults.yaml",
    }
    manifests = helm.template(UMBRELLA, [values_file("production")], sets)
    assert validate(manifests, tmp_path) == {"ServiceMonitor"}
    assert {m["metadata"]["name"] for m in kinds(manifests, "NetworkPolicy")} == {RLS, ENVOY, SYNC}
    # The RLS's gRPC port admits the release's Envoy pods only.
    (grpc,) = [r for r in one(manifests, "NetworkPolicy", RLS)["spec"]["ingress"] if r["ports"][0]["port"] == "grpc"]
    envoy_pods = deployment(manifests, ENVOY)["spec"]["template"]["metadata"]["labels"]
    assert [selects(p["podSelector"]["matchLabels"], envoy_pods) for p in grpc["from"]] == [True]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_service_monitors_only_when_enabled_and_pointing_at_real_ports(
    renders: dict[str, list[Manifest]], env: str
) -> None:
    manifests = renders[env]
    monitors = kinds(manifests, "ServiceMonitor")
    if env == "dev":
        assert monitors == []
        return
    expected = {RLS: ("metrics", "/metrics"), ENVOY: ("admin", "/stats/prometheus"), SYNC: ("http", "/metrics")}
    assert {m["metadata"]["name"] for m in monitors} == set(expected)
    for monitor in monitors:
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        port, path = expected[monitor["metadata"]["name"]]
        assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [(port, path)]
        services = [
            s
            for s in kinds(manifests, "Service")
            if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert any(port in {p["name"] for p in s["spec"]["ports"]} for s in services)


def test_network_policies_are_off_by_default(renders: dict[str, list[Manifest]]) -> None:
    for manifests in renders.values():
        assert kinds(manifests, "NetworkPolicy") == []


# --- sizes per environment ------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_replicas_and_resources_are_the_planned_ones(renders: dict[str, list[Manifest]], env: str) -> None:
    manifests = renders[env]
    for key, name, cname in (("rls", RLS, "rls"), ("envoy", ENVOY, "envoy")):
        planned = PLANNED[env][key]
        d = deployment(manifests, name)
        hpas = [h for h in kinds(manifests, "HorizontalPodAutoscaler") if h["metadata"]["name"] == name]
        if hpas:
            # The HPA owns the count: a `replicas` in the Deployment would reset it on every upgrade.
            assert "replicas" not in d["spec"]
            assert hpas[0]["spec"]["minReplicas"] == planned["replicas"]
        else:
            assert d["spec"]["replicas"] == planned["replicas"]
        resources = container(d, cname)["resources"]
        for kind in ("requests", "limits"):
            assert (resources[kind]["cpu"], resources[kind]["memory"]) == planned[kind], f"{name} {kind}"
    assert deployment(manifests, SYNC)["spec"]["replicas"] == SYNC_REPLICAS[env]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_max_request_bytes_and_failure_mode_are_the_planned_ones(renders: dict[str, list[Manifest]], env: str) -> None:
    manifests = renders[env]
    settings = parse_settings([], env=env_values(container(deployment(manifests, RLS), "rls")))
    assert settings.max_request_bytes == PLANNED[env]["maxRequestBytes"]
    assert settings.failure_mode_allow is PLANNED[env]["failureModeAllow"]
    ext_authz = http_connection_manager(manifests)["http_filters"][0]["typed_config"]
    assert ext_authz["with_request_body"]["max_request_bytes"] == PLANNED[env]["maxRequestBytes"]
    assert ext_authz["failure_mode_allow"] is PLANNED[env]["failureModeAllow"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_hpas_per_environment(renders: dict[str, list[Manifest]], env: str) -> None:
    manifests = renders[env]
    hpas = {h["metadata"]["name"]: h for h in kinds(manifests, "HorizontalPodAutoscaler")}
    assert set(hpas) == set(HPA[env])
    for name, (low, high, cpu) in HPA[env].items():
        spec = hpas[name]["spec"]
        assert hpas[name]["apiVersion"] == "autoscaling/v2"
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        deployment(manifests, name)
        assert (spec["minReplicas"], spec["maxReplicas"]) == (low, high)
        target = {"type": "Utilization", "averageUtilization": cpu}
        assert spec["metrics"] == [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]


def test_hpa_takes_custom_metrics(helm: Helm, tmp_path: Path) -> None:
    extra = {
        "rls": {
            "autoscaling": {
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "rls_decisions_per_second"},
                            "target": {"type": "AverageValue", "averageValue": "2000"},
                        },
                    }
                ]
            }
        }
    }
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(extra))
    manifests = helm.template(UMBRELLA, [values_file("production"), path])
    metrics = one(manifests, "HorizontalPodAutoscaler", RLS)["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["Resource", "Pods"]
    assert validate(manifests, tmp_path) == {"ServiceMonitor"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_deployment_has_a_pdb_that_allows_evictions(renders: dict[str, list[Manifest]], env: str) -> None:
    manifests = renders[env]
    pdbs = kinds(manifests, "PodDisruptionBudget")
    for d in kinds(manifests, "Deployment"):
        name = d["metadata"]["name"]
        if name == DEV_REDIS:
            continue
        labels = d["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], labels)]
        assert len(mine) == 1, f"{name}: {len(mine)} PDBs"
        spec = mine[0]["spec"]
        assert len({"minAvailable", "maxUnavailable"} & set(spec)) == 1, spec
        hpa = [h for h in kinds(manifests, "HorizontalPodAutoscaler") if h["metadata"]["name"] == name]
        replicas = hpa[0]["spec"]["minReplicas"] if hpa else d["spec"]["replicas"]
        # A PDB that no eviction can satisfy blocks every node drain.
        if "minAvailable" in spec:
            assert isinstance(spec["minAvailable"], int) and spec["minAvailable"] < replicas
        else:
            assert spec["maxUnavailable"] not in (0, "0%")


# --- RBAC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_overrides_sync_rbac_is_one_configmap_and_one_lease(renders: dict[str, list[Manifest]], env: str) -> None:
    manifests = renders[env]
    assert not kinds(manifests, "ClusterRole") and not kinds(manifests, "ClusterRoleBinding")
    pod = deployment(manifests, SYNC)["spec"]["template"]["spec"]
    args = sync_parser(env={}).parse_args(container(deployment(manifests, SYNC), "overrides-sync")["args"])
    roles = {r["metadata"]["name"]: r for r in kinds(manifests, "Role")}
    assert set(roles) == {f"{SYNC}-overrides", f"{SYNC}-lease"}

    for role in roles.values():
        for rule in role["rules"]:
            for field in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule[field], f"wildcard {field} in {role['metadata']['name']}"

    configmap = roles[f"{SYNC}-overrides"]
    assert configmap["metadata"]["namespace"] == args.namespace
    assert configmap["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [args.configmap],
            "verbs": ["get", "list", "watch"],
        }
    ]
    lease = roles[f"{SYNC}-lease"]
    assert lease["metadata"]["namespace"] == args.lease_namespace == NAMESPACE
    named, unnamed = lease["rules"]
    assert named == {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [args.lease_name],
        "verbs": ["get", "update"],
    }
    # create cannot be limited by resourceNames (the object does not exist yet): create only.
    assert unnamed == {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}

    account = one(manifests, "ServiceAccount", pod["serviceAccountName"])
    for binding in kinds(manifests, "RoleBinding"):
        assert binding["roleRef"]["name"] in roles
        assert binding["metadata"]["namespace"] == roles[binding["roleRef"]["name"]]["metadata"]["namespace"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
        ]
    # Only overrides-sync talks to the API server.
    for name, spec in pod_specs(manifests):
        assert spec["automountServiceAccountToken"] is (name == f"Deployment/{SYNC}"), name


# --- hardening, probes, labels --------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_container_is_hardened(renders: dict[str, list[Manifest]], env: str) -> None:
    specs = list(pod_specs(renders[env]))
    # RLS, Envoy, overrides-sync (and the dev Redis) Deployments, one helm test pod each.
    assert len(specs) == (7 if env == "dev" else 6)
    for name, spec in specs:
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True, name
        assert pod_ctx["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"]:
            ctx = c["securityContext"]
            where = f"{name}/{c['name']}"
            assert ctx["runAsNonRoot"] is True, where
            assert isinstance(ctx["runAsUser"], int) and ctx["runAsUser"] > 0, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["capabilities"] == {"drop": ["ALL"]}, where
            assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert c["resources"]["requests"] and c["resources"]["limits"], where


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_probes_hit_the_real_endpoints(renders: dict[str, list[Manifest]], env: str) -> None:
    manifests = renders[env]
    bootstrap = yaml.safe_load(one(manifests, "ConfigMap", ENVOY)["data"]["envoy.yaml"])
    envoy_admin = bootstrap["admin"]["address"]["socket_address"]["port_value"]
    # (deployment, container): (startup and liveness path, readiness path, port)
    expected = {
        (RLS, "rls"): ("/api/health", "/api/ready", 8082),
        (SYNC, "overrides-sync"): ("/healthz", "/readyz", 9091),
        (ENVOY, "envoy"): ("/ready", "/ready", envoy_admin),
    }
    for (name, cname), (alive, ready, port) in expected.items():
        c = container(deployment(manifests, name), cname)
        for probe, path in (("startupProbe", alive), ("livenessProbe", alive), ("readinessProbe", ready)):
            get = c[probe]["httpGet"]
            assert (get["path"], container_port(c, get["port"])) == (path, port), f"{name} {probe}"
    # The ports the probes use are where the services listen.
    rls = env_values(container(deployment(manifests, RLS), "rls"))
    assert rls["ADMIN_ADDR"] == "0.0.0.0:8082"
    assert env_values(container(deployment(manifests, SYNC), "overrides-sync"))["HTTP_ADDR"] == "0.0.0.0:9091"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_standard_labels_on_every_object(renders: dict[str, list[Manifest]], env: str) -> None:
    for m in renders[env]:
        labels = m["metadata"]["labels"]
        where = f"{m['kind']}/{m['metadata']['name']}"
        for key in ("name", "instance", "version", "component", "part-of", "managed-by"):
            assert labels.get(f"app.kubernetes.io/{key}"), f"{where} lacks app.kubernetes.io/{key}"
        assert labels["app.kubernetes.io/part-of"] == "mimir-edge-enforcement"
        assert labels["environment"] == {"dev": "development"}.get(env, env)


# --- the services' own contract -------------------------------------------------------------------


def pyproject_scripts() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rls_env_and_ports_are_the_contract(renders: dict[str, list[Manifest]], env: str) -> None:
    c = container(deployment(renders[env], RLS), "rls")
    assert c["command"][0] in pyproject_scripts()
    assert {(p["name"], p["containerPort"]) for p in c["ports"]} == {
        ("grpc", 8081),
        ("authz-http", 8083),
        ("admin", 8082),
        ("metrics", 9090),
    }
    env_ = env_of(c)
    assert set(env_) <= RLS_ENV_CONTRACT, set(env_) - RLS_ENV_CONTRACT
    settings = parse_settings([], env=env_values(c))
    assert (settings.grpc_addr, settings.authz_http_addr, settings.admin_addr, settings.metrics_addr) == (
        "0.0.0.0:8081",
        "0.0.0.0:8083",
        "0.0.0.0:8082",
        "0.0.0.0:9090",
    )
    service = one(renders[env], "Service", RLS)
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} == {
        ("grpc", 8081),
        ("authz-http", 8083),
        ("admin", 8082),
        ("metrics", 9090),
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_overrides_sync_flags_are_accepted_by_the_real_cli(renders: dict[str, list[Manifest]], env: str) -> None:
    c = container(deployment(renders[env], SYNC), "overrides-sync")
    assert c["command"] == ["mimir-overrides-sync"] and c["command"][0] in pyproject_scripts()
    assert set(env_of(c)) <= SYNC_ENV
    args = sync_parser(env=env_values(c)).parse_args(c["args"])
    assert (args.source, args.namespace, args.configmap, args.key) == (
        "kubernetes",
        "mimir",
        "mimir-overrides",
        "overrides.yaml",
    )
    assert args.leader_elect and not args.once and not args.dry_run
    assert args.http_addr == "0.0.0.0:9091" and {p["containerPort"] for p in c["ports"]} == {9091}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rls_and_overrides_sync_share_one_redis(renders: dict[str, list[Manifest]], env: str) -> None:
    manifests = renders[env]
    rls = env_of(container(deployment(manifests, RLS), "rls"))
    sync = env_of(container(deployment(manifests, SYNC), "overrides-sync"))
    for name in ("REDIS_URL", "REDIS_CLUSTER_NODES", "REDIS_USERNAME", "REDIS_PASSWORD"):
        assert rls.get(name) == sync.get(name), name
    dev_redis = [d["metadata"]["name"] for d in kinds(manifests, "Deployment") if d["metadata"]["name"] == DEV_REDIS]
    if env == "dev":
        assert dev_redis and rls["REDIS_URL"]["value"] == f"redis://{DEV_REDIS}:6379/0"
        one(manifests, "Service", DEV_REDIS)
    else:
        assert not dev_redis, "the in-chart Redis is for development only"


def rls_container(helm: Helm, sets: dict[str, str]) -> Manifest:
    manifests = helm.template(CHARTS / "mimir-rls", sets=sets, release=RLS)
    return container(deployment(manifests, RLS), "rls")


def sync_container(helm: Helm, sets: dict[str, str]) -> Manifest:
    manifests = helm.template(CHARTS / "overrides-sync", sets=sets, release=SYNC)
    return container(deployment(manifests, SYNC), "overrides-sync")


def test_redis_password_is_its_own_env_var_from_a_secret_and_tls_means_rediss(helm: Helm) -> None:
    """Issue 14 item 7: the password is never spliced into REDIS_URL (an @ / : % in it broke the
    URL); both services read REDIS_PASSWORD as it is."""
    sets = {
        "redis.auth.existingSecret": "redis-auth",
        "redis.auth.username": "edge",
        "redis.tls": "true",
        "redis.host": "r.example",
    }
    for c in (rls_container(helm, sets), sync_container(helm, sets)):
        env = env_of(c)
        assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis-auth", "key": "password"}
        assert env["REDIS_URL"] == {"name": "REDIS_URL", "value": "rediss://r.example:6379/0"}
        assert env["REDIS_USERNAME"]["value"] == "edge"
        given = expand(env, {"redis-auth": AWKWARD_PASSWORD})
        if c["name"] == "rls":
            config = parse_settings([], env=given).redis
        else:
            parser = sync_parser(env=given)
            config = redis_config(parser, parser.parse_args(c["args"]))
        assert config.url == "rediss://r.example:6379/0" and config.tls
        assert config.credentials == ("edge", AWKWARD_PASSWORD)
        assert AWKWARD_PASSWORD not in repr(config)


def test_redis_url_from_a_secret_and_cluster_nodes(helm: Helm) -> None:
    c = rls_container(helm, {"redis.urlSecret.name": "redis-url"})
    assert env_of(c)["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "redis-url", "key": "url"}
    c = rls_container(helm, {"redis.clusterNodes": "{a:7000,b:7001}"})
    env = env_values(c)
    assert "REDIS_URL" not in env
    assert parse_settings([], env=env).redis.cluster_nodes == (("a", 7000), ("b", 7001))


def test_cluster_mode_with_auth_and_tls(helm: Helm) -> None:
    c = rls_container(
        helm, {"redis.clusterNodes": "{a:7000}", "redis.auth.existingSecret": "redis-auth", "redis.tls": "true"}
    )
    env = env_of(c)
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "redis-auth"
    assert "REDIS_USERNAME" not in env
    config = parse_settings([], env=expand(env, {"redis-auth": AWKWARD_PASSWORD})).redis
    assert config.cluster_nodes == (("a", 7000),)
    assert config.tls and config.credentials == (None, AWKWARD_PASSWORD)
    # Without TLS a Cluster needs no REDIS_URL at all.
    c = rls_container(helm, {"redis.clusterNodes": "{a:7000}", "redis.auth.existingSecret": "redis-auth"})
    assert "REDIS_URL" not in env_of(c) and "REDIS_PASSWORD" in env_of(c)


def test_admin_tokens_are_a_mounted_secret_file(helm: Helm) -> None:
    manifests = helm.template(CHARTS / "mimir-rls", sets={"admin.tokenSecret.name": "tokens"}, release=RLS)
    d = deployment(manifests, RLS)
    c = container(d, "rls")
    path = Path(env_values(c)["ADMIN_TOKEN_FILE"])
    mount = next(m for m in c["volumeMounts"] if path.parent == Path(m["mountPath"]))
    volume = next(v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "tokens" and "subPath" not in mount
    assert [i["path"] for i in volume["secret"]["items"]] == [path.name]


def test_local_failure_mode_tells_the_rls_its_replica_count(helm: Helm) -> None:
    manifests = helm.template(
        UMBRELLA, [values_file("production")], {"rls.config.failureMode": "local"}, kube_version="1.29.0"
    )
    env = env_values(container(deployment(manifests, RLS), "rls"))
    settings = parse_settings([], env=env)
    assert settings.failure_mode.value == "local"
    assert env["REPLICAS_HINT"] == str(PLANNED["production"]["rls"]["replicas"])


def test_mirror_phase_puts_the_rls_in_shadow_and_envoy_answers_itself(helm: Helm) -> None:
    sets = {"envoy.config.mode": "mirror", "rls.config.enforcementDisabled": "true"}
    manifests = helm.template(UMBRELLA, [values_file("production")], sets)
    assert parse_settings([], env=env_values(container(deployment(manifests, RLS), "rls"))).enforcement_disabled
    (route,) = http_connection_manager(manifests)["route_config"]["virtual_hosts"][0]["routes"]
    assert route["direct_response"] == {"status": 204} and "route" not in route


# --- values are checked ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("rls.replica", "3", "additional properties 'replica' not allowed"),
        ("rls.config.maxRequestByte", "1", "additional properties 'maxRequestByte' not allowed"),
        ("envoy.config.mode", "shadow", "mode"),
        ("envoy.config.charges", "check", "additional properties 'charges' not allowed"),
        ("overridesSync.overrides.configMap", "x", "additional properties 'configMap' not allowed"),
        ("rls.config.failureModeAllow", "maybe", "failureModeAllow"),
        ("devredis.enabled", "true", "additional properties 'devredis' not allowed"),
    ],
)
def test_schema_rejects_typos(helm: Helm, key: str, value: str, error: str) -> None:
    with pytest.raises(HelmFailed, match=error):
        helm.template(UMBRELLA, [values_file("staging")], {key: value})


@pytest.mark.parametrize(
    ("sets", "error"),
    [
        ({"envoy.config.tenantHeader": "X-Tenant"}, "tenantHeader"),
        ({"envoy.config.maxRequestBytes": "1024"}, "maxRequestBytes"),
        ({"envoy.config.rls.port": "9999"}, "rls.port"),
        ({"overridesSync.redis.host": "elsewhere"}, "same Redis"),
        ({"rls.replicas": "50"}, "between 1 and maxReplicas"),
        ({"overridesSync.leaderElection.enabled": "false"}, "needs leaderElection"),
    ],
)
def test_umbrella_refuses_inconsistent_values(helm: Helm, sets: dict[str, str], error: str) -> None:
    with pytest.raises(HelmFailed, match=error):
        helm.template(UMBRELLA, [values_file("production")], sets)


# --- helm test --------------------------------------------------------------------------------------


def test_helm_test_hooks_ask_each_component_for_health(helm: Helm) -> None:
    charts = ("rls", "envoy", "overridesSync")
    sets = {f"{chart}.tests.image.repository": "registry.example/busybox" for chart in charts}
    manifests = helm.template(UMBRELLA, [values_file("staging")], sets)
    hooks = {p["metadata"]["name"]: p for p in kinds(manifests, "Pod")}
    expected = {
        f"{RLS}-test": [f"http://{RLS}:8082/api/health", f"http://{RLS}:8082/api/ready"],
        f"{SYNC}-test": [f"http://{SYNC}:9091/healthz", f"http://{SYNC}:9091/readyz"],
        f"{ENVOY}-test": [f"http://{ENVOY}:9901/ready"],
    }
    assert set(hooks) == set(expected)
    for name, urls in expected.items():
        pod = hooks[name]
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        (c,) = pod["spec"]["containers"]
        assert c["image"] == "registry.example/busybox:1.36"
        script = " ".join(c["command"])
        for url in urls:
            assert url in script, f"{name} does not ask {url}"
        service, port = urls[0].removeprefix("http://").split("/")[0].split(":")
        assert int(port) in {p["port"] for p in one(manifests, "Service", service)["spec"]["ports"]}
