"""Argument intake: turn the model's ``arguments`` string into a dict, strictly or with safe repair.

The string is hostile input (DESIGN.md, threat model), so the caps come first: UTF-8 size, then
nesting depth, both before any parser sees it. The strict parse is orjson (it refuses NaN,
Infinity, lone surrogates, raw control characters, a BOM and trailing content) plus an exact
duplicate-key check, because orjson and ``json`` both let the last duplicate win and
``{"path": "a", "path": "/etc/passwd"}`` must not pass one value to a policy check and another to
the tool. Repair (``repair="safe"``) runs only after the strict parse failed, behind the same caps,
and every change is recorded under a stable name so the audit log shows what was accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal, NoReturn, TypeAlias

import orjson

from tamma_tools.errors import ArgumentsTooDeep, ArgumentsTooLarge, InvalidArgumentsJSON
from tamma_tools.manager._argument_scan import REPAIR_NAMES, TOO_DEEP, Scan, same_content, scan

__all__ = [
    "BOM",
    "CODE_FENCE",
    "CUT_OFF",
    "DOUBLE_ENCODED",
    "DUPLICATE_KEY",
    "INVALID_JSON",
    "NOT_AN_OBJECT",
    "REPAIR_CHANGES_CONTENT",
    "REPAIR_NAMES",
    "TOO_DEEP",
    "TOO_LARGE",
    "TOO_LARGE_TO_REPAIR",
    "ParsedArguments",
    "RepairMode",
    "parse_arguments",
]

RepairMode: TypeAlias = Literal["off", "safe"]

EXAMPLE = '{"key": "value"}'
TOO_LARGE = (
    "arguments are {size} bytes, over the limit of {limit} bytes; send smaller arguments "
    "(pass a path or a reference instead of large content)"
)
NOT_AN_OBJECT = "arguments must be a JSON object like {example}, got {kind}"
DOUBLE_ENCODED = (
    "; the string holds a JSON object encoded a second time: send the object itself, not a "
    "string containing it"
)
INVALID_JSON = "arguments are not valid JSON: {reason} at line {line}, column {column}"
SEND_INSTEAD = "; send one JSON object with double-quoted keys and strings, e.g. " + EXAMPLE
DUPLICATE_KEY = (
    "arguments contain the key {key!r} more than once in one object; send each key once, with "
    "the one value you mean"
)
CUT_OFF = (
    "arguments look cut off: {what} at the end; send the complete JSON object again "
    "(shorten long values if the output limit cut it)"
)
BOM = (
    "arguments start with a byte order mark (U+FEFF); send the JSON object without it, starting "
    "with {"
)
CODE_FENCE = (
    "arguments are wrapped in a markdown code fence (```); send the bare JSON object, starting "
    "with { and ending with }"
)
TOO_LARGE_TO_REPAIR = " (repair is only tried on arguments up to {limit} bytes)"
REPAIR_CHANGES_CONTENT = (
    "arguments are not valid JSON and cannot be repaired without guessing (a repair would drop, "
    "move or change a value)" + SEND_INSTEAD
)

# Friendlier words for the orjson messages a model is likely to trigger.
_REASONS = {
    "no low surrogate in string": "a \\uD800-\\uDBFF escape is not followed by its low surrogate "
    "(lone surrogates are not characters)",
    "invalid high surrogate in string": "a \\uDC00-\\uDFFF escape has no high surrogate before it "
    "(lone surrogates are not characters)",
    "unexpected control character in string": "a raw control character (such as a newline or tab) "
    "is inside a string; write it as \\n, \\t or \\u00XX",
    "unexpected end of data": "the input ends too early",
}

# One JSON string, or an unclosed one running to the end of the input. The unrolled form with the
# end-of-input branch never fails once started, so a scan over hostile text stays linear (a plain
# "..." pattern backtracks quadratically over input like \"\"\"... with no closing quote).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"{": 1, "[": 1, "}": -1, "]": -1}
_FENCE_INFO = re.compile(r"[\w.+-]*")


@dataclass(slots=True)
class ParsedArguments:
    """The arguments as a dict, plus the names of the repairs applied to get it (empty if none)."""

    value: dict[str, Any]
    repairs: list[str] = field(default_factory=list)


def parse_arguments(
    raw: str,
    *,
    has_parameters: bool = True,
    max_bytes: int = 1 << 20,
    max_depth: int = 64,
    repair: RepairMode = "off",
    complete_truncated: bool = False,
    max_repair_bytes: int = 16 * 1024,
) -> ParsedArguments:
    """Parse the model's ``arguments`` string into a dict or raise a typed error the model can read.

    ``""`` (or whitespace) gives ``{}``: schema validation then reports missing required fields.
    ``"null"`` gives ``{}`` only for a tool without parameters (``has_parameters=False``).
    ``complete_truncated`` lets safe repair close a cut-off string or object; the manager passes
    it only for read-only tools, since completing a write could write the wrong thing.
    ``max_repair_bytes`` bounds the repair parser, which is pure Python and superlinear on some
    inputs (1.7 s for 256 KiB of unclosed string, measured with json-repair 0.64), and it
    also bounds the lenient scan behind repair and strict mode's hints (about 1 µs per token):
    a bad call costs at most a few tens of milliseconds on the event loop.

    Raises ``ArgumentsTooLarge``, ``ArgumentsTooDeep`` or ``InvalidArgumentsJSON``.
    """
    try:
        # The caps inline (each is one or two C-level passes) keep the happy path near orjson's.
        if len(raw) * 4 > max_bytes:
            _check_size(raw, max_bytes)
        objects = raw.count("{")
        if objects + raw.count("[") > max_depth:
            _check_depth(raw, max_depth)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _after_failure(
                raw, exc, has_parameters, max_depth, repair, complete_truncated, max_repair_bytes
            )
        if type(value) is dict:
            # Duplicate keys: see _check_duplicates. With one "{" in the text there is no nested
            # object, so the colon count can be compared with len(value) without a walk. Nested
            # compact JSON (what most models send) re-serialises to the same bytes, and equal
            # bytes prove no key repeated: the text then holds exactly the parsed value's keys.
            colons = raw.count(":")
            if (
                colons != len(value)
                and not (objects == 1 and _key_colons(raw) == len(value))
                and orjson.dumps(value) != raw.encode()
            ):
                _check_duplicates(raw, value, colons)
            return ParsedArguments(value, [])
        return _not_an_object(value, [], has_parameters, max_depth, repair)
    except (RecursionError, ValueError) as exc:
        # Anything a parser raised that the paths above did not turn into our own error.
        raise InvalidArgumentsJSON(
            f"arguments are not valid JSON ({type(exc).__name__}){SEND_INSTEAD}"
        ) from None
    except MemoryError:
        raise ArgumentsTooLarge(
            "arguments are too large to parse in the memory available; send smaller arguments",
            limit=max_bytes,
        ) from None


# --- caps ---------------------------------------------------------------------------------------


def _check_size(raw: str, max_bytes: int) -> None:
    """Refuse before parsing; a UTF-8 character is 1-4 bytes, so encoding is rarely needed."""
    n = len(raw)
    if n * 4 <= max_bytes:
        return
    # isascii() is O(1) in CPython (compact strings know); past the cap in characters the text is
    # too large whatever its encoding, so do not encode 50 MB to say so.
    size = n if raw.isascii() or n > max_bytes else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        exact = size if raw.isascii() or n <= max_bytes else f"more than {size}"
        raise ArgumentsTooLarge(
            TOO_LARGE.format(size=exact, limit=max_bytes), size=size, limit=max_bytes
        )


def _check_depth(raw: str, max_depth: int) -> None:
    """Refuse nesting beyond ``max_depth``; brackets inside double-quoted strings do not count."""
    if raw.count("{") + raw.count("[") <= max_depth:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", raw))
    if len(brackets) <= max_depth:
        return
    if max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > max_depth:
        raise ArgumentsTooDeep(TOO_DEEP.format(limit=max_depth), limit=max_depth)


# --- duplicate keys -----------------------------------------------------------------------------


def _count_keys(value: dict[str, Any]) -> int:
    """Keys in ``value`` and every object inside it (recursion is bounded by the depth cap)."""
    n = len(value)
    for item in value.values():
        kind = type(item)
        if kind is dict:
            n += _count_keys(item)
        elif kind is list:
            n += _count_list_keys(item)
    return n


def _count_list_keys(items: list[Any]) -> int:
    n = 0
    for item in items:
        kind = type(item)
        if kind is dict:
            n += _count_keys(item)
        elif kind is list:
            n += _count_list_keys(item)
    return n


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return out


def _key_colons(raw: str) -> int:
    """Colons right after a quote or JSON whitespace: at least one per key, few in values."""
    return (
        raw.count('":') + raw.count(" :") + raw.count("\n:") + raw.count("\t:") + raw.count("\r:")
    )


def _check_duplicates(raw: str, value: dict[str, Any], colons: int | None = None) -> None:
    """Exact and cheap: refuse a repeated key in any object.

    Counting keys in the text is enough: every key in valid JSON is followed by a ``:``, so the
    text holds at least as many colons as keys, and more keys than the parsed value exactly when
    a key repeated. Cheapest bounds first: all colons (equal to the parsed count for a flat
    object without colons in values), then colons right after a quote or JSON whitespace (URLs
    and times in values do not count), then colons outside strings (exact, one regex pass).
    Measured in ``benchmarks/bench_intake.py`` against ``object_pairs_hook`` and a key regex.
    """
    if colons is None:
        colons = raw.count(":")
    if colons == len(value):
        return
    keys = _count_keys(value)
    if colons == keys or _key_colons(raw) == keys:
        return
    if _STRING.sub("", raw).count(":") == keys:
        return
    try:
        json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except _Duplicate as dup:
        raise InvalidArgumentsJSON(DUPLICATE_KEY.format(key=dup.key), key=dup.key) from None
    # Unreachable for text orjson accepted; refuse rather than guess if the counts ever disagree.
    raise InvalidArgumentsJSON("arguments could not be checked for duplicate keys" + SEND_INSTEAD)


# --- not an object ------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _inner_object(text: str, max_depth: int) -> dict[str, Any] | None:
    """The object a double-encoded string holds, parsed strictly, or None."""
    if not text.lstrip().startswith("{"):
        return None
    _check_depth(text, max_depth)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    _check_duplicates(text, value)
    return value


def _not_an_object(
    value: Any, repairs: list[str], has_parameters: bool, max_depth: int, repair: RepairMode
) -> ParsedArguments:
    if value is None and not has_parameters:
        # A tool without parameters: "null" can only mean "no arguments".
        return ParsedArguments({}, repairs)
    message = NOT_AN_OBJECT.format(example=EXAMPLE, kind=_kind(value))
    if isinstance(value, str):
        inner = _inner_object(value, max_depth)
        if inner is not None:
            if repair == "safe":
                return ParsedArguments(inner, [*repairs, "double_encoded"])
            message += DOUBLE_ENCODED
    raise InvalidArgumentsJSON(message, kind=_kind(value))


# --- invalid JSON -------------------------------------------------------------------------------


def _strip_fence(text: str) -> str | None:
    """The body of a markdown code fence that makes up the whole text, else None.

    Hand-written rather than one regex: a lazy ``(.*?)\\s*```\\s*$`` backtracks quadratically
    over long whitespace runs.
    """
    s = text.strip()
    if len(s) < 6 or not s.startswith("```") or not s.endswith("```"):
        return None
    newline = s.find("\n")
    if newline == -1 or newline > len(s) - 3:
        return None
    if not _FENCE_INFO.fullmatch(s, 3, newline):
        return None
    body = s[newline + 1 : -3]
    return None if "```" in body else body


