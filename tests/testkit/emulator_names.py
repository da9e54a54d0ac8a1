"""Name, label and annotation validation of the API emulator, with the API server's rules and limits.

Why: a name or label the real API server refuses (a 64-character Job name, an upper-case Service
name, a label value with a slash) must fail in tests too, not first in a cluster. The rules are
apimachinery's (validation.IsDNS1123Label/Subdomain, IsDNS1035Label, IsQualifiedName,
IsValidLabelValue) and each kind's name rule from its registry strategy.
"""

from __future__ import annotations

import json
import re
from typing import Any

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")
MAX_GENERATED_BASE = 58  # names.SimpleNameGenerator: 63 - 5 random characters
ANNOTATIONS_MAX_BYTES = 256 * 1024

LABEL_TEXT = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc')")
SUBDOMAIN_TEXT = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com')")
DNS1035_TEXT = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123')")
VALUE_TEXT = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
              "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345')")
NAME_PART_TEXT = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
                  "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc')")

# kind -> (pattern, limit, text); kinds not listed use the DNS-1123 subdomain rule (253).
_LABEL_NAMED = (DNS1123_LABEL, 63, LABEL_TEXT)
_PATH_SEGMENT = (None, 0, "")
NAME_RULES: dict[str, tuple[re.Pattern[str] | None, int, str]] = {
    "Namespace": _LABEL_NAMED,
    "Service": (DNS1035_LABEL, 63, DNS1035_TEXT),
    "StatefulSet": _LABEL_NAMED,
    "Job": (DNS1123_SUBDOMAIN, 63, SUBDOMAIN_TEXT),  # its name becomes the pods' job-name label value
    "Role": _PATH_SEGMENT,
    "ClusterRole": _PATH_SEGMENT,
    "RoleBinding": _PATH_SEGMENT,
    "ClusterRoleBinding": _PATH_SEGMENT,
}
_SUBDOMAIN = (DNS1123_SUBDOMAIN, 253, SUBDOMAIN_TEXT)


def _invalid(field: str, value: Any, message: str) -> str:
    return f"{field}: Invalid value: {json.dumps(value)}: {message}"


def _checked(field: str, value: str, pattern: re.Pattern[str], limit: int, text: str) -> list[str]:
    problems = []
    if len(value) > limit:
        problems.append(_invalid(field, value, f"must be no more than {limit} characters"))
    if not pattern.match(value):
        problems.append(_invalid(field, value, text + f" (regex used for validation is '{pattern.pattern[:-2]}')"))
    return problems


def name_problems(kind: str, name: str, field: str = "metadata.name") -> list[str]:
    """Why the API server refuses `name` for this kind (empty: accepted)."""
    pattern, limit, text = NAME_RULES.get(kind, _SUBDOMAIN)
    if pattern is None:  # path-segment names (RBAC objects)
        if name in (".", ".."):
            return [_invalid(field, name, f"may not be {name!r}")]
        bad = [char for char in ("/", "%") if char in name]
        return [_invalid(field, name, f"may not contain {bad[0]!r}")] if bad else []
    return _checked(field, name, pattern, limit, text)


def qualified_name_problems(field: str, key: str) -> list[str]:
    """A label or annotation key: optional DNS-subdomain prefix (253) + '/' + a name part (63)."""
    prefix, slash, name = key.rpartition("/")
    problems = []
    if slash and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        problems.append(_invalid(field, key, "prefix part " + SUBDOMAIN_TEXT))
    if not name:
        problems.append(_invalid(field, key, "name part must be non-empty"))
    elif len(name) > 63:
        problems.append(_invalid(field, key, "name part must be no more than 63 characters"))
    elif not QUALIFIED_NAME.match(name):
        problems.append(_invalid(field, key, NAME_PART_TEXT))
    return problems


def label_problems(labels: Any, field: str) -> list[str]:
    """Label keys and values (values: at most 63 characters, label syntax)."""
    if not labels:
        return []
    if not isinstance(labels, dict):
        return [_invalid(field, labels, "must be a map of string keys to string values")]
    problems = []
    for key, value in labels.items():
        problems += qualified_name_problems(field, str(key))
        if not isinstance(value, str):
            problems.append(_invalid(f"{field}", value, "label values must be strings"))
        elif len(value) > 63:
            problems.append(_invalid(field, value, "must be no more than 63 characters"))
        elif not LABEL_VALUE.match(value):
            problems.append(_invalid(field, value, VALUE_TEXT))
    return problems


def annotation_problems(annotations: Any, field: str = "metadata.annotations") -> list[str]:
    """Annotation keys (qualified names) and their total size (256 KiB)."""
    if not annotations:
        return []
    problems = [p for key in annotations for p in qualified_name_problems(field, str(key))]
    size = sum(len(str(key)) + len(str(value)) for key, value in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        problems.append(f"{field}: Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes")
    return problems


def _at(obj: Any, *path: str) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def object_problems(kind: str, obj: dict[str, Any]) -> list[str]:
    """Label and annotation problems of an object, in metadata and in the places workloads carry labels."""
    meta = obj.get("metadata") or {}
    problems = label_problems(meta.get("labels"), "metadata.labels") + annotation_problems(meta.get("annotations"))
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "Job", "DaemonSet"):
        problems += label_problems(_at(obj, "spec", "template", "metadata", "labels"), "spec.template.metadata.labels")
        problems += annotation_problems(_at(obj, "spec", "template", "metadata", "annotations"),
                                        "spec.template.metadata.annotations")
        problems += label_problems(_at(obj, "spec", "selector", "matchLabels"), "spec.selector.matchLabels")
    if kind == "Service":
        problems += label_problems(_at(obj, "spec", "selector"), "spec.selector")
    return problems


def generated_name(generate_name: str, suffix: str) -> str:
    """generateName + 5 random characters, the base cut to 58 characters as the API server does."""
    return generate_name[:MAX_GENERATED_BASE] + suffix
