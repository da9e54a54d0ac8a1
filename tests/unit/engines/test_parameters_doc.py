"""docs/contracts.md's request-field table is the backends' own declarations, rendered.

Each engine class says which generation-changing request fields it honours
(`ModelBackend.supported_parameters`); the server refuses the others by name. The table between
the markers in docs/contracts.md must equal what this module renders from the classes, and every
field the request models declare must be classified (core, output-neutral or optional), so a new
field cannot slip in without a decision and a row."""

from __future__ import annotations

import pathlib

from llmserver_backends import registry

from llmserver_api.protocol import chat, completions

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "contracts.md"
START, END = "<!-- request-fields-table:start -->", "<!-- request-fields-table:end -->"
ENGINES = ("llama-cpp", "transformers", "vllm", "mlx", "mlx-vlm", "fake")
# Honoured by every engine (the server or the engine's basic sampler handles them).
CORE = {
    "model", "messages", "prompt", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "n",
    "stream", "stream_options", "echo",
}  # fmt: skip
# Accepted and without effect on what is generated.
NEUTRAL = {"user", "metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier", "prompt_cache_options",
           "prompt_cache_retention"}
# Generation-changing: honoured where the engine declares them, else 400 unsupported_parameter.
OPTIONAL = (
    "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "top_k", "min_p", "logit_bias",
    "logprobs", "top_logprobs", "response_format", "tools", "tool_choice", "parallel_tool_calls", "functions",
    "function_call", "modalities", "audio", "prediction", "reasoning_effort", "verbosity", "web_search_options",
    "moderation",
    "suffix", "best_of",
)  # fmt: skip


def render_table() -> str:
    """The markdown table: one row per optional field, one column per engine."""
    declared = {kind: registry.backend_class(kind).supported_parameters for kind in ENGINES}
    lines = ["| field | " + " | ".join(ENGINES) + " |", "|---|" + "---|" * len(ENGINES)]
    for field in OPTIONAL:
        cells = ["honoured" if field in declared[kind] else "refused" for kind in ENGINES]
        lines.append(f"| `{field}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_doc_table_is_the_declarations() -> None:
    text = DOC.read_text()
    assert START in text and END in text, f"docs/contracts.md lacks the markers {START} / {END}"
    table = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == render_table(), "regenerate the table:\n" + render_table()


def test_every_request_field_is_classified() -> None:
    fields = set(chat.ChatCompletionRequest.model_fields) | set(completions.CompletionRequest.model_fields)
    assert fields - CORE - NEUTRAL - set(OPTIONAL) == set()
    assert set(OPTIONAL) <= fields and CORE <= fields and NEUTRAL <= fields


def test_declarations_name_only_optional_fields() -> None:
    for kind in ENGINES:
        assert registry.backend_class(kind).supported_parameters <= set(OPTIONAL), kind
