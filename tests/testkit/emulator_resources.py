"""The resource table of the API emulator: built-in kinds plus whatever CRDs are loaded.

kopf only starts watchers for resources that discovery lists, and kubectl resolves short names
(`llms`) through it, so every kind the project touches is declared here.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Resource:
    """One served resource (a group/version/plural), as discovery and the store see it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    printer_columns: tuple[dict[str, Any], ...] = ()
    categories: tuple[str, ...] = ()
    schema: dict[str, Any] | None = dataclasses.field(default=None, compare=False, hash=False)
    scale: dict[str, Any] | None = dataclasses.field(default=None, compare=False, hash=False)  # a CRD's subresources.scale

    @property
    def api_version(self) -> str:
        """`v1` for the core group, else `group/version`."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        """Lower-cased kind, as Kubernetes derives it."""
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str, str]:
        """(group, version, plural): the store's key."""
        return (self.group, self.version, self.plural)

    @property
    def has_status(self) -> bool:
        """Whether writes to the main resource leave status alone (status subresource)."""
        return "status" in self.subresources


def _r(group: str, version: str, plural: str, kind: str, namespaced: bool = True, short: tuple[str, ...] = (),
       status: bool = True, scale: bool = False) -> Resource:
    return Resource(group, version, plural, kind, namespaced, short,
                    (("status",) if status else ()) + (("scale",) if scale else ()))


BUILTIN: tuple[Resource, ...] = (
    _r("", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",)),
    _r("", "v1", "pods", "Pod", short=("po",)),
    _r("", "v1", "services", "Service", short=("svc",)),
    _r("", "v1", "endpoints", "Endpoints", short=("ep",), status=False),
    _r("", "v1", "secrets", "Secret", status=False),
    _r("", "v1", "configmaps", "ConfigMap", short=("cm",), status=False),
    _r("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",), status=False),
    _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",)),
    _r("", "v1", "events", "Event", short=("ev",), status=False),
    _r("", "v1", "nodes", "Node", namespaced=False, short=("no",)),
    _r("apps", "v1", "deployments", "Deployment", short=("deploy",), scale=True),
    _r("apps", "v1", "replicasets", "ReplicaSet", short=("rs",), scale=True),
    _r("apps", "v1", "statefulsets", "StatefulSet", short=("sts",), scale=True),
    _r("batch", "v1", "jobs", "Job"),
    _r("rbac.authorization.k8s.io", "v1", "roles", "Role", status=False),
    _r("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", status=False),
    _r("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False, status=False),
    _r("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False, status=False),
    _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", status=False),
    _r("coordination.k8s.io", "v1", "leases", "Lease", status=False),
    _r("events.k8s.io", "v1", "events", "Event", status=False),
    _r("networking.k8s.io", "v1", "ingresses", "Ingress", short=("ing",)),
    _r("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",), status=False),
    _r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",)),
    _r("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor", status=False),
    _r("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False,
       short=("crd", "crds")),
    _r("kopf.dev", "v1", "kopfpeerings", "KopfPeering", status=False),
    _r("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False, status=False),
)


def from_crd(crd: dict[str, Any]) -> list[Resource]:
    """The served versions of a CustomResourceDefinition manifest."""
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        out.append(
            Resource(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames", ())),
                subresources=tuple(sorted((version.get("subresources") or {}).keys())),
                printer_columns=tuple(version.get("additionalPrinterColumns", ())),
                categories=tuple(names.get("categories", ())),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                scale=(version.get("subresources") or {}).get("scale"),
            )
        )
    return out


def apply_defaults(schema: dict[str, Any] | None, value: Any) -> Any:
    """Fills structural-schema defaults into `value`, as the API server does on every write."""
    if not schema:
        return value
    if isinstance(value, dict) and "properties" in schema:
        result = dict(value)
        for name, sub in schema["properties"].items():
            if name not in result and "default" in sub:
                result[name] = copy.deepcopy(sub["default"])
            if name in result:
                result[name] = apply_defaults(sub, result[name])
        return result
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {key: apply_defaults(schema["additionalProperties"], item) for key, item in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value
