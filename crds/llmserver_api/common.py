"""Shared building blocks of the API: the camelCase base model, object metadata, refs, conditions.

Every model here is part of the public wire format, so every field carries a description
(it becomes `kubectl explain` text through the generated CRD).
"""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any, TypeVar

import pydantic
import pydantic.alias_generators

GROUP = "serving.llmserver.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"


class ApiModel(pydantic.BaseModel):
    """Base of every wire model: camelCase on the wire, snake_case in Python, unknown fields refused.

    Validation follows the API server so that a manifest pydantic accepts is one `kubectl apply`
    accepts: strict JSON types (no "2" for an integer, no "yes" for a boolean; enum fields are
    declared with `LaxEnum` so their string values still validate), and null values dropped
    before validation, as the API server prunes nulls of non-nullable fields before defaulting.
    """

    model_config = pydantic.ConfigDict(
        alias_generator=pydantic.alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=True,
        strict=True,
    )

    @pydantic.model_validator(mode="before")
    @classmethod
    def _prune_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict as Kubernetes stores it: camelCase, no unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


EnumT = TypeVar("EnumT", bound=enum.Enum)

# An enum field that accepts the enum's wire string even though ApiModel is strict.
LaxEnum = Annotated[EnumT, pydantic.Strict(False)]


class ObjectMeta(pydantic.BaseModel):
    """The part of Kubernetes object metadata the project reads; everything else is kept as-is."""

    model_config = pydantic.ConfigDict(
        alias_generator=pydantic.alias_generators.to_camel, populate_by_name=True, extra="allow"
    )

    name: str | None = pydantic.Field(None, description="Object name, unique in its namespace.")
    namespace: str | None = pydantic.Field(None, description="Namespace of a namespaced object.")
    labels: dict[str, str] = pydantic.Field(default_factory=dict, description="Object labels.")
    annotations: dict[str, str] = pydantic.Field(default_factory=dict, description="Object annotations.")
    uid: str | None = pydantic.Field(None, description="Unique id assigned by the API server.")
    generation: int | None = pydantic.Field(None, description="Spec generation assigned by the API server.")
    resource_version: str | None = pydantic.Field(None, description="Opaque version for optimistic concurrency.")


class SecretKeyRef(ApiModel):
    """A key in a Secret of the same namespace. Secret values reach processes only as env vars."""

    name: str = pydantic.Field(
        ..., min_length=1, max_length=253, description="Name of the Secret in the LLMServer's namespace."
    )
    key: str = pydantic.Field(
        ..., min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key inside the Secret."
    )


class ConditionStatus(str, enum.Enum):
    """Kubernetes condition status values."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """A standard Kubernetes condition (metav1.Condition shape)."""

    type: str = pydantic.Field(..., description="Condition type, e.g. Ready or Downloaded.")
    status: LaxEnum[ConditionStatus] = pydantic.Field(..., description="True, False or Unknown.")
    reason: str = pydantic.Field("", description="Machine-readable CamelCase reason for the last transition.")
    message: str = pydantic.Field("", description="Human-readable details.")
    last_transition_time: str | None = pydantic.Field(
        None, description="RFC 3339 time when the status last changed."
    )
    observed_generation: int | None = pydantic.Field(
        None, description="The .metadata.generation the condition was computed from."
    )


_QUANTITY_FACTORS = {
    "": 1, "m": 0.001, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_quantity(value: str | int | float) -> float:
    """Converts a Kubernetes quantity ("8Gi", "500m", "2") into a plain number."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)", value.strip())
    if not match or match.group(2) not in _QUANTITY_FACTORS:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)]
