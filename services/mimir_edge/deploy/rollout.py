"""`mimir-edge rollout PHASE`: the rollout's phases (docs/deployment-guide.md) and rollbacks, done with kubectl.

Phases in order: direct → mirror → canary-10 → 25 → 50 → 75 → 100 → full; `rollback` is the
emergency return to direct. Each phase is: the RLS in shadow (mirror) or enforcing (canary,
full), then NGINX's ConfigMap from examples/nginx-<phase>.yaml, then a rolling restart of the
NGINX Deployment, waiting for each with `kubectl rollout status`.

Why a rolling restart and not `kubectl exec … nginx -s reload`: the kubelet updates a mounted
ConfigMap only after its sync period (up to a minute or more, never with subPath mounts), so a
reload right after `kubectl apply` would re-read the old file. New pods read the new ConfigMap
at start, a pod whose config is broken never becomes ready (the old ones keep serving), and
`rollout status` says when every pod runs the phase.

ENFORCEMENT_DISABLED set here differs from the Helm release until its values say the same
(`rls.config.enforcementDisabled`): a later `helm upgrade` puts the chart's value back.

Checks (skipped with --force; not run at all with --dry-run, which runs no kubectl command):
- no skipping forward: the current phase is the NGINX ConfigMap's `mimir-edge.io/phase`
  annotation (no ConfigMap: direct); moving back any number of phases is allowed;
- canary and full need an Envoy that forwards to the distributor: an Envoy still in mirror mode
  answers 204 itself, so the canary tenants' writes would be acknowledged and dropped. The Envoy
  ConfigMap is read and a `direct_response` in it means mirror mode (--skip-envoy-check if your
  Envoy config lives elsewhere).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from mimir_edge.deploy.nginx import DEFAULT_CONFIGMAP, EXAMPLE_NAMES, PHASE_ANNOTATION

PHASES = EXAMPLE_NAMES  # direct, mirror, canary-10 … canary-100, full
TARGETS = (*PHASES[1:], "rollback")


class RolloutError(Exception):
    """The rollout cannot (or must not) go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class RolloutOptions:
    namespace: str = "mimir-edge-enforcement"
    configmap: str = DEFAULT_CONFIGMAP
    nginx_deployment: str = "mimir-edge-nginx"
    rls_deployment: str = "mimir-rls"
    #: Defaults to `namespace`.
    rls_namespace: str | None = None
    envoy_configmap: str = "mimir-envoy"
    check_envoy: bool = True
    examples_dir: Path = Path("examples")
    kubectl: str = "kubectl"
    context: str | None = None
    timeout: str = "5m"
    force: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    why: str
    argv: tuple[str, ...]


def phase_of(target: str) -> str:
    if target not in TARGETS:
        raise RolloutError(f"unknown phase {target!r}; one of {', '.join(TARGETS)}")
    return "direct" if target == "rollback" else target


def example_path(phase: str, options: RolloutOptions) -> Path:
    return options.examples_dir / f"nginx-{phase}.yaml"


def _kubectl(options: RolloutOptions, namespace: str, *args: str) -> tuple[str, ...]:
    context = ("--context", options.context) if options.context else ()
    return (options.kubectl, *context, "-n", namespace, *args)


def reads(target: str, options: RolloutOptions) -> list[Step]:
    """The read-only commands the checks run before any change."""
    phase = phase_of(target)
    if target == "rollback" or options.force:
        return []
    steps = [
        Step(
            "read the current phase from the NGINX ConfigMap",
            _kubectl(
                options, options.namespace, "get", "configmap", options.configmap, "-o", "json", "--ignore-not-found"
            ),
        )
    ]
    if options.check_envoy and phase.startswith(("canary", "full")):
        steps.append(
            Step(
                "check that Envoy forwards to the distributor (not mirror mode)",
                _kubectl(
                    options,
                    options.rls_namespace or options.namespace,
                    "get",
                    "configmap",
                    options.envoy_configmap,
                    "-o",
                    "json",
                ),
            )
        )
    return steps


def plan(target: str, options: RolloutOptions) -> list[Step]:
    """The changes, in order, that put the cluster in `target`."""
    phase = phase_of(target)
    rls_ns = options.rls_namespace or options.namespace
    rls = f"deployment/{options.rls_deployment}"
    nginx = f"deployment/{options.nginx_deployment}"
    steps: list[Step] = []
    if phase != "direct":
        shadow = "true" if phase == "mirror" else "false"
        mode = "shadow: decide and count, never deny" if phase == "mirror" else "enforcing"
        steps += [
            Step(f"RLS {mode}", _kubectl(options, rls_ns, "set", "env", rls, f"ENFORCEMENT_DISABLED={shadow}")),
            Step(
                "wait for the RLS", _kubectl(options, rls_ns, "rollout", "status", rls, f"--timeout={options.timeout}")
            ),
        ]
    steps += [
        Step(
            f"NGINX config for {phase}",
            _kubectl(options, options.namespace, "apply", "-f", str(example_path(phase, options))),
        ),
        Step("NGINX pods restart on the new config", _kubectl(options, options.namespace, "rollout", "restart", nginx)),
        Step(
            "wait for NGINX",
            _kubectl(options, options.namespace, "rollout", "status", nginx, f"--timeout={options.timeout}"),
        ),
    ]
    return steps


