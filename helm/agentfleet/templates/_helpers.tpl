{{/* The prefix of every object's name. */}}
{{- define "agentfleet.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentfleet.labels" -}}
app.kubernetes.io/name: agentfleet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "worker" "pool" "default"). */}}
{{- define "agentfleet.selector" -}}
app.kubernetes.io/name: agentfleet
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .pool }}
agentfleet.dev/pool: {{ .pool }}
{{- end }}
{{- end -}}

{{- define "agentfleet.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "agentfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ default (include "agentfleet.fullname" .) .Values.serviceAccount.name }}
{{- else -}}
{{ default "default" .Values.serviceAccount.name }}
{{- end -}}
{{- end -}}

{{/* The fleet config as the processes read it: the user's, plus what the chart owns. */}}
{{- define "agentfleet.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- if not $cfg.agents -}}
{{- $cfg = mergeOverwrite (.Files.Get "files/example-fleet.yaml" | fromYaml) $cfg -}}
{{- end -}}
{{- $kafka := default dict $cfg.kafka -}}
{{- $props := default dict $kafka.properties -}}
{{- $_ := set $props "bootstrap.servers" .Values.kafka.bootstrapServers -}}
{{- if .Values.kafka.sasl.enabled -}}
{{- $_ := set $props "security.protocol" (ternary "SASL_SSL" "SASL_PLAINTEXT" .Values.kafka.tls.enabled) -}}
{{- $_ := set $props "sasl.mechanisms" .Values.kafka.sasl.mechanism -}}
{{- $_ := set $props "sasl.username" .Values.kafka.sasl.username -}}
{{- $env := default dict $kafka.properties_env -}}
{{- $_ := set $env "sasl.password" "KAFKA_SASL_PASSWORD" -}}
{{- $_ := set $kafka "properties_env" $env -}}
{{- else if .Values.kafka.tls.enabled -}}
{{- $_ := set $props "security.protocol" "SSL" -}}
{{- end -}}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret -}}
{{- $_ := set $props "ssl.ca.location" (printf "/etc/agentfleet/kafka-tls/%s" .Values.kafka.tls.caKey) -}}
{{- end -}}
{{- $_ := set $kafka "properties" $props -}}
{{- if .Values.topics.createJob -}}
{{- $_ := set $kafka "create_topics" false -}}
{{- end -}}
{{- $_ := set $cfg "kafka" $kafka -}}
{{- $worker := default dict $cfg.worker -}}
{{- $pools := list -}}
{{- range .Values.workers.pools }}{{ $pools = append $pools .name }}{{ end -}}
{{- $_ := set $worker "pools" $pools -}}
{{- $_ := set $worker "shutdown_grace" (printf "%ds" (int .Values.workers.shutdownGraceSeconds)) -}}
{{- $_ := set $cfg "worker" $worker -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Agents a pool serves: its list, or every agent of the config. (dict "ctx" $ "pool" $pool) */}}
{{- define "agentfleet.poolAgents" -}}
{{- if .pool.agents -}}
{{ join "," .pool.agents }}
{{- else -}}
{{- $agents := .ctx.Values.config.agents | default (.ctx.Files.Get "files/example-fleet.yaml" | fromYaml).agents -}}
{{ join "," (keys $agents | sortAlpha) }}
{{- end -}}
{{- end -}}

{{- define "agentfleet.topicPrefix" -}}
{{- $kafka := default dict .Values.config.kafka -}}
{{- default "agentfleet." $kafka.topic_prefix -}}
{{- end -}}

{{- define "agentfleet.workerGroupPrefix" -}}
{{- $worker := default dict .Values.config.worker -}}
{{- default "agentfleet-workers" $worker.group_prefix -}}
{{- end -}}

{{/* Environment shared by every container: the pod's name, the SASL password, provider keys. */}}
{{- define "agentfleet.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
{{- if .Values.kafka.sasl.enabled }}
- name: KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.existingSecret is required when kafka.sasl.enabled" .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- range .Values.providerSecrets }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- end -}}

{{- define "agentfleet.volumeMounts" -}}
- name: config
  mountPath: /etc/agentfleet/config
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: /etc/agentfleet/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "agentfleet.volumes" -}}
- name: config
  configMap:
    name: {{ include "agentfleet.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
{{- end }}
{{- end -}}

{{- define "agentfleet.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  failureThreshold: 2
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 30
{{- end -}}
