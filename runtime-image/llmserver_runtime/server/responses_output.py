"""The Responses API's answer: the `response` object and its stream of events.

Both are built from what the chat path produced for the translated request: the whole answer's
(content, tool_calls, finish_reason), or the chat deltas `tool_output.ChoiceStream` makes of the
streamed text. Shapes follow OpenAI's published schema (`Response`, `ResponseStreamEvent`), which
the tests validate against; a stream is `response.created`, `response.in_progress`, then per
output item `output_item.added` → (`content_part.added`, `output_text.delta`...,
`output_text.done`, `content_part.done` | `function_call_arguments.delta`...,
`function_call_arguments.done`) → `output_item.done`, and `response.completed` (or
`response.incomplete` when max_output_tokens cut it)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from llmserver_api.protocol import common, errors, tools
from llmserver_api.protocol import responses as protocol

Item = dict[str, Any]


def item_id(prefix: str) -> str:
    """An OpenAI-style item id (msg_..., fc_...)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _text_part(text: str) -> Item:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(text: str, status: str, identifier: str | None = None) -> Item:
    """An assistant message output item holding one output_text part."""
    identifier = identifier or item_id("msg")
    return {"id": identifier, "type": "message", "status": status, "role": "assistant", "content": [_text_part(text)]}


def call_item(call_id: str, name: str, arguments: str, status: str, identifier: str | None = None) -> Item:
    """A function_call output item."""
    return {
        "id": identifier or item_id("fc"), "type": "function_call", "status": status,
        "call_id": call_id, "name": name, "arguments": arguments,
    }  # fmt: skip


def usage(counts: common.Usage) -> dict[str, Any]:
    """OpenAI's Responses usage from the chat usage (no prompt cache, no reasoning tokens here)."""
    return {
        "input_tokens": counts.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": counts.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": counts.total_tokens,
    }


def status_of(finish_reason: str) -> str:
    """completed, or incomplete when the token budget ended the answer."""
    return "incomplete" if finish_reason == "length" else "completed"


class Envelope:
    """The request's echo (model, instructions, sampling, tools, format, ...) that every
    `response` object of one answer carries, whole or in stream events."""

    def __init__(self, body: protocol.ResponsesRequest, response_id: str, created: int, model: str) -> None:
        form = body.text.format if body.text is not None and body.text.format is not None else None
        self.fields: dict[str, Any] = {
            "id": "resp_" + response_id.split("-", 1)[-1],
            "object": "response",
            "created_at": created,
            "status": "in_progress",
            "background": False,
            "completed_at": None,
            "error": None,
            "incomplete_details": None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "max_tool_calls": body.max_tool_calls,
            "model": model,
            "output": [],
            "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
            "previous_response_id": None,
            "prompt_cache_key": body.prompt_cache_key,
            "reasoning": {"effort": None, "summary": None},
            "safety_identifier": body.safety_identifier,
            "service_tier": "default",
            "store": False,  # nothing is stored here, whatever the request asked
            "temperature": 1.0 if body.temperature is None else body.temperature,
            "text": {"format": form.model_dump(by_alias=True, exclude_none=True) if form else {"type": "text"}},
            "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
            "tools": [_tool_echo(tool) for tool in body.tools or []],
            "top_p": 1.0 if body.top_p is None else body.top_p,
            "truncation": "disabled",
            "user": body.user,
            "metadata": body.metadata or {},
        }
        for optional in ("prompt_cache_key", "safety_identifier", "user"):  # the schema: strings when present
            if self.fields[optional] is None:
                del self.fields[optional]

    def response(
        self, output: list[Item], finish_reason: str | None = None, counts: common.Usage | None = None
    ) -> Item:
        """The response object: in progress (no finish reason yet) or final."""
        body = dict(self.fields, output=output)
        if finish_reason is not None:
            body["status"] = status_of(finish_reason)
            if body["status"] == "completed":
                body["completed_at"] = body["created_at"]
            else:
                body["incomplete_details"] = {"reason": "max_output_tokens"}
        if counts is not None:
            body["usage"] = usage(counts)
        return body


