{{/*
_helpers.tpl — names, labels and checks shared by every template of this
chart. The five tributary charts carry the same templates (only svc-ingest
adds pvc.yaml); deploy/check.sh keeps them identical.
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
{{- $cfg := include "tributary.config" . | fromYaml -}}
{{- $rt := .Values.redisTls | default dict -}}
{{- if $rt.enabled -}}
{{- if not (and $rt.connect $rt.caSecretName (dig "image" "repository" "" $rt) (dig "image" "tag" "" $rt)) -}}
{{- fail "redisTls.enabled needs redisTls.connect (host:port of Redis's TLS port), redisTls.caSecretName (a Secret holding the CA) and redisTls.image.repository and .tag (an image with stunnel)" -}}
{{- end -}}
{{- if or (ne (toString (index $cfg "redis.host")) "127.0.0.1") (ne (toString (index $cfg "redis.port")) (toString $rt.localPort)) -}}
{{- fail (printf "redisTls.enabled: set config redis.host to 127.0.0.1 and redis.port to redisTls.localPort (%v): the service speaks plaintext to its stunnel sidecar" $rt.localPort) -}}
{{- end -}}
{{- end -}}
{{- range $k, $v := $cfg -}}
{{- if regexMatch "(?i)(password|secret|token)" $k -}}
{{- fail (printf "config.%s looks like a secret: keep it out of the ConfigMap and list it under secrets: (mounted as a file, passed as %s)" $k (include "tributary.secretEnvName" $k)) -}}
{{- end -}}
{{- if regexMatch "^[A-Z_]" $k -}}
{{- fail (printf "config.%s: config keys are lower-case with dots (log.level, kafka.bootstrap.servers)" $k) -}}
{{- end -}}
{{- end -}}
{{- with index $cfg "pg.conninfo" -}}
{{- if regexMatch "(?i)password\\s*=" (toString .) -}}
{{- fail "config.pg.conninfo holds a password: give it through secrets: as pg.password instead" -}}
{{- end -}}
{{- end -}}
{{- with index $cfg "mongodb.uri" -}}
{{- if contains "@" (toString .) -}}
{{- fail "config.mongodb.uri holds credentials: give the whole URI through secrets: as mongodb.uri instead" -}}
{{- end -}}
{{- end -}}
{{- with index $cfg "sink" -}}
{{- if not (has (toString .) (list "postgres" "mongodb" "mysql")) -}}
{{- fail (printf "config.sink must be postgres, mongodb or mysql (got %v)" .) -}}
{{- end -}}
{{- end -}}
{{- range (include "tributary.secrets" . | fromYamlArray) -}}
{{- if not (and .key .secretName .secretKey) -}}
{{- fail (printf "secrets: every entry needs key, secretName and secretKey (got %v)" .) -}}
{{- end -}}
{{- if not (kindIs "invalid" (index $cfg .key)) -}}
{{- fail (printf "%s is given both in config: and in secrets:; keep only the secret" .key) -}}
{{- end -}}
{{- end -}}
{{- include "tributary.validateScaling" . -}}
{{- end -}}

{{/*
Autoscaling limits. Each service is one Kafka consumer group: a partition is
read by one member of the group at a time, so members beyond the partition
count of the input topic get no partition and sit idle (they still cost a
pod, a connection and a rebalance each time they come and go). So
maxReplicas may not exceed autoscaling.partitions, the partition count the
operator states for the input topic(s).
*/}}
{{- define "tributary.validateScaling" -}}
{{- $a := .Values.autoscaling -}}
{{- if $a.enabled -}}
{{- $min := $a.minReplicas | int -}}
{{- $max := $a.maxReplicas | int -}}
{{- $parts := required "autoscaling.partitions (the partition count of the input topic) is required when autoscaling is enabled" $a.partitions | int -}}
{{- if gt $max $parts -}}
{{- fail (printf "autoscaling.maxReplicas (%d) is above autoscaling.partitions (%d): a consumer group never gives a partition to more than one member, so the extra replicas would sit idle; add partitions first" $max $parts) -}}
{{- end -}}
{{- if or (lt $min 1) (gt $min $max) -}}
{{- fail (printf "autoscaling: need 1 <= minReplicas (%d) <= maxReplicas (%d)" $min $max) -}}
{{- end -}}
{{- if $a.keda.enabled -}}
{{- if not (include "tributary.kedaGroup" .) -}}
{{- fail (printf "autoscaling.keda: %s has no consumer group (config group.id or autoscaling.keda.consumerGroup): it does not read a Kafka topic, so it cannot scale on lag" .Chart.Name) -}}
{{- end -}}
{{- if not (include "tributary.kedaTopics" . | fromYamlArray) -}}
{{- fail "autoscaling.keda: no topic to measure lag on (autoscaling.keda.topics, or topicTemplate over config dataset)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The configuration that goes into tributary.properties, as YAML: .Values.config
with the umbrella chart's shared values (global.tributary, see
deploy/helm/tributary) laid over the keys this service declares. A shared
value only replaces a key that the chart's config: names (even as null):
the services refuse keys they do not know (exit 78).
*/}}
{{- define "tributary.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) -}}
{{- $g := dig "tributary" dict (.Values.global | default dict) -}}
{{- $map := dict
    "kafka.bootstrap.servers" (dig "kafka" "bootstrapServers" "" $g)
    "schema.registry.url" (dig "registry" "url" "" $g)
    "redis.host" (dig "redis" "host" "" $g)
    "redis.port" (dig "redis" "port" "" $g)
    "pg.conninfo" (dig "postgres" "conninfo" "" $g) -}}
{{- range $k, $v := $map -}}
{{- if and $v (hasKey $cfg $k) -}}
{{- $_ := set $cfg $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
The secrets this pod mounts, as a YAML list: the chart's secrets: plus the
umbrella's global.tributary.secrets whose key belongs to a family this
service configures (kafka.sasl.password to every service, redis.password
where a redis.* key is set, pg.password where pg.*, mysql.password where mysql.*,
mongodb.uri where mongodb.*). The chart's own entry for a key wins.
*/}}
{{- define "tributary.secrets" -}}
{{- $own := .Values.secrets | default list -}}
{{- $out := list -}}
{{- $have := dict -}}
{{- range $own -}}
{{- $out = append $out . -}}
{{- $_ := set $have (toString .key) true -}}
{{- end -}}
{{- $cfg := .Values.config | default dict -}}
{{- range (dig "tributary" "secrets" list (.Values.global | default dict)) -}}
{{- $key := toString .key -}}
{{- $family := printf "%s." (splitList "." $key | first) -}}
{{- $used := false -}}
{{- range $k, $v := $cfg -}}
{{- if hasPrefix $family $k -}}{{- $used = true -}}{{- end -}}
{{- end -}}
{{- if and $used (not (hasKey $have $key)) -}}
{{- $out = append $out . -}}
{{- $_ := set $have $key true -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* KEDA: the consumer group whose lag is measured: config group.id, or
     autoscaling.keda.consumerGroup for a service that derives its group
     when group.id is not set. */}}
{{- define "tributary.kedaGroup" -}}
{{- index (.Values.config | default dict) "group.id" | default .Values.autoscaling.keda.consumerGroup | default "" -}}
{{- end -}}

{{/* KEDA: the input topics, as a YAML list: autoscaling.keda.topics, or
     topicTemplate with {dataset} replaced by each of config dataset. */}}
{{- define "tributary.kedaTopics" -}}
{{- $k := .Values.autoscaling.keda -}}
{{- $topics := $k.topics | default list -}}
{{- if and (not $topics) $k.topicTemplate -}}
{{- range (index (.Values.config | default dict) "dataset" | default list) -}}
{{- $topics = append $topics (replace "{dataset}" (toString .) $k.topicTemplate) -}}
{{- end -}}
{{- end -}}
{{- toYaml $topics -}}
{{- end -}}
