"""Writes monitoring/grafana-dashboard.json (the Grafana dashboard of the RLS fleet and
overrides-sync) from the panel list below: `python monitoring/dashboard.py`.

Every expression uses only metrics the services export; tests/integration/test_monitoring.py
checks each name against a live /metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("grafana-dashboard.json")
DS = {"type": "prometheus", "uid": "${datasource}"}

# (title, unit, [(expr, legend)], kind) per row
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]], str]]]] = [
    (
        "Traffic and decisions",
        [
            (
                "Decisions/s by outcome",
                "reqps",
                [('sum by (decision) (rate(rls_decisions_total{job=~"$job"}[$__rate_interval]))', "{{decision}}")],
                "timeseries",
            ),
            (
                "Denied share of requests",
                "percentunit",
                [
                    (
                        'sum(rate(rls_decisions_total{job=~"$job",decision=~"denied|shadow_denied"}[$__rate_interval]))'
                        ' / sum(rate(rls_decisions_total{job=~"$job"}[$__rate_interval]))',
                        "denied or would deny",
                    )
                ],
                "timeseries",
            ),
            (
                "Items/s by outcome",
                "short",
                [('sum by (decision) (rate(rls_items_total{job=~"$job"}[$__rate_interval]))', "{{decision}}")],
                "timeseries",
            ),
            (
                "Items/s by protocol and outcome",
                "short",
                [
                    (
                        'sum by (protocol, decision) (rate(rls_items_total{job=~"$job"}[$__rate_interval]))',
                        "{{protocol}} {{decision}}",
                    )
                ],
                "timeseries",
            ),
            (
                "Not allowed by protocol",
                "reqps",
                [
                    (
                        'sum by (protocol) (rate(rls_decisions_total{job=~"$job",decision!="allowed"}'
                        "[$__rate_interval]))",
                        "{{protocol}}",
                    )
                ],
                "timeseries",
            ),
            (
                "Not allowed by reason",
                "reqps",
                [
                    (
                        'sum by (reason) (rate(rls_decisions_total{job=~"$job",decision!="allowed"}'
                        "[$__rate_interval]))",
                        "{{reason}}",
                    )
                ],
                "timeseries",
            ),
            (
                "Top 10 tenants by denied requests/s",
                "reqps",
                [
                    (
                        "topk(10, sum by (tenant) (rate(rls_tenant_requests_total"
                        '{job=~"$job",decision=~"denied|shadow_denied"}[$__rate_interval])))',
                        "{{tenant}}",
                    )
                ],
                "timeseries",
            ),
            (
                "Top 10 tenants by items/s",
                "short",
                [
                    (
                        'topk(10, sum by (tenant) (rate(rls_tenant_items_total{job=~"$job"}[$__rate_interval])))',
                        "{{tenant}}",
                    )
                ],
                "timeseries",
            ),
        ],
    ),
    (
        "Latency",
        [
            (
                "Check latency (RLS side)",
                "s",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(rls_check_duration_seconds_bucket"
                        '{job=~"$job"}[$__rate_interval])))',
                        f"p{label}",
                    )
                    for q, label in (("0.5", "50"), ("0.99", "99"), ("0.999", "99.9"))
                ],
                "timeseries",
            ),
            (
                "Redis decision latency",
                "s",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(rls_redis_duration_seconds_bucket"
                        '{job=~"$job"}[$__rate_interval])))',
                        f"p{label}",
                    )
                    for q, label in (("0.5", "50"), ("0.99", "99"))
                ],
                "timeseries",
            ),
            (
                "Body parse latency",
                "s",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(rls_body_parse_duration_seconds_bucket"
                        '{job=~"$job"}[$__rate_interval])))',
                        f"p{label}",
                    )
                    for q, label in (("0.5", "50"), ("0.99", "99"))
                ],
                "timeseries",
            ),
        ],
    ),
    (
        "Enforcer health",
        [
            ("Redis breaker open (replicas)", "short", [('sum(rls_redis_breaker_open{job=~"$job"})', "open")], "stat"),
            ("Live replicas (heartbeat)", "short", [('max(rls_live_replicas{job=~"$job"})', "live")], "stat"),
            (
                "Redis errors/s",
                "short",
                [('sum(rate(rls_redis_errors_total{job=~"$job"}[$__rate_interval]))', "errors")],
                "timeseries",
            ),
            (
                "Failure-mode decisions/s",
                "reqps",
                [
                    (
                        'sum by (decision) (rate(rls_decisions_total{job=~"$job",decision=~"failure_.*"}'
                        "[$__rate_interval]))",
                        "{{decision}}",
                    ),
                    (
                        'sum by (decision) (rate(rls_local_decisions_total{job=~"$job"}[$__rate_interval]))',
                        "local {{decision}}",
                    ),
                ],
                "timeseries",
            ),
            (
                "Breaker transitions",
                "short",
                [
                    (
                        'sum by (state) (increase(rls_redis_breaker_transitions_total{job=~"$job"}[$__range]))',
                        "{{state}}",
                    )
                ],
                "stat",
            ),
            (
                "Emergency override decisions/s",
                "reqps",
                [
                    (
                        'sum by (mode) (rate(rls_emergency_override_decisions_total{job=~"$job"}[$__rate_interval]))',
                        "{{mode}}",
                    )
                ],
                "timeseries",
            ),
            (
                "Stats flushes and label overflow",
                "short",
                [
                    (
                        'sum by (result) (rate(rls_stats_flushes_total{job=~"$job"}[$__rate_interval]))',
                        "flush {{result}}",
                    ),
                    ('sum(rate(rls_tenant_label_overflow_total{job=~"$job"}[$__rate_interval]))', "label overflow"),
                ],
                "timeseries",
            ),
            (
                "ShouldRateLimit descriptors/s",
                "short",
                [
                    (
                        'sum by (code) (rate(rls_ratelimit_descriptors_total{job=~"$job"}[$__rate_interval]))',
                        "{{code}}",
                    ),
                    ('sum(rate(rls_unknown_descriptors_total{job=~"$job"}[$__rate_interval]))', "unknown"),
                ],
                "timeseries",
            ),
            (
                "Versions and modes",
                "short",
                [
                    (
                        'count by (version, failure_mode, shadow) (rls_build_info{job=~"$job"})',
                        "{{version}} {{failure_mode}} shadow={{shadow}}",
                    )
                ],
                "table",
            ),
            (
                "Defaults loaded / admin requests",
                "short",
                [
                    ('min(rls_defaults_loaded{job=~"$job"})', "defaults loaded (min)"),
                    ('sum by (code) (rate(rls_admin_requests_total{job=~"$job"}[$__rate_interval]))', "admin {{code}}"),
                ],
                "timeseries",
            ),
        ],
    ),
    (
        "overrides-sync",
        [
            (
                "Age of the limits in Redis",
                "s",
                [("time() - max(overrides_sync_last_success_timestamp_seconds)", "age")],
                "stat",
            ),
            ("Tenants with their own limits", "short", [("max(overrides_sync_tenants)", "tenants")], "stat"),
            ("Leaders (should be 1)", "short", [("sum(overrides_sync_leader)", "leaders")], "stat"),
            ("Source document OK", "short", [("min(overrides_sync_source_ok)", "ok")], "stat"),
            ("Generation", "short", [("max(overrides_sync_generation)", "generation")], "stat"),
            (
                "Syncs by result",
                "short",
                [("sum by (result) (increase(overrides_sync_syncs_total[$__rate_interval]))", "{{result}}")],
                "timeseries",
            ),
            (
                "Errors by kind",
                "short",
                [("sum by (kind) (increase(overrides_sync_errors_total[$__rate_interval]))", "{{kind}}")],
                "timeseries",
            ),
            (
                "Tenant changes and Redis writes",
                "short",
                [
                    ("sum by (change) (increase(overrides_sync_tenant_changes_total[$__rate_interval]))", "{{change}}"),
                    ("sum(increase(overrides_sync_redis_writes_total[$__rate_interval]))", "redis writes"),
                    (
                        "sum by (reason) (increase(overrides_sync_watch_restarts_total[$__rate_interval]))",
                        "watch {{reason}}",
                    ),
                ],
                "timeseries",
            ),
            (
                "Apply duration p99",
                "s",
                [
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(overrides_sync_apply_duration_seconds_bucket"
                        "[$__rate_interval])))",
                        "p99",
                    )
                ],
                "timeseries",
            ),
        ],
    ),
]


def panel(pid: int, title: str, unit: str, targets: list[tuple[str, str]], kind: str, x: int, y: int) -> dict:
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8 if kind != "stat" else 4, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def build() -> dict:
    panels = []
    pid, y = 1, 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y = pid + 1, y + 1
        for i, (title, unit, targets, kind) in enumerate(row_panels):
            panels.append(panel(pid, title, unit, targets, kind, (i % 3) * 8, y + (i // 3) * 8))
            pid += 1
        y += ((len(row_panels) + 2) // 3) * 8
    return {
        "title": "Mimir Edge Enforcement",
        "uid": "mimir-edge-enforcement",
        "tags": ["mimir", "rate-limiting", "envoy"],
        "timezone": "",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
                {
                    "name": "job",
                    "type": "query",
                    "label": "RLS job",
                    "datasource": DS,
                    "query": "label_values(rls_build_info, job)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")
