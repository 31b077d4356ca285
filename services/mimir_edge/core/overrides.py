"""Mimir's runtime overrides and defaults documents, parsed into effective per-tenant limits.

The overrides file is Mimir's own runtime configuration: `overrides: {tenant: {field: value}}`;
other top-level sections and unknown limit fields are Mimir's business and are ignored (their
names are kept for reporting). The defaults come from Mimir's built-in defaults, optionally
replaced field by field by a defaults document: Mimir's main config (its `limits:` block) or a
plain map of limit fields. A document that has anything wrong is rejected whole.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from mimir_edge.core.errors import InvalidTenant, OverridesError
from mimir_edge.core.limits import FIELD_KINDS, LIMIT_FIELDS, MIMIR_DEFAULTS, FieldKind, TenantLimits
from mimir_edge.core.tenant import validate_tenant_id

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class RuntimeOverrides:
    """Effective limits: the defaults, and every tenant the overrides file names."""

    defaults: TenantLimits
    tenants: Mapping[str, TenantLimits]
    ignored_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def limits_for(self, tenant: str) -> TenantLimits:
        return self.tenants.get(tenant, self.defaults)


def parse_defaults(text: str | None) -> TenantLimits:
    """Defaults from a Mimir config (`limits:` block) or a plain limits map; empty = Mimir's."""
    document = _load_yaml(text or "", what="defaults")
    if document is None:
        return MIMIR_DEFAULTS
    if not isinstance(document, Mapping):
        raise OverridesError("defaults document must be a map")
    section = document.get("limits", document)
    if section is None:
        return MIMIR_DEFAULTS
    if not isinstance(section, Mapping):
        raise OverridesError("`limits` must be a map", field="limits")
    limits, _ = _apply_fields(MIMIR_DEFAULTS, section, tenant=None)
    _check_consistent(limits, tenant=None)
    return limits


def parse_runtime_overrides(text: str, defaults: TenantLimits = MIMIR_DEFAULTS) -> RuntimeOverrides:
    """Parse a Mimir runtime overrides document into effective limits for every tenant."""
    document = _load_yaml(text, what="overrides")
    if document is None:
        return RuntimeOverrides(defaults=defaults, tenants={})
    if not isinstance(document, Mapping):
        raise OverridesError("runtime config must be a map with an `overrides` section")
    overrides = document.get("overrides")
    if overrides is None:
        return RuntimeOverrides(defaults=defaults, tenants={})
    if not isinstance(overrides, Mapping):
        raise OverridesError("`overrides` must be a map of tenant to limits", field="overrides")

    tenants: dict[str, TenantLimits] = {}
    ignored: dict[str, tuple[str, ...]] = {}
    for tenant, values in overrides.items():
        tenant_id = _tenant_id(tenant)
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise OverridesError("limits must be a map of field to value", tenant=tenant_id)
        limits, unknown = _apply_fields(defaults, values, tenant=tenant_id)
        _check_consistent(limits, tenant=tenant_id)
        tenants[tenant_id] = limits
        if unknown:
            ignored[tenant_id] = unknown
    return RuntimeOverrides(defaults=defaults, tenants=tenants, ignored_fields=ignored)


def _load_yaml(text: str, *, what: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise OverridesError(f"{what} is not valid YAML{where}: {problem}") from None


def _tenant_id(tenant: object) -> str:
    if not isinstance(tenant, str):
        raise OverridesError(f"tenant id must be a string, got {tenant!r}", tenant=str(tenant))
    try:
        return validate_tenant_id(tenant)
    except InvalidTenant as exc:
        raise OverridesError(str(exc), tenant=tenant) from None


def _apply_fields(
    base: TenantLimits, values: Mapping[Any, Any], *, tenant: str | None
) -> tuple[TenantLimits, tuple[str, ...]]:
    changes: dict[str, object] = {}
    unknown: list[str] = []
    for name, value in values.items():
        if name not in LIMIT_FIELDS:
            unknown.append(str(name))
            continue
        changes[name] = _field_value(name, value, tenant=tenant)
    return replace(base, **changes), tuple(sorted(unknown))  # type: ignore[arg-type]


#: Prometheus label names (`model.LabelName.IsValid`, legacy validation).
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: Prometheus `model.ParseDuration`: units largest first, each at most once; "0" alone is allowed.
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_DURATION_UNITS_S = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration ("30s", "1m30s", "0"); raises ValueError otherwise."""
    if text == "0":
        return 0.0
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a duration: {text!r}")
    return float(sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS_S, strict=True) if n))


def _field_value(name: str, value: object, *, tenant: str | None) -> object:
    kind = FIELD_KINDS[name]
    if kind is FieldKind.BOOL:
        if not isinstance(value, bool):
            raise OverridesError(f"must be true or false, got {value!r}", tenant=tenant, field=name)
        return value
    if kind is FieldKind.LABEL_NAME:
        if not isinstance(value, str) or not _LABEL_NAME.fullmatch(value):
            raise OverridesError(f"must be a label name, got {value!r}", tenant=tenant, field=name)
        return value
    if kind is FieldKind.DURATION:
        try:
            if isinstance(value, str):
                return parse_duration(value)
        except ValueError:
            pass
        raise OverridesError(f'must be a duration such as "30s", got {value!r}', tenant=tenant, field=name)
    # bool is an int in Python, but `true` is never a valid number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OverridesError(f"must be a number, got {value!r}", tenant=tenant, field=name)
    if kind is FieldKind.FLOAT:
        number: float | int = float(value)
        if not math.isfinite(number):
            raise OverridesError(f"must be finite, got {value!r}", tenant=tenant, field=name)
    elif isinstance(value, float):
        if not value.is_integer():
            raise OverridesError(f"must be an integer, got {value!r}", tenant=tenant, field=name)
        number = int(value)
    else:
        number = value
    if number < 0:
        raise OverridesError(f"must not be negative, got {value!r}", tenant=tenant, field=name)
    return number


def _check_consistent(limits: TenantLimits, *, tenant: str | None) -> None:
    factor = limits.ingestion_burst_factor
    if 0 < factor < 1:
        raise OverridesError(
            f"must be 0 (off) or at least 1, got {factor!r}",
            tenant=tenant,
            field="ingestion_burst_factor",
        )