def check_example(phase: str, options: RolloutOptions) -> None:
    """The example file exists, is the ConfigMap this rollout manages, and is for `phase`."""
    path = example_path(phase, options)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RolloutError(f"cannot read {path}: {exc}") from exc
    meta = doc.get("metadata", {}) if isinstance(doc, dict) else {}
    regenerate = f"mimir-edge render-nginx --all-examples {options.examples_dir} --configmap {options.configmap}"
    if not isinstance(doc, dict) or doc.get("kind") != "ConfigMap" or "nginx.conf" not in (doc.get("data") or {}):
        raise RolloutError(f"{path} is not a ConfigMap with nginx.conf; regenerate it: {regenerate}")
    if meta.get("name") != options.configmap:
        raise RolloutError(
            f"{path} is ConfigMap {meta.get('name')!r}, not {options.configmap!r}; regenerate: {regenerate}"
        )
    if (meta.get("annotations") or {}).get(PHASE_ANNOTATION) != phase:
        raise RolloutError(f"{path} is not annotated {PHASE_ANNOTATION}: {phase}; regenerate: {regenerate}")


def current_phase(configmap_json: str) -> str:
    """The phase recorded on the NGINX ConfigMap (`kubectl get -o json` output; empty = none)."""
    if not configmap_json.strip():
        return "direct"
    doc = json.loads(configmap_json)
    phase = ((doc.get("metadata") or {}).get("annotations") or {}).get(PHASE_ANNOTATION)
    if phase not in PHASES:
        raise RolloutError(
            f"the NGINX ConfigMap has no known {PHASE_ANNOTATION} annotation ({phase!r}); "
            "it was not applied by this tool: use --force once you know its state"
        )
    return str(phase)


def check_order(current: str, target: str) -> None:
    """Forward one phase at a time; back (or the same phase again) always."""
    phase = phase_of(target)
    if target == "rollback":
        return
    step = PHASES.index(phase) - PHASES.index(current)
    if step > 1:
        skipped = ", ".join(PHASES[PHASES.index(current) + 1 : PHASES.index(phase)])
        raise RolloutError(
            f"the cluster is in {current}; {phase} would skip {skipped}. "
            f"Next is {PHASES[PHASES.index(current) + 1]} (or --force)"
        )


def envoy_forwards(configmap_json: str) -> bool:
    """Whether the Envoy config in this ConfigMap forwards writes (canary/full) or answers them
    itself (mirror mode: a `direct_response` route)."""
    doc = json.loads(configmap_json)
    texts = [str(v) for v in (doc.get("data") or {}).values()]
    if not any("static_resources" in t for t in texts):
        raise RolloutError("the Envoy ConfigMap holds no Envoy bootstrap; pass --envoy-configmap or --skip-envoy-check")
    return not any("direct_response" in t for t in texts)


Runner = Callable[[Sequence[str]], subprocess.CompletedProcess[str]]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=900)


def _show(step: Step) -> str:
    return f"  # {step.why}\n  $ {' '.join(step.argv)}"


def execute(target: str, options: RolloutOptions, out: TextIO, run: Runner = _run) -> int:
    """Print the plan, check, then run it step by step; stop at the first failure. 0 = done."""
    phase = phase_of(target)
    check_example(phase, options)
    checks, changes = reads(target, options), plan(target, options)
    title = "emergency rollback to direct" if target == "rollback" else f"rollout to {phase}"
    print(f"mimir-edge {title}{' (dry run: nothing is run)' if options.dry_run else ''}:", file=out)
    for step in checks + changes:
        print(_show(step), file=out)
    if options.dry_run:
        if checks:
            print("dry run: the current phase and Envoy's mode are not read, so nothing is checked", file=out)
        return 0

    for step in checks:
        answer = run(step.argv)
        if answer.returncode != 0:
            raise RolloutError(f"`{' '.join(step.argv)}` failed: {answer.stderr.strip()}")
        if step is checks[0]:
            current = current_phase(answer.stdout)
            print(f"current phase: {current}", file=out)
            check_order(current, target)
        elif not envoy_forwards(answer.stdout):
            raise RolloutError(
                f"Envoy ({options.envoy_configmap}) is in mirror mode: it answers 204 itself, so the {phase} "
                "tenants' writes would be acknowledged and dropped. Switch Envoy to canary/full mode first "
                "(safe while NGINX mirrors: copies go to a path the distributor does not ingest), then re-run."
            )

    for number, step in enumerate(changes, 1):
        print(f"[{number}/{len(changes)}] {step.why}", file=out)
        answer = run(step.argv)
        if answer.stdout.strip():
            print(answer.stdout.rstrip(), file=out)
        if answer.returncode != 0:
            print(f"failed: `{' '.join(step.argv)}`: {answer.stderr.strip()}", file=out)
            if phase != "direct":
                print("to go back to the direct config: mimir-edge rollout rollback", file=out)
            return 1
    following = PHASES.index(phase) + 1
    hint = (
        f"; next, once the phase looks right: mimir-edge rollout {PHASES[following]}" if following < len(PHASES) else ""
    )
    print(f"done: NGINX runs {phase}{hint}", file=out)
    return 0