def _scan_if_small(text: str, max_depth: int, limit: int) -> Scan | None:
    """The lenient scan, only for texts up to ``limit`` UTF-8 bytes: it is pure Python (about
    1 µs per token), and a bad call must not hold the event loop for long."""
    if len(text) > limit or (not text.isascii() and len(text.encode("utf-8", "replace")) > limit):
        return None
    return scan(text, max_depth)


def _syntax_error(
    raw: str, exc: orjson.JSONDecodeError | None, found: Scan | None, extra: str = ""
) -> NoReturn:
    """Raise the most useful message: cut off, duplicate key, or the parser's reason plus a hint."""
    if found is not None and found.truncated:
        raise InvalidArgumentsJSON(CUT_OFF.format(what=found.truncated), reason="truncated")
    if found is not None and found.duplicate is not None:
        key = found.duplicate
        raise InvalidArgumentsJSON(DUPLICATE_KEY.format(key=key), key=key)
    if found is None and exc is not None and exc.msg == "unexpected end of data":
        what = "an unfinished value"
        raise InvalidArgumentsJSON(CUT_OFF.format(what=what), reason="truncated")
    if exc is not None:
        reason = _REASONS.get(exc.msg, exc.msg)
        text = INVALID_JSON.format(reason=reason, line=exc.lineno, column=exc.colno)
    else:
        text = "arguments are not valid JSON"
    if found is not None and found.hints:
        text += "; " + "; ".join(found.hints)
    raise InvalidArgumentsJSON(text + extra + SEND_INSTEAD, reason="syntax")


