{{/* The gateway's settings (pydantic-settings, prefix LLMSERVER_GATEWAY_) built from values.
     tests/unit/chart checks that every name here is a field of the gateway's settings class. */}}
{{- define "llmserver.gatewayEnv" -}}
{{- if eq (len .Values.operator.watchNamespaces) 1 }}
- name: LLMSERVER_GATEWAY_NAMESPACE
  value: {{ first .Values.operator.watchNamespaces | quote }}
{{- end }}
{{- if .Values.gateway.auth.enabled }}
- name: LLMSERVER_GATEWAY_API_KEYS_SECRET
  value: {{ .Values.gateway.auth.existingSecret | quote }}
{{- end }}
{{- end -}}
