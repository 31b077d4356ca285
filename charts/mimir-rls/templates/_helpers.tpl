{{/* Chart name, overridable (the umbrella sets it). */}}
{{- define "mimir-rls.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name: fullnameOverride, else the release name (when it already contains the chart name), else release-chart. */}}
{{- define "mimir-rls.fullname" -}}
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

{{/* The headless Service Envoy resolves (STRICT_DNS) to reach every replica: per-request balancing, health checks and outlier ejection per pod, not per ClusterIP. */}}
{{- define "mimir-rls.headlessName" -}}
{{- printf "%s-headless" (include "mimir-rls.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mimir-rls.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mimir-rls.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mimir-rls.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mimir-rls.labels" -}}
helm.sh/chart: {{ include "mimir-rls.chart" . }}
{{ include "mimir-rls.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: rate-limit-service
app.kubernetes.io/part-of: mimir-edge-enforcement
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.environment }}
environment: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "mimir-rls.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
Redis connection env: REDIS_CLUSTER_NODES (Cluster mode) and/or REDIS_URL, plus REDIS_TIMEOUT.
REDIS_URL never carries the password: it comes from an existing Secret as REDIS_PASSWORD, which both
services read as it is, so any character (@ / : %) works and it never appears in the manifest.
The same helper is in charts/overrides-sync (tests check both render the same env).
*/}}
{{- define "mimir-rls.redisEnv" -}}
{{- $r := .Values.redis -}}
{{- if $r.clusterNodes }}
- name: REDIS_CLUSTER_NODES
  value: {{ join "," $r.clusterNodes | quote }}
{{- end }}
{{- if $r.urlSecret.name }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $r.urlSecret.name }}
      key: {{ $r.urlSecret.key }}
{{- else if or (empty $r.clusterNodes) $r.tls }}
{{- /* In Cluster mode REDIS_URL only says rediss:// (TLS) for every node; its host is not used. */}}
{{- $scheme := ternary "rediss" "redis" $r.tls -}}
{{- $host := ternary "cluster-nodes" $r.host (not (empty $r.clusterNodes)) }}
- name: REDIS_URL
  value: {{ printf "%s://%s:%d/%d" $scheme $host (int $r.port) (int $r.db) | quote }}
{{- end }}
{{- if $r.auth.existingSecret }}
{{- with $r.auth.username }}
- name: REDIS_USERNAME
  value: {{ . | quote }}
{{- end }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.auth.existingSecret }}
      key: {{ $r.auth.passwordKey }}
{{- end }}
- name: REDIS_TIMEOUT
  value: {{ $r.timeoutSeconds | toString | quote }}
{{- end -}}

{{/* The pod's replica count as the RLS sees it (local failure mode divides a tenant's budget by it). */}}
{{- define "mimir-rls.replicasHint" -}}
{{- if .Values.autoscaling.enabled -}}
{{- .Values.autoscaling.minReplicas | default .Values.replicas -}}
{{- else -}}
{{- .Values.replicas -}}
{{- end -}}
{{- end -}}

{{/* FAILURE_MODE_ALLOW: config.failureModeAllow, or in the umbrella chart (which removes that key)
global.failureModeAllow, the one value Envoy's failure_mode_allow comes from too. */}}
{{- define "mimir-rls.failureModeAllow" -}}
{{- if hasKey .Values.config "failureModeAllow" -}}
{{- .Values.config.failureModeAllow -}}
{{- else if hasKey (.Values.global | default dict) "failureModeAllow" -}}
{{- .Values.global.failureModeAllow -}}
{{- else -}}
{{- fail "config.failureModeAllow (or, in the umbrella chart, global.failureModeAllow) is required" -}}
{{- end -}}
{{- end -}}
