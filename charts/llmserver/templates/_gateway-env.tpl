{{/* The gateway's settings (llmserver_gateway.settings.GatewaySettings: pydantic-settings,
     prefix LLMSERVER_GATEWAY_) built from values. tests/unit/chart feeds this env to that class. */}}
{{- define "llmserver.gatewayEnv" -}}
{{- if eq (len .Values.operator.watchNamespaces) 1 }}
- name: LLMSERVER_GATEWAY_NAMESPACE
  value: {{ first .Values.operator.watchNamespaces | quote }}
{{- end }}
{{- if .Values.gateway.auth.enabled }}
- name: LLMSERVER_GATEWAY_API_KEYS_SECRET
  value: {{ printf "%s/%s" .Release.Namespace (include "llmserver.gatewayKeysSecret" .) | quote }}
{{- end }}
- name: LLMSERVER_GATEWAY_AGENTS_NAMESPACE
  value: {{ .Release.Namespace | quote }}
{{- with .Values.proxy.allowedHosts }}
- name: LLMSERVER_GATEWAY_PROXY_ALLOWED_HOSTS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.proxy.clusterCIDRs }}
- name: LLMSERVER_GATEWAY_PROXY_CLUSTER_CIDRS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.gateway.limits }}
- name: LLMSERVER_GATEWAY_MAX_BODY_BYTES
  value: {{ int64 .maxBodyBytes | quote }}
- name: LLMSERVER_GATEWAY_BODY_TIMEOUT
  value: {{ .bodyTimeout | quote }}
- name: LLMSERVER_GATEWAY_MAX_JSON_DEPTH
  value: {{ int64 .maxJsonDepth | quote }}
- name: LLMSERVER_GATEWAY_MAX_CONCURRENT_REQUESTS
  value: {{ int64 .maxConcurrentRequests | quote }}
- name: LLMSERVER_GATEWAY_BUSY_RETRY_AFTER
  value: {{ int64 .busyRetryAfter | quote }}
- name: LLMSERVER_GATEWAY_POOL_TIMEOUT
  value: {{ .poolTimeout | quote }}
- name: LLMSERVER_GATEWAY_CONNECT_TIMEOUT
  value: {{ .connectTimeout | quote }}
- name: LLMSERVER_GATEWAY_READ_TIMEOUT
  value: {{ .readTimeout | quote }}
- name: LLMSERVER_GATEWAY_MAX_CONNECTIONS
  value: {{ int64 .maxConnections | quote }}
- name: LLMSERVER_GATEWAY_MAX_CONNECTIONS_PER_ENDPOINT
  value: {{ int64 .maxConnectionsPerEndpoint | quote }}
- name: LLMSERVER_GATEWAY_MAX_RESPONSE_BYTES
  value: {{ int64 .maxResponseBytes | quote }}
{{- end }}
{{- end -}}
