"""Chat-completion wire helpers shared by the stream accumulator and whole JSON responses.

``message_from_completion`` applies the accumulator's normalisations (arguments as objects,
missing ids, finish reasons) to a non-streaming body; the helpers build calls and replayable
assistant messages for both.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from tamma_tools.errors import ProviderError
from tamma_tools.types import FunctionCall, FunctionCallFunction

__all__ = ["ERROR_EVENT_MESSAGE", "message_from_completion", "new_call_id"]

logger = logging.getLogger("tamma_tools.provider.accumulator")

ERROR_EVENT_MESSAGE = "the server reported an error in the stream: {detail}"

# finish_reason values that mean "the model is done" and therefore mean tool_calls when calls exist.
_TOOL_FINISH_ALIASES = frozenset({"stop", "", "function_call"})
# Per-call keys with a meaning of their own; any other key (Gemini's extra_content with the
# thought_signature, QUIRKS F4) is kept and echoed on replay. ``custom`` stubs are dropped (E6).
_KNOWN_CALL_KEYS = frozenset({"index", "id", "type", "function", "custom"})
_WHITESPACE = " \t\r\n"


def new_call_id() -> str:
    """A tool-call id for a call the server sent without one (QUIRKS C5, C6).

    ``call_`` + 24 hex digits: 29 characters, within OpenAI's 40-character limit (F2), and
    accepted by Gemini in the follow-up request (F5).
    """
    return "call_" + secrets.token_hex(12)


def message_from_completion(
    body: dict[str, Any],
    *,
    choice_index: int = 0,
    id_factory: Callable[[], str] = new_call_id,
    normalize_arguments: bool = True,
) -> tuple[dict[str, Any], list[FunctionCall], str | None, dict[str, Any] | None]:
    """A non-streamed chat completion as ``(message, tool_calls, finish_reason, usage)``.

    Applies the same rules as the stream: ids generated when missing or ``""`` (C6), arguments as
    an object serialised (C15) and missing arguments read as ``"{}"`` (E5), ``}{``-glued calls
    split (C3), ``custom`` and legacy ``function_call`` stubs ignored (E6), and the finish reason
    normalised to ``tool_calls`` when calls are present (D1, D2). An error body raises
    :class:`~tamma_tools.errors.ProviderError` with the server's error object in ``details``.
    """
    if not isinstance(body, dict):
        raise ProviderError(
            f"a chat completion body must be a JSON object, got {type(body).__name__}"
        )
    error = body.get("error")
    if error is not None:
        raise ProviderError(ERROR_EVENT_MESSAGE.format(detail=_error_detail(error)), error=error)
    try:
        return _read_completion(body, choice_index, id_factory, normalize_arguments)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ProviderError(f"malformed chat completion body ({exc})", body=body) from exc


def _read_completion(
    body: dict[str, Any],
    choice_index: int,
    id_factory: Callable[[], str],
    normalize_arguments: bool,
) -> tuple[dict[str, Any], list[FunctionCall], str | None, dict[str, Any] | None]:
    usage = body.get("usage")
    usage = usage if isinstance(usage, dict) else None
    choice = _pick_choice(body.get("choices"), choice_index)
    if choice is None:
        return _assistant_message(None, None, [], normalize_arguments), [], None, usage
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        content = _text_of_parts(content)
    calls: list[FunctionCall] = []
    seen_ids: set[str] = set()
    raw_calls = message.get("tool_calls")
    for raw in raw_calls if isinstance(raw_calls, list) else []:
        if not isinstance(raw, dict):
            continue
        function = raw.get("function")
        if not isinstance(function, dict):
            continue  # E6: a custom-tool stub with no function part
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        extra = {key: value for key, value in raw.items() if key not in _KNOWN_CALL_KEYS}
        call_id = raw.get("id")
        if not call_id or call_id in seen_ids:  # C6; a repeated id would pair two results
            call_id = id_factory()
        seen_ids.add(call_id)
        calls.extend(
            _function_calls(
                call_id,
                function.get("name") or "",
                arguments,
                extra,
                id_factory,
            )
        )
    legacy = message.get("function_call")
    if not calls and isinstance(legacy, dict) and legacy.get("name"):  # E6: "" names are stubs
        calls = _function_calls(
            id_factory(), legacy["name"], legacy.get("arguments"), None, id_factory
        )
    finish_reason = _effective_finish_reason(choice.get("finish_reason"), bool(calls), True)
    refusal = message.get("refusal")
    refusal = refusal if isinstance(refusal, str) else None
    assistant = _assistant_message(content or None, refusal or None, calls, normalize_arguments)
    return assistant, calls, finish_reason, usage


# ------------------------------------------------------------------ helpers


def _effective_finish_reason(raw: str | None, has_calls: bool, complete: bool) -> str | None:
    if has_calls and (raw in _TOOL_FINISH_ALIASES or (raw is None and complete)):
        return "tool_calls"
    return raw


def _function_calls(
    call_id: str,
    name: str,
    arguments: str | None,
    extra: dict[str, Any] | None,
    id_factory: Callable[[], str],
) -> list[FunctionCall]:
    if arguments is None or not arguments.strip(_WHITESPACE):
        arguments = "{}"  # E5: a call without arguments takes no parameters.
    pieces = _split_glued_objects(arguments)
    if pieces is None:
        return [_function_call(call_id, name, arguments, extra)]
    # C3: a relay that reuses one index and sends no second id glues two calls' JSON together.
    # It can only be guessed from the shape, so it is logged.
    logger.warning(
        "tool call %s (%s): arguments are %d concatenated JSON objects; split into as many calls",
        call_id,
        name,
        len(pieces),
    )
    return [
        _function_call(call_id if i == 0 else id_factory(), name, piece, extra if i == 0 else None)
        for i, piece in enumerate(pieces)
    ]


def _function_call(
    call_id: str, name: str, arguments: str, extra: dict[str, Any] | None
) -> FunctionCall:
    function = FunctionCallFunction(name=name, arguments=arguments)
    if extra:
        try:
            return FunctionCall(id=call_id, function=function, **extra)
        except (TypeError, ValueError):
            logger.warning("tool call %s: unusable extra fields dropped: %s", call_id, list(extra))
    return FunctionCall(id=call_id, function=function)


def _split_glued_objects(text: str) -> list[str] | None:
    """The objects of ``{...}{...}`` when ``text`` is two or more JSON objects back to back."""
    try:
        orjson.loads(text)
        return None
    except orjson.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    pieces: list[str] = []
    position, end = 0, len(text)
    while True:
        while position < end and text[position] in _WHITESPACE:
            position += 1
        if position == end:
            break
        try:
            value, stop = decoder.raw_decode(text, position)
        except ValueError:
            return None
        if not isinstance(value, dict):
            return None
        pieces.append(text[position:stop])
        position = stop
    return pieces if len(pieces) > 1 else None


def _assistant_message(
    content: str | None,
    refusal: str | None,
    calls: list[FunctionCall],
    normalize_arguments: bool,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if refusal:
        message["refusal"] = refusal
    if calls:
        message["tool_calls"] = [_wire_call(call, normalize_arguments) for call in calls]
    return message


def _wire_call(call: FunctionCall, normalize_arguments: bool) -> dict[str, Any]:
    arguments = call.function.arguments
    if normalize_arguments:
        try:
            orjson.loads(arguments)
        except orjson.JSONDecodeError:
            arguments = "{}"
    wire: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": arguments},
    }
    if call.model_extra:
        wire.update(call.model_extra)  # F4: echo extra_content (Gemini's thought_signature)
    return wire


def _pick_choice(choices: Any, choice_index: int) -> dict[str, Any] | None:
    if not isinstance(choices, list) or not choices:
        return None
    for choice in choices:
        if isinstance(choice, dict) and (choice.get("index") or 0) == choice_index:
            return choice
    return None


def _text_of_parts(parts: Any) -> str:
    """Text of a content given as a list of parts (``[{"type": "text", "text": ...}]``)."""
    if not isinstance(parts, Iterable) or isinstance(parts, str | bytes | dict):
        raise TypeError(f"content must be a string or a list of parts, got {type(parts).__name__}")
    texts = []
    for part in parts:
        if isinstance(part, dict) and part.get("type", "text") == "text":
            text = part.get("text")
            if isinstance(text, str):
                texts.append(text)
        elif isinstance(part, str):
            texts.append(part)
    return "".join(texts)


def _loads_object(data: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _error_detail(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message") or error.get("code") or "no message"
        code = error.get("code")
        return f"{message} (code {code})" if code is not None and code != message else str(message)
    return str(error)


def _sort_key(index: Any) -> tuple[int, str]:
    return (index, "") if isinstance(index, int) else (1 << 62, str(index))
