{{/*
_helpers.tpl — names, labels and checks shared by every template of this
chart. The five tributary charts carry the same templates (only svc-ingest
adds pvc.yaml); deploy/helm/check.sh keeps them identical.
*/}}

{{/* The service name: the chart's name (svc-ingest, ...). */}}
{{- define "tributary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name of every object the chart makes. */}}
{{- define "tributary.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "tributary.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tributary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tributary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tributary.labels" -}}
{{ include "tributary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tributary
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The HTTP port (/healthz, /readyz, /metrics): config key http.port. */}}
{{- define "tributary.httpPort" -}}
{{- required "config.http.port is required" (index .Values.config "http.port") | int -}}
{{- end -}}

{{/*
One value of tributary.properties: a list becomes comma-separated (list
keys such as `dataset`); a whole number stays a whole number (Helm reads
numbers as floats and would print 1000000 as 1e+06).
*/}}
{{- define "tributary.propValue" -}}
{{- if kindIs "slice" . -}}
{{- join "," . -}}
{{- else if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* Environment variable naming a secret file for a config key:
     redis.password → TB_REDIS_PASSWORD_FILE (libcore core_config.h). */}}
{{- define "tributary.secretEnvName" -}}
{{- printf "TB_%s_FILE" (. | upper | replace "." "_" | replace "-" "_") -}}
{{- end -}}

{{/* Refuse values that would make a pod that cannot stop cleanly or that
     would put a secret into the ConfigMap. */}}
{{- define "tributary.validate" -}}
{{- $grace := index .Values.config "shutdown.grace.ms" | default 30000 | int64 -}}
{{- $term := .Values.terminationGracePeriodSeconds | int64 -}}
{{- if le (mul $term 1000) $grace -}}
{{- fail (printf "terminationGracePeriodSeconds (%d s) must be longer than config shutdown.grace.ms (%d ms): the kubelet kills the pod while it still drains" $term $grace) -}}
{{- end -}}
{{- range $k, $v := .Values.config -}}
{{- if regexMatch "(?i)(password|secret|token)" $k -}}
{{- fail (printf "config.%s looks like a secret: keep it out of the ConfigMap and list it under secrets: (mounted as a file, passed as %s)" $k (include "tributary.secretEnvName" $k)) -}}
{{- end -}}
{{- if regexMatch "^[A-Z_]" $k -}}
{{- fail (printf "config.%s: config keys are lower-case with dots (log.level, kafka.bootstrap.servers)" $k) -}}
{{- end -}}
{{- end -}}
{{- with index .Values.config "pg.conninfo" -}}
{{- if regexMatch "(?i)password\\s*=" (toString .) -}}
{{- fail "config.pg.conninfo holds a password: give it through secrets: as pg.password instead" -}}
{{- end -}}
{{- end -}}
{{- with index .Values.config "mongo.uri" -}}
{{- if contains "@" (toString .) -}}
{{- fail "config.mongo.uri holds credentials: give the whole URI through secrets: as mongo.uri instead" -}}
{{- end -}}
{{- end -}}
{{- with index .Values.config "sink" -}}
{{- if not (has (toString .) (list "postgres" "mongodb")) -}}
{{- fail (printf "config.sink must be postgres or mongodb (got %v)" .) -}}
{{- end -}}
{{- end -}}
{{- range .Values.secrets -}}
{{- if not (and .key .secretName .secretKey) -}}
{{- fail (printf "secrets: every entry needs key, secretName and secretKey (got %v)" .) -}}
{{- end -}}
{{- if not (kindIs "invalid" (index $.Values.config .key)) -}}
{{- fail (printf "%s is given both in config: and in secrets:; keep only the secret" .key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