def _after_failure(
    raw: str,
    exc: orjson.JSONDecodeError,
    has_parameters: bool,
    max_depth: int,
    repair: RepairMode,
    complete_truncated: bool,
    max_repair_bytes: int,
) -> ParsedArguments:
    if not raw.strip():
        return ParsedArguments({}, [])
    if repair != "safe":
        if raw.startswith("\ufeff"):
            raise InvalidArgumentsJSON(BOM, reason="bom")
        if _strip_fence(raw) is not None:
            raise InvalidArgumentsJSON(CODE_FENCE, reason="code_fence")
        _syntax_error(raw, exc, _scan_if_small(raw, max_depth, max_repair_bytes))
    return _repair(raw, exc, has_parameters, max_depth, complete_truncated, max_repair_bytes)


def _repair(
    raw: str,
    exc: orjson.JSONDecodeError,
    has_parameters: bool,
    max_depth: int,
    complete_truncated: bool,
    max_repair_bytes: int,
) -> ParsedArguments:
    """Safe repair: cheap exact fixes first (BOM, fence), then json-repair under a strict check."""
    repairs: list[str] = []
    text = raw
    if text.startswith("\ufeff"):
        text = text[1:]
        repairs.append("bom")
    body = _strip_fence(text)
    if body is not None:
        text = body
        repairs.append("code_fence")
    if repairs:
        if not text.strip():
            return ParsedArguments({}, repairs)
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as again:
            exc = again
        else:
            if type(value) is dict:
                _check_duplicates(text, value)
                return ParsedArguments(value, repairs)
            return _not_an_object(value, repairs, has_parameters, max_depth, "safe")

    found = _scan_if_small(text, max_depth, max_repair_bytes)
    if found is None:
        _syntax_error(text, exc, None, TOO_LARGE_TO_REPAIR.format(limit=max_repair_bytes))
    if found.duplicate is not None:
        _syntax_error(text, exc, found)
    if found.refusal:
        raise InvalidArgumentsJSON(
            f"arguments are not valid JSON and cannot be repaired safely: {found.refusal}"
            + SEND_INSTEAD,
            reason="unrepairable",
        )
    if found.truncated and not complete_truncated:
        _syntax_error(text, exc, found)

    import json_repair  # deferred: only the repair path pays for importing it

    try:
        fixed = json_repair.repair_json(text, skip_json_loads=True)
        value = orjson.loads(fixed) if isinstance(fixed, str) else None
    except Exception:
        # json-repair produced something still not strict JSON (e.g. a lone surrogate escape),
        # or its heuristics tripped over hostile input: either way there is no safe repair.
        _syntax_error(text, exc, found._replace(truncated=""))
    repairs.extend(found.kinds or (() if found.truncated else ("other",)))
    if found.truncated:
        repairs.append("truncated")
    if type(value) is not dict:
        return _not_an_object(value, repairs, has_parameters, max_depth, "safe")
    if not same_content(found, value):
        raise InvalidArgumentsJSON(REPAIR_CHANGES_CONTENT, reason="unrepairable")
    return ParsedArguments(value, repairs)
