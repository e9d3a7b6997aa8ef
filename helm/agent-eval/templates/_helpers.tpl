{{/*
Names and labels. Helpers that need a component take (dict "root" $ "component" "<name>").
*/}}
{{- define "agent-eval.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-eval.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agent-eval.componentName" -}}
{{- printf "%s-%s" (include "agent-eval.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-eval.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-eval.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "agent-eval.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "agent-eval.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: agent-eval
{{- end }}

{{- define "agent-eval.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agent-eval.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agent-eval.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "agent-eval.secretName" -}}
{{- default (printf "%s-secrets" (include "agent-eval.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/*
A setting's value as the environment spells it. Values files give numbers as float64, which
`toString` would print as 1.048576e+06: whole numbers are printed as integers. Objects and lists
(PROVIDERS, RATE_CARD) are JSON, as pydantic-settings reads them.
*/}}
{{- define "agent-eval.settingValue" -}}
{{- if or (kindIs "map" .) (kindIs "slice" .) }}
{{- toJson . }}
{{- else if and (kindIs "float64" .) (eq . (float64 (int64 .))) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{- define "agent-eval.kafkaSasl" -}}
{{- if has .Values.kafka.securityProtocol (list "SASL_PLAINTEXT" "SASL_SSL") }}true{{ end }}
{{- end }}

{{- define "agent-eval.kafkaTlsFiles" -}}
{{- if and (has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL")) .Values.kafka.tls.existingSecret }}true{{ end }}
{{- end }}

{{/*
Every non-secret setting, as a YAML map of variable name -> string. The ConfigMap is rendered
from it, and so are the hook Jobs' inline env (they run before the ConfigMap exists), so the two
cannot drift apart. The service refuses SASL settings without a SASL protocol and TLS files
without a TLS one, so each is rendered only with its protocol.
*/}}
{{- define "agent-eval.settings" -}}
{{- $kafka := .Values.kafka -}}
AGENT_EVAL_HOST: "0.0.0.0"
AGENT_EVAL_PORT: {{ include "agent-eval.settingValue" .Values.ports.http | quote }}
AGENT_EVAL_HEALTH_PORT: {{ include "agent-eval.settingValue" .Values.ports.health | quote }}
AGENT_EVAL_KAFKA_BOOTSTRAP: {{ $kafka.bootstrap | quote }}
AGENT_EVAL_TOPIC_PREFIX: {{ $kafka.topicPrefix | quote }}
AGENT_EVAL_TOPIC_PARTITIONS: {{ include "agent-eval.settingValue" $kafka.topics.partitions | quote }}
AGENT_EVAL_TOPIC_REPLICATION_FACTOR: {{ include "agent-eval.settingValue" $kafka.topics.replicationFactor | quote }}
AGENT_EVAL_KAFKA_SECURITY_PROTOCOL: {{ $kafka.securityProtocol | quote }}
{{- if include "agent-eval.kafkaSasl" . }}
AGENT_EVAL_KAFKA_SASL_MECHANISM: {{ $kafka.sasl.mechanism | quote }}
AGENT_EVAL_KAFKA_SASL_USERNAME: {{ required "kafka.sasl.username is required with a SASL_* kafka.securityProtocol" $kafka.sasl.username | quote }}
{{- end }}
{{- if include "agent-eval.kafkaTlsFiles" . }}
{{- if $kafka.tls.caKey }}
AGENT_EVAL_KAFKA_SSL_CAFILE: "/etc/agent-eval/kafka-tls/ca.crt"
{{- end }}
{{- if $kafka.tls.certKey }}
AGENT_EVAL_KAFKA_SSL_CERTFILE: "/etc/agent-eval/kafka-tls/tls.crt"
AGENT_EVAL_KAFKA_SSL_KEYFILE: "/etc/agent-eval/kafka-tls/tls.key"
{{- end }}
{{- end }}
{{- range $name, $value := .Values.config }}
AGENT_EVAL_{{ $name }}: {{ include "agent-eval.settingValue" $value | quote }}
{{- end }}
{{- end }}

{{/*
The secret keys a pod gets, from its needs (see roles in values.yaml). (dict "root" $ "needs" list)
*/}}
{{- define "agent-eval.secretEnv" -}}
{{- $v := .root.Values }}
{{- $secret := include "agent-eval.secretName" .root }}
{{- if has "database" .needs }}
- name: AGENT_EVAL_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.secrets.keys.databaseUrl }}
{{- end }}
{{- if has "adminToken" .needs }}
- name: AGENT_EVAL_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.secrets.keys.adminToken }}
      optional: true
{{- end }}
{{- if has "uiSession" .needs }}
- name: AGENT_EVAL_UI_SESSION_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.secrets.keys.uiSessionSecret }}
      optional: true
{{- end }}
{{- if has "webhookKeys" .needs }}
- name: AGENT_EVAL_WEBHOOK_SECRET_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.secrets.keys.webhookSecretKeys }}
{{- end }}
{{- if has "models" .needs }}
- name: AGENT_EVAL_OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $v.secrets.keys.openaiApiKey }}
      optional: true
{{- range $v.secrets.providerKeys }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ default $secret .secretName }}
      key: {{ .key }}
      optional: {{ default false .optional }}
{{- end }}
{{- end }}
{{- if and (has "kafka" .needs) (include "agent-eval.kafkaSasl" .root) }}
- name: AGENT_EVAL_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default $secret $v.kafka.sasl.existingSecret }}
      key: {{ $v.kafka.sasl.passwordKey }}
{{- end }}
{{- end }}

