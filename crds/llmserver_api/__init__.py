"""The LLMServer and AppleNode API: the project's only schema source.

The CRD YAML under crds/ (and the Helm chart's copy) is generated from these models by
`python -m llmserver_api.generate`; nothing else defines the wire format.
"""

from llmserver_api.applenode import AppleNode, AppleNodeModel, AppleNodeSpec, AppleNodeStatus
from llmserver_api.common import API_VERSION, GROUP, VERSION, Condition, ConditionStatus, SecretKeyRef, parse_quantity
from llmserver_api.llmserver import (
    Backend,
    Capability,
    LLMServer,
    LLMServerSpec,
    LLMServerStatus,
    Mode,
    Phase,
    RoutingPolicy,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "AppleNode",
    "AppleNodeModel",
    "AppleNodeSpec",
    "AppleNodeStatus",
    "Backend",
    "Capability",
    "Condition",
    "ConditionStatus",
    "LLMServer",
    "LLMServerSpec",
    "LLMServerStatus",
    "Mode",
    "Phase",
    "RoutingPolicy",
    "SecretKeyRef",
    "parse_quantity",
]
