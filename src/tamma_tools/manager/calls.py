"""Getting tool calls out of whatever the caller has, and answering every one of them.

``extract_calls`` accepts a ChatCompletion (object or dict), an assistant message, a Responses-API
response or item list, or a plain list of calls. ``ensure_tool_messages`` adds a stub tool message
for every unanswered ``tool_call_id``, because the API rejects the next request with HTTP 400
("An assistant message with 'tool_calls' must be followed by tool messages responding to each
'tool_call_id'") otherwise.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

import orjson

from tamma_tools.types import FunctionCall

__all__ = [
    "STUB_CONTENT",
    "CallParts",
    "ensure_tool_messages",
    "extract_calls",
    "new_call_id",
    "unpack_call",
]

STUB_CONTENT = (
    "Error [not_executed]: this tool call was not executed (it was cancelled, interrupted or "
    "refused before it ran). Do not assume it had any effect."
)

CallParts = tuple[str, str, str]
"""(call id, tool name, arguments string)."""


def new_call_id() -> str:
    """A fresh id of 29 characters; OpenAI has rejected ids longer than 40."""
    return "call_" + secrets.token_hex(12)


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def unpack_call(call: Any) -> CallParts:
    """(id, name, arguments) from a Chat Completions or Responses-API call, dict or object."""
    if type(call) is dict:  # the common case, checked without attribute lookups
        fn = call.get("function")
        if type(fn) is dict:
            call_id, name, arguments = call.get("id"), fn.get("name"), fn.get("arguments")
            if type(name) is str and type(arguments) is str and type(call_id) is str and call_id:
                return call_id, name, arguments
    if isinstance(call, FunctionCall):
        return call.id, call.function.name, call.function.arguments
    fn = _get(call, "function")
    if fn is not None:  # Chat Completions: {"id", "type", "function": {"name", "arguments"}}
        call_id, name, arguments = _get(call, "id"), _get(fn, "name"), _get(fn, "arguments")
    else:  # Responses API: {"type": "function_call", "call_id", "name", "arguments"}
        call_id = _get(call, "call_id") or _get(call, "id")
        name, arguments = _get(call, "name"), _get(call, "arguments")
    if not isinstance(name, str):
        raise ValueError("the tool call has no function name")
    if arguments is None:
        arguments = ""
    elif isinstance(arguments, dict | list):
        # Ollama and some vLLM builds send arguments as an object instead of a JSON string.
        arguments = orjson.dumps(arguments).decode()
    elif not isinstance(arguments, str):
        raise ValueError(
            f"the tool call's arguments must be a JSON string, got {type(arguments).__name__}"
        )
    if not isinstance(call_id, str) or not call_id:
        call_id = new_call_id()
    return call_id, name, arguments


def _dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    return dump() if dump is not None else obj


def extract_calls(source: Any) -> list[Any]:
    """The raw tool calls held by ``source`` (see module docstring for what is accepted)."""
    if source is None:
        return []
    if isinstance(source, list | tuple):
        if source and _get(source[0], "type") in ("message", "reasoning", "function_call"):
            return [item for item in source if _get(item, "type") == "function_call"]
        return list(source)
    if not isinstance(source, dict):
        source = _dump(source)
        if not isinstance(source, dict):
            raise TypeError(f"cannot find tool calls in a {type(source).__name__}")
    if "choices" in source:
        choices = source.get("choices") or []
        if not choices:
            return []
        message = _get(choices[0], "message") or {}
        return list(_get(message, "tool_calls") or [])
    if "tool_calls" in source:
        return list(source.get("tool_calls") or [])
    if "output" in source and isinstance(source["output"], list):
        return [item for item in source["output"] if _get(item, "type") == "function_call"]
    if "function" in source or source.get("type") == "function_call":
        return [source]
    raise TypeError(
        "cannot find tool calls: expected a chat completion, a message or a list of calls"
    )


def _tool_call_ids(message: Any) -> list[str]:
    ids: list[str] = []
    for call in _get(message, "tool_calls") or []:
        call_id = _get(call, "id")
        if isinstance(call_id, str):
            ids.append(call_id)
    return ids


def ensure_tool_messages(messages: Iterable[Any], *, content: str = STUB_CONTENT) -> list[Any]:
    """A copy of ``messages`` in which every assistant tool call is answered by a tool message.

    Stubs go right after the tool messages that follow the assistant message, so the order the API
    requires (assistant, then its tool messages) holds. Existing messages are never changed.
    """
    items = list(messages)
    out: list[Any] = []
    i = 0
    while i < len(items):
        message = items[i]
        out.append(message)
        i += 1
        if _get(message, "role") != "assistant":
            continue
        wanted = _tool_call_ids(message)
        if not wanted:
            continue
        answered: set[str] = set()
        while i < len(items) and _get(items[i], "role") == "tool":
            answered.add(str(_get(items[i], "tool_call_id")))
            out.append(items[i])
            i += 1
        for call_id in wanted:
            if call_id not in answered:
                out.append({"role": "tool", "tool_call_id": call_id, "content": content})
                answered.add(call_id)
    return out