{{/*
Pod- and container-level security: the restricted Pod Security Standard, plus a read-only root
filesystem (writable /tmp only).
*/}}
{{- define "agent-eval.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "agent-eval.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* (dict "root" $ "needs" list) */}}
{{- define "agent-eval.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .root.Values.tmpSizeLimit }}
{{- if and (has "kafka" .needs) (include "agent-eval.kafkaTlsFiles" .root) }}
{{- $tls := .root.Values.kafka.tls }}
- name: kafka-tls
  secret:
    secretName: {{ $tls.existingSecret }}
    defaultMode: 288  # 0440: the owner and fsGroup read
    items:
      {{- if $tls.caKey }}
      - {key: {{ $tls.caKey }}, path: ca.crt}
      {{- end }}
      {{- if $tls.certKey }}
      - {key: {{ $tls.certKey }}, path: tls.crt}
      - {key: {{ $tls.keyKey }}, path: tls.key}
      {{- end }}
{{- end }}
{{- end }}

{{- define "agent-eval.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if and (has "kafka" .needs) (include "agent-eval.kafkaTlsFiles" .root) }}
- name: kafka-tls
  mountPath: /etc/agent-eval/kafka-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* Where pods run: shared by the roles and the hook Jobs. */}}
{{- define "agent-eval.placement" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pull secrets and placement, shared by every pod. */}}
{{- define "agent-eval.podExtras" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "agent-eval.placement" . }}
{{- end }}

{{/*
A hook Job's pod: the settings inline (see agent-eval.settings), the secrets its needs name.
(dict "root" $ "component" name "args" list "needs" list "resources" map)
*/}}
{{- define "agent-eval.hookPod" -}}
{{- $root := .root }}
metadata:
  labels: {{- include "agent-eval.selectorLabels" . | nindent 4 }}
spec:
  restartPolicy: Never
  {{- with $root.Values.hooks.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- end }}
  automountServiceAccountToken: false
  securityContext: {{- include "agent-eval.podSecurityContext" $root | nindent 4 }}
  {{- with include "agent-eval.podExtras" $root | trim }}
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "agent-eval.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: {{ toJson .args }}
      env:
        {{- range $name, $value := include "agent-eval.settings" $root | fromYaml }}
        - name: {{ $name }}
          value: {{ $value | quote }}
        {{- end }}
        {{- with include "agent-eval.secretEnv" (dict "root" $root "needs" .needs) | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with $root.Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources: {{- toYaml .resources | nindent 8 }}
      securityContext: {{- include "agent-eval.containerSecurityContext" $root | nindent 8 }}
      volumeMounts: {{- include "agent-eval.volumeMounts" . | nindent 8 }}
  volumes: {{- include "agent-eval.volumes" . | nindent 4 }}
{{- end }}

{{/* NetworkPolicyPorts (TCP) from a list of port numbers. */}}
{{- define "agent-eval.netpolPorts" -}}
{{- range . }}
- {port: {{ . }}, protocol: TCP}
{{- end }}
{{- end }}
