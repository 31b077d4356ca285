{{/* Chart name, overridable (the umbrella sets it). */}}
{{- define "overrides-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name: fullnameOverride, else the release name (when it already contains the chart name), else release-chart. */}}
{{- define "overrides-sync.fullname" -}}
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

{{- define "overrides-sync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "overrides-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "overrides-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "overrides-sync.labels" -}}
helm.sh/chart: {{ include "overrides-sync.chart" . }}
{{ include "overrides-sync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: overrides-sync
app.kubernetes.io/part-of: mimir-edge-enforcement
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.environment }}
environment: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "overrides-sync.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
Redis connection env: REDIS_CLUSTER_NODES (Cluster mode) and/or REDIS_URL, plus REDIS_TIMEOUT.
REDIS_URL never carries the password: it comes from an existing Secret as REDIS_PASSWORD, which both
services read as it is, so any character (@ / : %) works and it never appears in the manifest.
The same helper is in charts/mimir-rls (tests check both render the same env).
*/}}
{{- define "overrides-sync.redisEnv" -}}
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

{{- define "overrides-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "overrides-sync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the Lease lives: our own namespace unless set (see role.yaml for why). */}}
{{- define "overrides-sync.leaseNamespace" -}}
{{- .Values.leaderElection.namespace | default .Release.Namespace -}}
{{- end -}}