def _tool_echo(tool: protocol.FunctionTool) -> Item:
    return {
        "type": "function", "name": tool.name, "description": tool.description,
        "parameters": tool.parameters, "strict": True if tool.strict is None else tool.strict,
    }  # fmt: skip


def whole_output(content: str | None, calls: list[tools.ToolCall] | None, finish_reason: str) -> list[Item]:
    """The output items of a whole answer: the message (when there is text or no call), then calls."""
    status = "incomplete" if finish_reason == "length" else "completed"
    items = [message_item(content or "", status)] if content or not calls else []
    items += [call_item(c.id, c.function.name, c.function.arguments, status) for c in calls or []]
    return items


class EventWriter:
    """Turns one answer's chat deltas into Responses stream events, numbered in order."""

    def __init__(self, envelope: Envelope) -> None:
        self.envelope = envelope
        self.output: list[Item] = []
        self.sequence = 0
        self._open: Item | None = None  # the output item being streamed

    def _event(self, kind: str, **fields: Any) -> bytes:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {_dumps(event)}\n\n".encode()

    def start(self) -> list[bytes]:
        """response.created and response.in_progress."""
        snapshot = self.envelope.response([])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _where(self) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self.output) - 1}

    def _open_item(self, item: Item) -> list[bytes]:
        events = self._close_item("completed")
        self.output.append(item)
        self._open = item
        shown = dict(item, content=[]) if item["type"] == "message" else dict(item)
        events.append(self._event("response.output_item.added", output_index=len(self.output) - 1, item=shown))
        if item["type"] == "message":
            empty = _text_part("")
            events.append(self._event("response.content_part.added", **self._where(), content_index=0, part=empty))
        return events

    def _close_item(self, status: str) -> list[bytes]:
        item, events = self._open, []
        if item is None:
            return events
        item["status"] = status
        if item["type"] == "message":
            part = item["content"][0]
            where = dict(self._where(), content_index=0)
            events.append(self._event("response.output_text.done", **where, text=part["text"], logprobs=[]))
            events.append(self._event("response.content_part.done", **where, part=part))
        else:
            done = {"name": item["name"], "arguments": item["arguments"]}
            events.append(self._event("response.function_call_arguments.done", **self._where(), **done))
        events.append(self._event("response.output_item.done", output_index=len(self.output) - 1, item=item))
        self._open = None
        return events

    def feed(self, deltas: list[dict[str, Any]]) -> list[bytes]:
        """Events for chat deltas: content text, or tool-call heads and argument fragments."""
        events: list[bytes] = []
        for delta in deltas:
            if delta.get("content"):
                if self._open is None or self._open["type"] != "message":
                    events += self._open_item(message_item("", "in_progress"))
                assert self._open is not None
                self._open["content"][0]["text"] += delta["content"]
                where = dict(self._where(), content_index=0)
                events.append(self._event("response.output_text.delta", **where, delta=delta["content"], logprobs=[]))
            for call in delta.get("tool_calls") or []:
                function = call.get("function", {})
                if call.get("id"):
                    events += self._open_item(call_item(call["id"], function.get("name", ""), "", "in_progress"))
                fragment = function.get("arguments") or ""
                if fragment and self._open is not None and self._open["type"] == "function_call":
                    self._open["arguments"] += fragment
                    where = self._where()
                    events.append(self._event("response.function_call_arguments.delta", **where, delta=fragment))
        return events

    def finish(self, finish_reason: str, counts: common.Usage) -> list[bytes]:
        """Close the open item (an empty message when nothing came) and the response."""
        events = self._open_item(message_item("", "in_progress")) if not self.output else []
        events += self._close_item(status_of(finish_reason))
        final = self.envelope.response(self.output, finish_reason, counts)
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return events + [self._event(kind, response=final)]

    def error(self, error: errors.APIError) -> bytes:
        """The stream's `error` event (after the headers an error can only go in the stream)."""
        detail = error.detail
        return self._event("error", code=detail.code or detail.type, message=detail.message, param=detail.param)
