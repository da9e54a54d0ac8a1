{{/* The operator's settings (llmserver_operator.settings.Settings: pydantic-settings, prefix
     LLMSERVER_OPERATOR_) built from values. tests/unit/chart feeds this env to that class and
     checks every name is one of its fields. Empty optional values are left out (the operator's
     default applies; an empty string would mean something else, e.g. "no StorageClass"). */}}
{{- define "llmserver.operatorEnv" -}}
{{- $profile := required (printf "runtime.profile %q is not a key of profiles" .Values.runtime.profile) (index .Values.profiles .Values.runtime.profile) -}}
{{- $catalog := dict -}}
{{- range $name, $flavour := .Values.runtime.images -}}
{{- $ref := "" -}}
{{- if $flavour.repository -}}
{{- $ref = include "llmserver.image" (list $ $flavour) -}}
{{- end -}}
{{- $_ := set $catalog $name (dict "image" $ref "engines" $flavour.engines "accelerators" (default (list) $flavour.accelerators)) -}}
{{- end -}}
- name: LLMSERVER_OPERATOR_RUNTIME_IMAGES
  value: {{ $catalog | toJson | quote }}
- name: LLMSERVER_OPERATOR_DOWNLOAD_IMAGE
  value: {{ include "llmserver.image" (list . .Values.operator.image) | quote }}
- name: LLMSERVER_OPERATOR_IMAGE_PULL_POLICY
  value: {{ .Values.image.pullPolicy | quote }}
- name: LLMSERVER_OPERATOR_RUNTIME_UID
  value: {{ .Values.runtime.uid | quote }}
- name: LLMSERVER_OPERATOR_NAMESPACES
  value: {{ include "llmserver.watchNamespaces" . | quote }}
- name: LLMSERVER_OPERATOR_GATEWAY_URL
  value: {{ include "llmserver.gatewayURL" . | quote }}
{{- if .Values.gateway.enabled }}
- name: LLMSERVER_OPERATOR_GATEWAY_SERVICE
  value: {{ printf "%s/%s" .Release.Namespace (include "llmserver.componentName" (list . "gateway")) | quote }}
{{- end }}
- name: LLMSERVER_OPERATOR_DEFAULT_CPU
  value: {{ $profile.cpu | quote }}
- name: LLMSERVER_OPERATOR_DEFAULT_MEMORY
  value: {{ $profile.memory | quote }}
- name: LLMSERVER_OPERATOR_GPU_RESOURCE_NAME
  value: {{ $profile.gpuResourceName | quote }}
{{- with $profile.shmSizeLimit }}
- name: LLMSERVER_OPERATOR_SHM_SIZE_LIMIT
  value: {{ . | quote }}
{{- end }}
- name: LLMSERVER_OPERATOR_CACHE_CLAIM_NAME
  value: {{ .Values.cache.claimName | quote }}
- name: LLMSERVER_OPERATOR_CACHE_SIZE
  value: {{ .Values.cache.size | quote }}
{{- with .Values.cache.storageClassName }}
- name: LLMSERVER_OPERATOR_CACHE_STORAGE_CLASS
  value: {{ . | quote }}
{{- end }}
- name: LLMSERVER_OPERATOR_CACHE_ACCESS_MODE
  value: {{ .Values.cache.accessMode | quote }}
- name: LLMSERVER_OPERATOR_DOWNLOAD_BACKOFF_LIMIT
  value: {{ .Values.operator.downloadBackoffLimit | quote }}
- name: LLMSERVER_OPERATOR_WORKERS
  value: {{ .Values.operator.workers | quote }}
- name: LLMSERVER_OPERATOR_LIVENESS_ENDPOINT
  value: {{ printf "http://0.0.0.0:%v/healthz" .Values.operator.healthPort | quote }}
{{- if and .Values.operator.metricsPort (eq (int .Values.operator.metricsPort) (int .Values.operator.healthPort)) }}
{{- fail (printf "operator.metricsPort and operator.healthPort are both %v: give /metrics its own port (or 0 to turn it off)" .Values.operator.metricsPort) }}
{{- end }}
- name: LLMSERVER_OPERATOR_METRICS_PORT
  value: {{ .Values.operator.metricsPort | quote }}
- name: LLMSERVER_OPERATOR_APPLE_ENABLED
  value: {{ .Values.apple.enabled | quote }}
- name: LLMSERVER_OPERATOR_APPLE_NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: LLMSERVER_OPERATOR_NETWORK_POLICY
  value: {{ .Values.networkPolicy.enabled | quote }}
- name: LLMSERVER_OPERATOR_NETWORK_POLICY_PEERS
  value: {{ include "llmserver.networkPolicyPeers" . | quote }}
{{- with .Values.proxy.allowedHosts }}
- name: LLMSERVER_OPERATOR_PROXY_ALLOWED_HOSTS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.proxy.clusterCIDRs }}
- name: LLMSERVER_OPERATOR_PROXY_CLUSTER_CIDRS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.operator.leaderElection }}
{{- if .enabled }}
{{- if not (and (lt (float64 .retryPeriod) (float64 .renewDeadline)) (lt (float64 .renewDeadline) (float64 .leaseDuration))) }}
{{- fail (printf "operator.leaderElection needs retryPeriod < renewDeadline < leaseDuration (%v < %v < %v)" .retryPeriod .renewDeadline .leaseDuration) }}
{{- end }}
- name: LLMSERVER_OPERATOR_LEADER_ELECTION
  value: "true"
- name: LLMSERVER_OPERATOR_LEADER_ELECTION_NAMESPACE
  value: {{ $.Release.Namespace | quote }}
- name: LLMSERVER_OPERATOR_LEADER_ELECTION_LEASE_NAME
  value: {{ include "llmserver.componentName" (list $ "operator") | quote }}
- name: LLMSERVER_OPERATOR_LEADER_ELECTION_LEASE_SECONDS
  value: {{ .leaseDuration | quote }}
- name: LLMSERVER_OPERATOR_LEADER_ELECTION_RENEW_DEADLINE_SECONDS
  value: {{ .renewDeadline | quote }}
- name: LLMSERVER_OPERATOR_LEADER_ELECTION_RETRY_SECONDS
  value: {{ .retryPeriod | quote }}
{{- end }}
{{- end }}
{{- end -}}


{{/* Who may reach runtime pods (JSON list of NetworkPolicyPeer): the gateway's and the operator's
     pods in the release namespace, Prometheus, networkPolicy.extraFrom. The operator writes them into
     NetworkPolicy `N` next to each cluster-hosted LLMServer (llmserver_operator.builders.network_policy). */}}
{{- define "llmserver.networkPolicyPeers" -}}
{{- $release := dict "matchLabels" (dict "kubernetes.io/metadata.name" .Release.Namespace) -}}
{{- $peers := list -}}
{{- range $component := list "gateway" "operator" -}}
{{- if (index $.Values $component).enabled -}}
{{- $pods := dict "matchLabels" (include "llmserver.selectorLabels" (list $ $component) | fromYaml) -}}
{{- $peers = append $peers (dict "namespaceSelector" $release "podSelector" $pods) -}}
{{- end -}}
{{- end -}}
{{- with .Values.networkPolicy.prometheus -}}
{{- $peers = append $peers (dict "namespaceSelector" .namespaceSelector "podSelector" .podSelector) -}}
{{- end -}}
{{- concat $peers (default (list) .Values.networkPolicy.extraFrom) | toJson -}}
{{- end -}}
