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
{{- end -}}
