{{/* The gateway's settings from values (env read by `llmserver-runtime gateway`). */}}
{{- define "llmserver.gatewayEnv" -}}
- name: LLMSERVER_GATEWAY_LOG_LEVEL
  value: {{ .Values.gateway.logLevel | quote }}
{{- if .Values.gateway.auth.enabled }}
- name: LLMSERVER_GATEWAY_API_KEYS_FILE
  value: /etc/llmserver/auth/api-keys.yaml
{{- end }}
{{- end -}}
