"""What Mimir charges and what the edge charges, rule by rule: the parity table of docs/parity.md.

Each rule names the Mimir code it follows (Mimir 3.1: the `main` branch after the 3.1.0 release,
`pkg/distributor`) and, where the edge mirrors it, the function that does. docs/parity.md holds the
rendered table; tests/unit/test_parity.py fails when the two differ or a named function is gone.
Regenerate: `python tools/parity_doc.py` (`make parity-doc`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

MIMIR_VERSION = "Mimir 3.1 (main after the 3.1.0 release)"
BEGIN = "<!-- parity table: generated from services/mimir_edge/core/parity.py by `make parity-doc` -->"
END = "<!-- end of parity table -->"


#: Prefix of the OTLP rules' functions.
_OTLP = "mimir_edge.core.otlp:"


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    mimir: str
    edge: str
    difference: str
    #: The functions that implement the edge's side ("module:function"); empty when it has none.
    implemented_by: tuple[str, ...] = ()


RULES = (
    Rule(
        "Request rate first",
        "`limitsMiddleware` takes one request token per HTTP request before the body is decoded, also "
        "for requests then refused (400, 413, 415, HA 202 and 400, ingestion-rate 429).",
        "One request token in the same Lua call as the items, also for an HA pair's non-elected "
        "replica. A request the edge refuses as malformed (400/413/415) is not charged; one refused at "
        "the ingestion rate keeps its request token.",
        "Less, for tenants with `request_rate` set only: one request token per request refused at the "
        "ingestion rate or malformed. Neither reaches Mimir's ingesters.",
        ("mimir_edge.core.token_bucket:decide",),
    ),
    Rule(
        "Request burst 0",
        "`requestRateStrategy` gives a zero `request_burst_size` a burst of MaxInt: no request limit.",
        "No request limit when `request_rate` or `request_burst_size` is 0.",
        "None.",
        ("mimir_edge.core.token_bucket:decide",),
    ),
    Rule(
        "HA dedupe (per request)",
        "`prePushHaDedupeMiddleware`, `findHALabels`, `checkReplica` (ha_tracker.go): with "
        "`accept_ha_samples`, the cluster and replica labels of the request's first series; the first "
        "replica seen is elected; another replica's request is answered 202 and charged no items; the "
        "elected one changes once its last-seen time (written at most every `ha_tracker_update_timeout`, "
        "15 s ± 5 s) is `ha_tracker_failover_timeout` old, from a background loop.",
        "The same election in the tenant's Redis slot, decided in the same Lua call as the buckets; the "
        "other replica is elected by its first request at least `ha_tracker_failover_timeout` after the "
        "elected one's last request.",
        "More, only around a failover: the edge elects the new replica up to about 35 s (update timeout, "
        "jitter, one loop tick) before Mimir does; meanwhile it charges the new replica's samples, which "
        "Mimir answers 202.",
        ("mimir_edge.core.ha_tracker:ha_labels", "mimir_edge.core.ha_tracker:track"),
    ),
    Rule(
        "HA replica value too long",
        "`checkSample`: a replica label value longer than `max_label_value_length` is not used for HA: "
        "the request is not deduplicated, and its series then fail validation (400, nothing charged).",
        "The replica is elected whatever its length.",
        "More, only for replica values over `max_label_value_length` (2,048 by default), which no "
        "Prometheus configuration sets.",
        ("mimir_edge.core.ha_tracker:ha_labels",),
    ),
    Rule(
        "HA tracker off in Mimir",
        "With `-distributor.ha-tracker.enable=false`, a tenant's `accept_ha_samples` strips the replica "
        "label and dedupes nothing.",
        "The edge cannot see Mimir's global flag: it dedupes whenever the tenant has `accept_ha_samples`.",
        "Less: half of an HA pair's items. Set `accept_ha_samples` only where Mimir's HA tracker is on.",
    ),
    Rule(
        "HA dedupe per sample (opt-in since 3.1)",
        "`ha_tracker_per_sample_dedupe` decides every (cluster, replica) pair of a request.",
        "Not mirrored: the first series decides for the whole request.",
        "Either way, only for tenants that enable it and mix clusters in one request.",
    ),
    Rule(
        "Too many HA clusters",
        "A new cluster beyond `ha_max_clusters` (0 = no limit) is refused with 400 "
        "(err-mimir-tenant-too-many-ha-clusters); a silent cluster frees its slot 30 to 66 minutes after "
        "its last sample (`cleanupOldReplicas`).",
        "The same 400 and message; a cluster silent for 30 minutes is forgotten.",
        "Less: for up to 36 minutes the edge admits a new cluster that Mimir still refuses (Mimir answers "
        "the 400 itself). The edge never refuses a cluster Mimir accepts.",
        ("mimir_edge.core.ha_tracker:track", "mimir_edge.core.ha_tracker:live_clusters"),
    ),
    Rule(
        "Exemplars",
        "`prePushValidationMiddleware` clears every exemplar of a tenant whose "
        "`max_global_exemplars_per_user` is 0 (the default); otherwise the exemplars that pass validation "
        "are charged. `validateExemplars` first keeps the first `max_exemplars_per_series_per_request` of a "
        "series (0 = all), then drops, without failing the request, an exemplar with timestamp 0, without a "
        "non-empty label, with labels over 128 runes in all (`validateExemplar`), older than the request's "
        "earliest sample minus 5 minutes or later than now plus `creation_grace_period` "
        "(`validateExemplarTimestamp`), or out of order within its series.",
        "Exemplars are charged only when `max_global_exemplars_per_user` is above 0; then every exemplar is.",
        "None at the default. With a limit: more, by the exemplars Mimir's validation drops (old exemplars "
        "re-sent with newer samples, OTLP exemplars without trace id, span id and attributes).",
        ("mimir_edge.core.admission:items_to_charge",),
    ),
    Rule(
        "Nothing left to charge",
        "When no sample, histogram or metadata is left after validation, nothing is charged (an "
        "exemplar-only request, an empty one).",
        "A request with no sample, histogram or metadata is charged nothing.",
        "More, only for requests whose every series is invalid (Mimir answers 400 and charges nothing).",
        ("mimir_edge.core.admission:items_to_charge",),
    ),
    Rule(
        "Native histograms",
        "One item per histogram sample, charged even when native histogram ingestion is off. With "
        "`max_native_histogram_buckets` set, `validateSampleHistogram` drops the series of a histogram "
        "over it: always for custom buckets (NHCB), and for exponential ones unless "
        "`reduce_native_histogram_over_max_buckets` can lower its resolution enough (then it is charged).",
        "One item per histogram sample; bucket counts are not read.",
        "None without `max_native_histogram_buckets` (the default). With it: more, by the series Mimir "
        "drops for too many buckets.",
        ("mimir_edge.core.remote_write:count_write_request",),
    ),
    Rule(
        "Metadata",
        "One item per metadata entry that passes `cleanAndValidateMetadata`. RW2 (`MetricMetadataUnmarshalRW2`, "
        "`dedupingMetadataSet`): one entry per metric family in the request, counted when the metadata's type is "
        "set or its help or unit is not empty; the family is the `__name__` read before the metadata, without "
        "the suffix its type implies (`normalizeMetricName`: `_bucket`, `_count`, `_sum` for histograms; "
        "`_bucket`, `_gcount`, `_gsum` for gauge histograms; `_count`, `_sum` for summaries). A type, help or "
        "unit reference that is not a varint is a 400.",
        "The same, with the family named by the series' last `__name__` label (its label references read as "
        "one list); the same 400s.",
        "More, by the metadata entries Mimir's validation drops. For RW2, one item more or less per family "
        "only for a series that puts its metadata before its `__name__` label or repeats `__name__` after it "
        "(no sender writes a series so). Requests Mimir refuses for their references (unpacked or odd label "
        "references, references outside the symbols table, symbols after the series, a non-empty first symbol) "
        "are counted by the same rule; Mimir charges them nothing.",
        ("mimir_edge.core.remote_write:count_write_request", "mimir_edge.core.remote_write:_rw2_metadata_families"),
    ),
    Rule(
        "Invalid series",
        "A series failing validation (label count or length, label names, missing metric name, duplicate "
        "label names, a sample more than `creation_grace_period` in the future) is removed whole before "
        "the ingestion rate; the request gets 400 for it. A series whose label values are all empty is "
        "removed silently (`prePushSortAndFilterMiddleware`).",
        "Every series is charged.",
        "More, by the invalid series' items; those requests get Mimir's 400.",
    ),
    Rule(
        "Duplicate timestamps",
        "Within one series, only the first sample per timestamp is kept and charged.",
        "Every sample is charged.",
        "More, by the duplicates (Prometheus never sends them).",
    ),
    Rule(
        "Relabelling and drop_labels",
        "`metric_relabel_configs` run before the ingestion rate: series they drop are not charged; "
        "`drop_labels` changes labels, not counts.",
        "Every series is charged.",
        "More, for tenants whose relabel rules drop series.",
    ),
    Rule(
        "Request size",
        "A remote_write body over `-distributor.max-recv-msg-size` (100 MiB by default) is refused with "
        "413; OTLP has its own `max_otlp_request_size` (also 100 MiB).",
        "413 for a body over MAX_REQUEST_BYTES (50 MiB by default) as sent or decompressed, before "
        "anything is charged.",
        "Refuses bodies between MAX_REQUEST_BYTES and Mimir's limit that Mimir would take; set "
        "MAX_REQUEST_BYTES to Mimir's limit where senders batch that much (RLS memory grows with it).",
    ),
    Rule(
        "Burst",
        "Each distributor has the whole `ingestion_burst_size` (rate divided among distributors); with "
        "`ingestion_burst_factor`, ceil(factor × rate / distributors) each.",
        "One bucket for the fleet: `ingestion_burst_size`, or factor × rate.",
        "Without a factor the edge allows one burst where Mimir allows one per distributor (stricter in "
        "bursts, equal at the sustained rate). With a factor, a single request between factor × rate / "
        "distributors and factor × rate is refused by Mimir and admitted by the edge.",
        ("mimir_edge.core.limits:TenantLimits",),
    ),
    Rule(
        "Charging by Envoy's rate limit filter",
        "-",
        "With `charge: ratelimit` the check counts the items before the tenant's limits are known, so "
        "exemplars are always charged, HA pairs are not deduplicated, and an OTLP write is charged as under "
        "Mimir's defaults (classic histograms, delta refused).",
        "More, by exemplars and HA duplicates; for OTLP tenants with `otel_convert_histograms_to_nhcb` more "
        "(classic buckets), with `otel_native_delta_ingestion` less (their delta points). `charge: check` "
        "(the default) has full parity.",
    ),
    Rule(
        "OTLP routing",
        "`/otlp/v1/metrics` is converted to series and charged to the same limits as remote_write.",
        "The RLS counts and charges a check for `/otlp/v1/metrics` on the same buckets. Every generated "
        "Envoy config (render-envoy, the chart, compose, the local stack) sends every path through the "
        "check, OTLP included, on both ext_authz transports and both charge modes; OTLP is enforced "
        "wherever NGINX sends that path to Envoy.",
        "Less where NGINX sends OTLP straight to Mimir: every OTLP item.",
        ("mimir_edge.core.otlp:count_otlp_request",),
    ),
    Rule(
        "OTLP content rules",
        "`newOTLPParser`: Content-Type exactly `application/x-protobuf` or `application/json`, "
        "Content-Encoding exactly gzip, lz4, zstd or none, else 415; too large 413; undecodable 400; each "
        "after the request token was taken. Answers are a `google.rpc.Status` in the request's format "
        "(protobuf for a 415).",
        "The same statuses and messages, as a `google.rpc.Status` in the request's format (the gRPC "
        "ext_authz transport can only carry a string body: JSON there, typed `application/json`); "
        "decompression stops at MAX_REQUEST_BYTES. Such a request is not charged.",
        "Less: one request token per refused request, for tenants with `request_rate` set (as for "
        "remote_write). The 413 limit is MAX_REQUEST_BYTES, not Mimir's `max_otlp_request_size`.",
        (_OTLP + "request_format", _OTLP + "check_content_encoding", _OTLP + "decompress", _OTLP + "status_body"),
    ),
    Rule(
        "OTLP/JSON decoding",
        "`newOTLPParser` reads JSON with pdata's `ExportRequest.UnmarshalJSON` (jsoniter): a key is a "
        "field's JSON or proto name, unknown keys are skipped; a key given twice appends (lists), merges "
        "(messages) or takes the last value (scalars; a oneof takes its last member); enums are a known "
        "name or a number; 64-bit integers a JSON integer or a decimal string; exemplar trace and span "
        "ids hexadecimal of 16 and 8 bytes; values nest at any depth. Anything else is a 400 with "
        "jsoniter's message.",
        "The same rules (`otlp_json`), then the message is counted as a protobuf body is. List and map "
        "attribute values are not decoded for counting (protobuf and JSON bodies alike), so their depth "
        "changes nothing.",
        "The 400's message names the field in the edge's words, not jsoniter's. JSON nested deeper than "
        "Python's recursion limit (about 240 levels of attribute values) and invalid UTF-8 anywhere in a "
        "JSON body are a 400 here. A protobuf list or map value is not checked for malformed content "
        "(pdata decodes it and refuses it).",
        ("mimir_edge.core.otlp_json:parse_export_request",),
    ),
    Rule(
        "OTLP gauges and sums",
        "`addGaugeNumberDataPoints` / `addSumNumberDataPoints`: one sample per point; a non-monotonic sum "
        "is converted as a gauge; gauges and non-monotonic sums drop their exemplars.",
        "The same.",
        "None.",
        (_OTLP + "gauge_samples", _OTLP + "sum_samples", _OTLP + "exemplars_kept"),
    ),
    Rule(
        "OTLP temporality",
        "`isValidAggregationTemporality`: a sum, histogram or exponential histogram that is not cumulative "
        "is dropped whole (400 `otlp parse error` for the request, the rest ingested and charged), unless it "
        "is delta and the tenant has `otel_native_delta_ingestion`. Unspecified temporality is always dropped.",
        "Counted with and without the delta metrics; the Lua decision picks by the tenant's "
        "`otel_native_delta_ingestion`, read in the same call that charges.",
        "None.",
        (_OTLP + "temporality_accepted",),
    ),
    Rule(
        "OTLP classic histograms",
        "`addHistogramDataPoints`: a `_bucket` per explicit bound that has a count (min of the two lengths), "
        '`le="+Inf"`, `_count`, and `_sum` when the point has one; every exemplar kept. With '
        "`otel_convert_histograms_to_nhcb`: one native histogram per point "
        "(`addCustomBucketsHistogramDataPoints`).",
        "Counted both ways; the Lua decision picks by the tenant's `otel_convert_histograms_to_nhcb`.",
        "None.",
        (_OTLP + "classic_histogram_point_samples", _OTLP + "nhcb_histogram_samples"),
    ),
    Rule(
        "OTLP exponential histograms and summaries",
        "`addExponentialHistogramDataPoints`: one native histogram per point (a point with a scale below "
        "-4 fails and drops the rest of its metric). `addSummaryDataPoints`: `_sum`, `_count` and one per "
        "quantile; exemplars dropped.",
        "One per exponential point whatever its scale; summaries the same.",
        "More, only for exponential histograms with a scale below -4 (which no SDK sends).",
        (_OTLP + "exponential_histogram_samples", _OTLP + "summary_samples"),
    ),
    Rule(
        "OTLP target_info",
        "`addResourceTargetInfo`: per resource with at least one point (dropped metrics included), at least "
        "one attribute besides service.name/namespace/instance.id, and a job or instance: a sample at the "
        "earliest point's time, every 2.5 min while before the latest, one at the latest; resources with "
        "the same label set make one series, same-millisecond samples count once.",
        "The same; resources are the same series when their attributes are identical as sent.",
        "More, only when two resources' attributes differ as sent but give the same labels (e.g. `a.b` and "
        "`a_b`), by their shared samples; or when one resource spans over 4096 samples (10 days of points), "
        "not de-duplicated against the others.",
        (_OTLP + "target_info_samples", _OTLP + "target_info_labels"),
    ),
    Rule(
        "OTLP metadata",
        "`MimirAppender.appendMetadata`: an entry when a metric family is first seen in the request or its "
        "help, unit or type changes; one for target_info.",
        "The same, with the family named by the OTLP metric name as sent.",
        "More, when two OTLP names translate to one Prometheus family with the same help, unit and type: "
        "one entry per extra name.",
        (_OTLP + "metadata_entries",),
    ),
    Rule(
        "OTLP dropped and merged series",
        "Metrics with no points, no data or an empty name are dropped; with legacy name escaping, a name "
        "that normalizes to nothing (e.g. `...`) too. `MimirAppender` merges points with identical labels "
        "into one series, and same-timestamp samples are charged once.",
        "Empty names, empty metrics and metrics without data are not charged; every other point is.",
        "More, by names that only normalize to nothing and by points that merge into another's series "
        "at the same timestamp.",
    ),
    Rule(
        "OTLP HA labels",
        "HA dedupe reads the first converted series: first metric, first point; labels from the point's "
        "attributes, `job`/`instance`, promoted resource attributes and scope labels.",
        "The first metric converted under Mimir's defaults: its first point's string, int and bool "
        "attributes, `job` and `instance`.",
        "Either way, only for HA tenants whose cluster or replica label comes from a promoted resource "
        "attribute, or whose first metric is a delta one they ingest natively.",
    ),
    Rule(
        "OTLP batched streaming",
        "An optional mode (flag and default unverified) pushes each batch of ResourceMetrics separately: a "
        "request token and an ingestion charge per batch.",
        "One request token and one charge per HTTP request.",
        "Less, only where that mode is on: the extra request tokens.",
    ),
)


def check_implementations() -> list[str]:
    """The named functions that no longer exist (empty when the table is true to the code)."""
    missing = []
    for rule in RULES:
        for target in rule.implemented_by:
            module_name, _, attribute = target.partition(":")
            if not hasattr(importlib.import_module(module_name), attribute):
                missing.append(f"{rule.name}: {target}")
    return missing


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The table, in Markdown, between its markers."""
    lines = [
        BEGIN,
        f"| rule | what {MIMIR_VERSION} does | what the edge does | worst-case difference (edge charges …) | code |",
        "|---|---|---|---|---|",
    ]
    for rule in RULES:
        code = ", ".join(f"`{t.replace(':', '.')}`" for t in rule.implemented_by) or "-"
        cells = (rule.name, rule.mimir, rule.edge, rule.difference, code)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines.append(END)
    return "\n".join(lines) + "\n"
