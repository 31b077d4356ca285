{{/* Chart name, overridable (the umbrella sets it). */}}
{{- define "envoy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name: fullnameOverride, else the release name (when it already contains the chart name), else release-chart. */}}
{{- define "envoy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "envoy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "envoy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "envoy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "envoy.labels" -}}
helm.sh/chart: {{ include "envoy.chart" . }}
{{ include "envoy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default (printf "v%s" .Chart.AppVersion) | quote }}
app.kubernetes.io/component: proxy
app.kubernetes.io/part-of: mimir-edge-enforcement
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.environment }}
environment: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "envoy.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default (printf "v%s" .Chart.AppVersion)) -}}
{{- end -}}


{{/* Python's f"{seconds:g}s" (deploy/envoy.py _duration), for Envoy durations. */}}
{{- define "envoy.duration" -}}
{{- printf "%gs" (float64 .) -}}
{{- end -}}

{{/* STATIC when the host is an IP address (as deploy/envoy.py decides), STRICT_DNS otherwise. */}}
{{- define "envoy.discoveryType" -}}
{{- if or (regexMatch "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$" .) (contains ":" .) -}}STATIC{{- else -}}STRICT_DNS{{- end -}}
{{- end -}}

{{/* The RLS host, which may use templates (e.g. the release namespace). */}}
{{- define "envoy.rlsHost" -}}
{{- tpl .Values.config.rls.host . -}}
{{- end -}}

{{/* The ext_authz transport: config.authzTransport, or when empty http (charge check) / grpc
(charge ratelimit, which needs it), as deploy/envoy.py DEFAULT_TRANSPORT. */}}
{{- define "envoy.authzTransport" -}}
{{- .Values.config.authzTransport | default (ternary "grpc" "http" (eq .Values.config.charge "ratelimit")) -}}
{{- end -}}

{{/* Envoy's failure mode: config.failureModeAllow, or in the umbrella chart (which removes that
key) global.failureModeAllow, the one value the RLS's FAILURE_MODE_ALLOW comes from too. */}}
{{- define "envoy.failureModeAllow" -}}
{{- if hasKey .Values.config "failureModeAllow" -}}
{{- .Values.config.failureModeAllow -}}
{{- else if hasKey (.Values.global | default dict) "failureModeAllow" -}}
{{- .Values.global.failureModeAllow -}}
{{- else -}}
{{- fail "config.failureModeAllow (or, in the umbrella chart, global.failureModeAllow) is required" -}}
{{- end -}}
{{- end -}}
