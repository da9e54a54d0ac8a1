{{/* The operator's settings (pydantic-settings, prefix LLMSERVER_OPERATOR_) built from values.
     tests/unit/chart checks that every name here is a field of the operator's settings class. */}}
{{- define "llmserver.operatorEnv" -}}
{{- $profile := required (printf "runtime.profile %q is not a key of profiles" .Values.runtime.profile) (index .Values.profiles .Values.runtime.profile) -}}
- name: LLMSERVER_OPERATOR_NAMESPACES
  value: {{ include "llmserver.watchNamespaces" . | quote }}
- name: LLMSERVER_OPERATOR_LOG_LEVEL
  value: {{ .Values.operator.logLevel | quote }}
- name: LLMSERVER_OPERATOR_PEERING
  value: {{ ternary .Values.operator.peering.name "" .Values.operator.peering.enabled | quote }}
- name: LLMSERVER_OPERATOR_PORT
  value: {{ .Values.operator.metrics.port | quote }}
- name: LLMSERVER_OPERATOR_RUNTIME_IMAGE
  value: {{ include "llmserver.image" (list . .Values.runtime.image) | quote }}
- name: LLMSERVER_OPERATOR_RUNTIME_CUDA_IMAGE
  value: {{ include "llmserver.image" (list . .Values.runtime.cudaImage) | quote }}
- name: LLMSERVER_OPERATOR_IMAGE_PULL_POLICY
  value: {{ .Values.image.pullPolicy | quote }}
- name: LLMSERVER_OPERATOR_GATEWAY_URL
  value: {{ include "llmserver.gatewayURL" . | quote }}
- name: LLMSERVER_OPERATOR_CACHE_CLAIM_NAME
  value: {{ .Values.cache.claimName | quote }}
- name: LLMSERVER_OPERATOR_CACHE_SIZE
  value: {{ .Values.cache.size | quote }}
- name: LLMSERVER_OPERATOR_CACHE_STORAGE_CLASS_NAME
  value: {{ .Values.cache.storageClassName | quote }}
- name: LLMSERVER_OPERATOR_CACHE_ACCESS_MODE
  value: {{ .Values.cache.accessMode | quote }}
- name: LLMSERVER_OPERATOR_DEFAULT_CPU
  value: {{ $profile.cpu | quote }}
- name: LLMSERVER_OPERATOR_DEFAULT_MEMORY
  value: {{ $profile.memory | quote }}
- name: LLMSERVER_OPERATOR_DEFAULT_GPUS
  value: {{ $profile.gpus | quote }}
- name: LLMSERVER_OPERATOR_GPU_RESOURCE_NAME
  value: {{ $profile.gpuResourceName | quote }}
- name: LLMSERVER_OPERATOR_DEFAULT_NODE_SELECTOR
  value: {{ $profile.nodeSelector | toJson | quote }}
- name: LLMSERVER_OPERATOR_DEFAULT_TOLERATIONS
  value: {{ $profile.tolerations | toJson | quote }}
{{- with .Values.image.pullSecrets }}
- name: LLMSERVER_OPERATOR_IMAGE_PULL_SECRETS
  value: {{ . | toJson | quote }}
{{- end }}
{{- end -}}
