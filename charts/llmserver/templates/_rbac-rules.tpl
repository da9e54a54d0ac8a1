{{/* RBAC rules, one place. tests/unit/chart/test_rbac.py compares them with what the operator's and
     the gateway's code say they call, both ways: nothing missing, nothing extra. */}}

{{/* Namespaced objects the operator reads and writes (llmserver_operator.reconciler through
     llmserver_operator.kube, plus kopf's own watching, finalizer patches and events). Granted by a
     Role in each watched namespace, or by the ClusterRole when it watches every namespace.
     - llmservers: kopf lists and watches them (no kopf patches: passes start from watch events,
       so kopf keeps no progress annotations and there are no finalizers); the reconciler reads them
       from what the watch saw (llmserver_operator.watch_cache, no get) and patches their status.
     - llmservers/scale (patch): the autoscaler (llmserver_operator.autoscaler) writes spec.replicas of
       servers with spec.autoscaling through the scale subresource, as `kubectl scale` does.
     - llmservers/finalizers (update): never called; kopf.adopt sets blockOwnerDeletion on every
       child's ownerReference, which clusters enforcing OwnerReferencesPermissionEnforcement
       (OpenShift) allow only to who may update the owner's finalizers.
     - deployments, services, serviceaccounts, roles, rolebindings: create-or-replace (PUT) and
       deletion of children a spec no longer has (listed by label); watched (kopf, by label) so a
       deleted or edited child is repaired at once, and read from that watch's cache; `get` only
       after a create answered 409 (a name held by an object not ours, or a lost race).
     - networkpolicies: NetworkPolicy `N` of a cluster-hosted server (builders.network_policy),
       create-or-replace and deleted on a mode switch like the Service; watched (kopf, by label) and
       read from that watch's cache like the Service (`get` only after a create answered 409).
     - jobs: the download Job is created, never updated (its template is immutable), deleted when
       it failed for good or its source changed; kopf watches it.
     - pods: watched (kopf) and listed for failure reasons; never written.
     - persistentvolumeclaims: the cache claim is created when missing, never changed or deleted
       by the operator (owned claims go with their LLMServer through garbage collection); watched
       (kopf, by label) so a deleted cache claim is downloaded again.
     - secrets: read by name to check a referenced key exists (never listed).
     - endpointslices: listed by Service for the ready replicas of a vLLM/transformers server with
       spec.adapters (the operator loads adapters on each); read the Mac endpoint of an Apple-placed
       server; with Macs, its own slices
       are watched (kopf, by label) and, after a switch to a Mac, the EndpointSlice controller's
       slices of the server's Service (left with dead pod IPs) are listed and deleted.
     - roles/rolebindings carry only permissions the operator holds itself (llmservers/status), so
       no `escalate` or `bind` verb is needed: the download Job's identity, and `<server>-apple-agent`
       (llmserver_operator.apple.identity), which lets only the Mac a server is placed on patch its status. */}}
{{- define "llmserver.operatorNamespacedRules" -}}
- apiGroups: ["serving.llmserver.dev"]
  resources: ["llmservers"]
  verbs: ["list", "watch"]
- apiGroups: ["serving.llmserver.dev"]
  resources: ["llmservers/status"]
  verbs: ["get", "patch"]
- apiGroups: ["serving.llmserver.dev"]
  resources: ["llmservers/scale"]
  verbs: ["patch"]
- apiGroups: ["serving.llmserver.dev"]
  resources: ["llmservers/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: [""]
  resources: ["services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "update", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list"{{ if .Values.apple.enabled }}, "watch", "create", "update", "delete"{{ end }}]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Cluster-scoped objects the operator reads or writes: only the Macs' (AppleNodes). */}}
{{- define "llmserver.operatorClusterRules" -}}
{{- if .Values.apple.enabled }}
{{- /* Macs (llmserver_operator.apple): AppleNodes are cluster-scoped; their readiness comes from
  Leases (see llmserver.operatorAppleRules); placement weighs every Apple-placed LLMServer, in every
  namespace, so listing LLMServers is cluster-wide even in a namespaced install. */}}
- apiGroups: ["serving.llmserver.dev"]
  resources: ["applenodes"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["serving.llmserver.dev"]
  resources: ["applenodes/status"]
  verbs: ["patch"]
{{- if .Values.operator.watchNamespaces }}
- apiGroups: ["serving.llmserver.dev"]
  resources: ["llmservers"]
  verbs: ["list"]
{{- end }}
{{- end }}
{{- end -}}

{{/* Leader election (llmserver_operator.leader), in the release namespace: the Lease is created by
     the first replica (create cannot be limited by name), then read and renewed by name. */}}
{{- define "llmserver.operatorLeaderRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "llmserver.componentName" (list . "operator") | quote }}]
  verbs: ["get", "update"]
{{- end -}}

{{/* The autoscaler (llmserver_operator.autoscaler), in the release namespace: the gateway Service's
     EndpointSlices are listed each round to find every gateway replica's /internal/load. */}}
{{- define "llmserver.operatorAutoscalerRules" -}}
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list"]
{{- end -}}

{{/* Mac agents' Leases (heartbeats), read by name in the release namespace (the agents' namespace). */}}
{{- define "llmserver.operatorAppleRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get"]
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
