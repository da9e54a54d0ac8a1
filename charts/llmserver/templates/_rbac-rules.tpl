{{/* RBAC rules, one place. tests/unit/chart/test_rbac.py compares them with what the operator's and
     the gateway's code say they call, both ways: nothing missing, nothing extra. */}}

{{/* Namespaced objects the operator manages: granted by a Role in each watched namespace, or by the
     ClusterRole when it watches every namespace. */}}
{{- define "llmserver.operatorNamespacedRules" -}}
- apiGroups: ["serving.llmserver.dev"]
  resources: ["llmservers"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["serving.llmserver.dev"]
  resources: ["llmservers/status"]
  verbs: ["get", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- if .Values.operator.peering.enabled }}
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}

{{/* Cluster-scoped objects the operator reads or writes: always a ClusterRole. */}}
{{- define "llmserver.operatorClusterRules" -}}
- apiGroups: ["serving.llmserver.dev"]
  resources: ["applenodes"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["serving.llmserver.dev"]
  resources: ["applenodes/status"]
  verbs: ["get", "patch"]
{{- if and .Values.operator.peering.enabled (not .Values.operator.watchNamespaces) }}
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}

{{/* What the gateway lists and watches to build its routing table. */}}
{{- define "llmserver.gatewayWatchRules" -}}
- apiGroups: ["serving.llmserver.dev"]
  resources: ["llmservers"]
  verbs: ["list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
{{- end -}}

{{/* Secrets the gateway reads by name: Proxy-mode provider keys (never listed). */}}
{{- define "llmserver.gatewaySecretRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end -}}
