{{- define "mimir-edge-enforcement.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mimir-edge-enforcement.devRedisSelectorLabels" -}}
app.kubernetes.io/name: {{ .Values.devRedis.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mimir-edge-enforcement.devRedisLabels" -}}
helm.sh/chart: {{ include "mimir-edge-enforcement.chart" . }}
{{ include "mimir-edge-enforcement.devRedisSelectorLabels" . }}
app.kubernetes.io/version: {{ .Values.devRedis.image.tag | quote }}
app.kubernetes.io/component: redis
app.kubernetes.io/part-of: mimir-edge-enforcement
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.global.environment }}
environment: {{ . | quote }}
{{- end }}
{{- end -}}
