"""Elastic serving: the autoscaling block of an LLMServer and what the autoscaler reports back.

The operator's autoscaler owns `spec.replicas` (through the scale subresource) when
`spec.autoscaling` is set; the gateway holds requests for a cold model up to `holdSeconds`, or
answers them from `fallback` meanwhile.
"""

from __future__ import annotations

import pydantic

from llmserver_api import common, rules

MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"


class Autoscaling(common.ApiModel):
    """Replicas follow the requests in flight at the gateway; 0 replicas while idle if minReplicas is 0."""

    min_replicas: int = pydantic.Field(
        1, ge=0, le=1000, description="Fewest replicas; 0 lets the model scale to zero when idle."
    )
    max_replicas: int = pydantic.Field(..., ge=1, le=1000, description="Most replicas.")
    target_in_flight: int = pydantic.Field(
        8, ge=1, le=100000,
        description="Requests in flight per replica the autoscaler aims for: desired replicas = "
        "ceil(average in flight over windowSeconds / targetInFlight), clamped to [minReplicas, maxReplicas].",
    )  # fmt: skip
    window_seconds: int = pydantic.Field(
        60, ge=1, le=3600, description="Seconds the in-flight count is averaged over."
    )
    scale_down_delay_seconds: int = pydantic.Field(
        300, ge=0, le=86400,
        description="Seconds the desired count must stay lower before replicas are removed (scale-up is at "
        "once); with minReplicas 0, the idle time before the model scales to zero.",
    )  # fmt: skip
    hold_seconds: int = pydantic.Field(
        300, ge=0, le=3600,
        description="How long the gateway holds a request while no replica is ready (scale from zero, "
        "loading); then 503 with Retry-After. 0: do not hold.",
    )  # fmt: skip
    max_held_requests: int = pydantic.Field(
        100, ge=0, le=100000,
        description="Requests held at once for this model, per gateway replica; beyond it a 429 with Retry-After.",
    )  # fmt: skip
    fallback: str | None = pydantic.Field(
        None, min_length=1, max_length=253, pattern=MODEL_NAME,
        description="Another served model (e.g. a Proxy LLMServer) that answers while this one has no ready "
        "replica; the response header x-llmserver-served-by names the model that answered.",
    )  # fmt: skip

    @pydantic.model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        rules.enforce(rules.AUTOSCALING_RULES, self.to_wire())
        return self


class AutoscalingStatus(common.ApiModel):
    """The autoscaler's view of this server, written by the operator."""

    desired_replicas: int | None = pydantic.Field(None, ge=0, description="Replicas the autoscaler wants now.")
    average_in_flight: float | None = pydantic.Field(
        None, ge=0, description="Requests in flight over the window, summed over every gateway replica."
    )
    last_scale_time: str | None = pydantic.Field(None, description="When spec.replicas was last changed (RFC 3339).")
    last_decision: str | None = pydantic.Field(None, description="The last scaling decision and why.")
