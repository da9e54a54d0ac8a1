{{/* Names, labels, images and the one security context every pod of the chart shares. */}}

{{- define "llmserver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llmserver.fullname" -}}
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

{{/* "<fullname>-<component>", kept within 63 characters. Call with (list . "component"). */}}
{{- define "llmserver.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "llmserver.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" -}}
{{- end -}}

{{- define "llmserver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component. Call with (list . "component"). */}}
{{- define "llmserver.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/name: {{ include "llmserver.name" $root }}
{{- end -}}

{{/* All labels of one component. Call with (list . "component"). */}}
{{- define "llmserver.labels" -}}
{{- $root := index . 0 -}}
{{ include "llmserver.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: llmserver
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
helm.sh/chart: {{ include "llmserver.chart" $root }}
{{- end -}}

{{/* An image reference. Call with (list . .Values.<component>.image). */}}
{{- define "llmserver.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $repository := $image.repository -}}
{{- if $root.Values.image.registry -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" $root.Values.image.registry) $image.repository -}}
{{- end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default (default $root.Chart.AppVersion $root.Values.image.tag) $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "llmserver.gatewayImage" -}}
{{- if .Values.gateway.image.repository -}}
{{- include "llmserver.image" (list . .Values.gateway.image) -}}
{{- else -}}
{{- include "llmserver.image" (list . (dict "repository" .Values.operator.image.repository "tag" (default .Values.operator.image.tag .Values.gateway.image.tag) "digest" (default .Values.operator.image.digest .Values.gateway.image.digest))) -}}
{{- end -}}
{{- end -}}

{{- define "llmserver.operatorServiceAccount" -}}
{{- default (include "llmserver.componentName" (list . "operator")) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "llmserver.gatewayServiceAccount" -}}
{{- default (include "llmserver.componentName" (list . "gateway")) .Values.gateway.serviceAccount.name -}}
{{- end -}}

{{/* The in-cluster base URL of the gateway (what LLMServer status.endpoint points at). */}}
{{- define "llmserver.gatewayURL" -}}
{{- $host := printf "%s.%s.svc" (include "llmserver.componentName" (list . "gateway")) .Release.Namespace -}}
{{- if eq (int .Values.gateway.service.port) 80 -}}
{{- printf "http://%s/v1" $host -}}
{{- else -}}
{{- printf "http://%s:%v/v1" $host .Values.gateway.service.port -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security: non-root, RuntimeDefault seccomp. Same for every pod of the chart. */}}
{{- define "llmserver.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security: read-only root filesystem, no privilege escalation, no capabilities. */}}
{{- define "llmserver.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "llmserver.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The namespaces the operator and gateway act in: the watched ones, or none for "all". */}}
{{- define "llmserver.watchNamespaces" -}}
{{- join "," .Values.operator.watchNamespaces -}}
{{- end -}}

{{/* The Secret holding the gateway's API keys: the one named in values, else the chart's own. */}}
{{- define "llmserver.gatewayKeysSecret" -}}
{{- .Values.gateway.auth.existingSecret | default (include "llmserver.componentName" (list . "gateway-api-keys")) }}
{{- end }}
