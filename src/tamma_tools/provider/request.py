"""``MessageRequest`` and the request bodies built from it for both OpenAI APIs.

The history is kept in one shape, Chat Completions messages, whichever API a run uses; the
Responses API body is converted from it on every turn (``function_call`` and
``function_call_output`` items), so a run can be resumed on either API. The one exception is a
Responses turn with reasoning: its output items are kept verbatim right before the assistant
message, sent instead of it to the Responses API and left out for Chat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tamma_tools.provider.config import FunctionCallingConfig, ToolChoice, _check_tool_choice
from tamma_tools.types import ToolDefinition

__all__ = [
    "MessageRequest",
    "chat_body",
    "is_forced",
    "merge_tools",
    "responses_body",
    "responses_input",
    "responses_tool",
    "responses_tool_choice",
]


@dataclass
class MessageRequest:
    """One run of the loop: the conversation so far and how to sample the next answers."""

    messages: list[dict[str, Any]]
    model: str | None = None
    """Falls back to ``ProviderConfig.model``."""
    tools: list[dict[str, Any] | ToolDefinition] = field(default_factory=list)
    """Sent in addition to the manager's tools (a request tool wins on a name clash)."""
    tool_choice: ToolChoice | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    id: str | None = None
    """The caller's id for this run; also the session for the manager's per-conversation
    counters when the caller's context has none."""
    user_id: str | None = None
    """Used as the caller when no ``CallerContext`` is passed."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Passed through into the request body unchanged (``top_p``, ``seed``, ``response_format``,
    ``reasoning_effort``, ...)."""

    def __post_init__(self) -> None:
        _check_tool_choice(self.tool_choice, "MessageRequest.tool_choice")


def _tool_dict(tool: dict[str, Any] | ToolDefinition) -> dict[str, Any]:
    if isinstance(tool, ToolDefinition):
        return tool.to_openai()
    if "metadata" in tool:  # our metadata is never sent to the model
        return {k: v for k, v in tool.items() if k != "metadata"}
    return tool


def _tool_name(tool: dict[str, Any]) -> str | None:
    fn = tool.get("function")
    name = fn.get("name") if isinstance(fn, dict) else tool.get("name")
    return name if isinstance(name, str) else None


def merge_tools(
    request_tools: list[dict[str, Any] | ToolDefinition], manager_tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Request tools first, then the manager's, one per name (OpenAI rejects duplicates)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for tool in [*(_tool_dict(t) for t in request_tools), *manager_tools]:
        name = _tool_name(tool)
        if name is not None:
            if name in seen:
                continue
            seen.add(name)
        out.append(tool)
    return out


def is_forced(tool_choice: ToolChoice | None) -> bool:
    """A choice that makes the model call a tool: ``required`` or one named function."""
    return tool_choice == "required" or isinstance(tool_choice, dict)


def _sampling(
    body: dict[str, Any], request: MessageRequest, tools: list[dict[str, Any]],
    tool_choice: Any, fc: FunctionCallingConfig, *, max_tokens_key: str,
) -> None:  # fmt: skip
    """The fields both APIs share, already in the API's own shapes; tool fields only with tools
    (the API refuses a ``tool_choice`` without them)."""
    if tools:
        body["tools"] = tools
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        if fc.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = fc.parallel_tool_calls
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body[max_tokens_key] = request.max_tokens


def chat_body(
    request: MessageRequest,
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    tool_choice: ToolChoice | None,
    fc: FunctionCallingConfig,
    stream: bool,
    stream_usage: bool,
) -> dict[str, Any]:
    """The ``/chat/completions`` body. ``extra`` goes in first so our fields cannot be shadowed
    by accident, except the sampling fields the caller sets there on purpose."""
    if any("type" in m for m in messages):
        # Responses API items (a reasoning turn kept verbatim) have no Chat Completions form;
        # the assistant message after them says the same in Chat's terms.
        messages = [m for m in messages if "type" not in m]
    body: dict[str, Any] = {**request.extra, "model": model, "messages": messages}
    _sampling(body, request, tools, tool_choice, fc, max_tokens_key="max_tokens")
    if stream:
        body["stream"] = True
        if stream_usage:
            body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return body


# --- Responses API ------------------------------------------------------------------------


def responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """Chat Completions' nested ``function`` tool to the Responses API's flat one."""
    fn = tool.get("function")
    if tool.get("type") == "function" and isinstance(fn, dict):
        return {"type": "function", **fn}
    return tool


def responses_tool_choice(choice: ToolChoice | None) -> Any:
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def _input_part(part: Any) -> Any:
    """A Chat Completions content part as the Responses API spells it."""
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part.get("text", "")}
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        converted: dict[str, Any] = {"type": "input_image", "image_url": url}
        if isinstance(image, dict) and image.get("detail"):
            converted["detail"] = image["detail"]
        return converted
    return part


def _text_of(content: Any) -> Any:
    if content is None:
        return ""
    if isinstance(content, list):
        return [_input_part(part) for part in content]
    return content


def _output_text(content: Any) -> str:
    """A tool message's content as the ``output`` string (text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def responses_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages to Responses input items: text messages keep their role; an assistant's
    tool calls become ``function_call`` items and tool messages ``function_call_output``.

    Responses items in the history (anything with a ``type``) go through unchanged, and an
    assistant message right after the verbatim items of its own turn is not sent twice."""
    items: list[dict[str, Any]] = []
    replayed = False  # the items since the last chat message are a replayed turn
    for message in messages:
        if "type" in message:  # already a Responses item
            items.append(message)
            replayed = replayed or message.get("type") == "reasoning"
            continue
        role = message.get("role")
        if role == "assistant" and replayed:
            replayed = False
            continue
        replayed = False
        if role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": _output_text(message.get("content")),
                }
            )
            continue
        if role == "assistant":
            if message.get("content"):
                items.append({"role": "assistant", "content": message["content"]})
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": fn.get("arguments") or "",
                    }
                )
            continue
        items.append({"role": role, "content": _text_of(message.get("content"))})
    return items


def responses_body(
    request: MessageRequest,
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    tool_choice: ToolChoice | None,
    fc: FunctionCallingConfig,
    stream: bool,
) -> dict[str, Any]:
    """The ``/responses`` body for the same turn."""
    body: dict[str, Any] = {**request.extra, "model": model, "input": responses_input(messages)}
    tools = [responses_tool(t) for t in tools]
    choice = responses_tool_choice(tool_choice)
    _sampling(body, request, tools, choice, fc, max_tokens_key="max_output_tokens")
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return body
