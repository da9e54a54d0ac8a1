"""Bounds on what one request may ask of the runtime (issue 19, house rule 13).

Checked before the engine sees a request: a body that is too big is refused before it is parsed,
batches and image counts before admission, so one client cannot crash the process or tie up an
engine with input it was never going to get served. Read from env `LLMSERVER_<NAME>` by the app
factory; docs/contracts.md ("Runtime input limits") lists the names, defaults and error codes."""

from __future__ import annotations

from collections.abc import Mapping

import pydantic

MIB = 1024 * 1024
ENV_PREFIX = "LLMSERVER_"


class InputLimits(pydantic.BaseModel):
    """Per-request limits; every field is also env `LLMSERVER_<FIELD>` (upper case)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    max_body_bytes: int = pydantic.Field(
        default=8 * MIB, ge=1024, description="Largest request body; larger is a 413 before it is parsed."
    )
    max_json_depth: int = pydantic.Field(
        default=64, ge=4, le=512, description="Deepest nesting of JSON arrays/objects; deeper is a 400."
    )
    max_inputs: int = pydantic.Field(
        default=2048, ge=1, description="Items in an embeddings `input` or completions `prompt` list."
    )
    max_documents: int = pydantic.Field(default=1000, ge=1, description="Documents in one rerank request.")
    max_images: int = pydantic.Field(default=16, ge=0, description="Image parts in one chat request.")
    max_request_image_bytes: int = pydantic.Field(
        default=20 * MIB, ge=1, description="Decoded bytes of all images of one chat request together."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> InputLimits:
        """The limits with `LLMSERVER_<FIELD>` overrides from `environ` (a bad value raises)."""
        values = {name: environ[ENV_PREFIX + name.upper()] for name in cls.model_fields if ENV_PREFIX + name.upper() in environ}
        return cls.model_validate(values)

    @classmethod
    def env_names(cls) -> list[str]:
        """Every env variable these limits read (for docs and tests)."""
        return [ENV_PREFIX + name.upper() for name in cls.model_fields]
