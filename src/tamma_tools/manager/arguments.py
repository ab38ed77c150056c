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
from typing import Any, Literal, NamedTuple, NoReturn, TypeAlias

import orjson

from tamma_tools.errors import ArgumentsTooDeep, ArgumentsTooLarge, InvalidArgumentsJSON

__all__ = [
    "CUT_OFF",
    "DUPLICATE_KEY",
    "NOT_AN_OBJECT",
    "REPAIR_NAMES",
    "TOO_DEEP",
    "TOO_LARGE",
    "ParsedArguments",
    "RepairMode",
    "parse_arguments",
]

RepairMode: TypeAlias = Literal["off", "safe"]

REPAIR_NAMES = (
    "bom",
    "code_fence",
    "double_encoded",
    "single_quotes",
    "python_literals",
    "trailing_comma",
    "truncated",
    "other",
)
"""Every name that can appear in ``ParsedArguments.repairs``, in the order they are recorded."""

EXAMPLE = '{"key": "value"}'
TOO_LARGE = (
    "arguments are {size} bytes, over the limit of {limit} bytes; send smaller arguments "
    "(pass a path or a reference instead of large content)"
)
TOO_DEEP = (
    "arguments nest objects and arrays deeper than {limit} levels; send a flatter object "
    "with at most {limit} levels"
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
REPAIR_LOST_KEYS = (
    "arguments are not valid JSON and repairing them would drop or merge keys; " + SEND_INSTEAD[2:]
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
    max_repair_bytes: int = 64 * 1024,
) -> ParsedArguments:
    """Parse the model's ``arguments`` string into a dict or raise a typed error the model can read.

    ``""`` (or whitespace) gives ``{}``: schema validation then reports missing required fields.
    ``"null"`` gives ``{}`` only for a tool without parameters (``has_parameters=False``).
    ``complete_truncated`` lets safe repair close a cut-off string or object; the manager passes
    it only for read-only tools, since completing a write could write the wrong thing.
    ``max_repair_bytes`` bounds the repair parser, which is pure Python and superlinear on some
    inputs (1.7 s for 256 KiB of unclosed string, measured with json-repair 0.64).

    Raises ``ArgumentsTooLarge``, ``ArgumentsTooDeep`` or ``InvalidArgumentsJSON``.
    """
    try:
        # The caps inline (each is one or two C-level passes) keep the happy path near orjson's.
        if len(raw) * 4 > max_bytes:
            _check_size(raw, max_bytes)
        if raw.count("{") + raw.count("[") > max_depth:
            _check_depth(raw, max_depth)
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _after_failure(
                raw, exc, has_parameters, max_depth, repair, complete_truncated, max_repair_bytes
            )
        if type(value) is dict:
            _check_duplicates(raw, value)
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
    if raw.isascii():  # O(1) in CPython: compact strings know whether they are ASCII
        size = n
    elif n > max_bytes:  # over the cap whatever the encoding: do not encode 50 MB to say so
        size = n
    else:
        size = len(raw.encode("utf-8", "surrogatepass"))
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


def _check_duplicates(raw: str, value: dict[str, Any]) -> None:
    """Exact and cheap: refuse a repeated key in any object.

    Counting keys in the text is enough: every key in valid JSON is followed by a ``:``, so the
    text holds at least as many colons as keys, and more keys than the parsed value exactly when
    a key repeated. Cheapest bounds first: all colons (equal to the parsed count for a flat
    object without colons in values), then colons right after a quote or JSON whitespace (URLs
    and times in values do not count), then colons outside strings (exact, one regex pass).
    """
    colons = raw.count(":")
    if colons == len(value):
        return
    keys = _count_keys(value)
    if colons == keys:
        return
    if (
        raw.count('":') + raw.count(" :") + raw.count("\n:") + raw.count("\t:") + raw.count("\r:")
        == keys
    ):
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


# --- lenient scan (failure path only) ----------------------------------------------------------

# Tokens of JSON plus the mistakes models make. Every alternative is linear on hostile input: the
# string patterns end at their quote or run to the end of the input, never fail halfway.
_TOKEN = re.compile(
    r"""
      (?P<ws>[ \t\n\r]+)
    | (?P<dq>"[^"\\]*(?:\\.[^"\\]*)*")
    | (?P<sq>'[^'\\]*(?:\\.[^'\\]*)*')
    | (?P<open_string>["'][^\\]*(?:\\.[^\\]*)*\\?\Z)
    | (?P<open>[{\[])
    | (?P<close>[}\]])
    | (?P<comma>,)
    | (?P<colon>:)
    | (?P<comment>//[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/|\Z)|\#[^\n]*)
    | (?P<num>[-+]?(?:[0-9.][\w.+-]*|Infinity\b|NaN\b))
    | (?P<word>[A-Za-z_$][\w$]*)
    | (?P<bad>.)
    """,
    re.S | re.X,
)
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_CONTROL = re.compile(r"[\x00-\x1f]")
_NAN = "NaN and Infinity are not JSON numbers; send a finite number or null"

_HINTS = {
    "single_quotes": "use double quotes, not single quotes, around keys and strings",
    "python_literals": "write true, false and null in lowercase (not True, False, None)",
    "trailing_comma": "remove the comma before } or ]",
    "comment": "remove comments (JSON has none)",
    "unquoted_key": "put every key in double quotes",
    "missing_comma": "separate members and elements with commas",
}
_KIND_OF_HINT = {
    "single_quotes": "single_quotes",
    "python_literals": "python_literals",
    "trailing_comma": "trailing_comma",
}


class Scan(NamedTuple):
    """What a lenient pass over broken arguments found; drives safe repair and error hints."""

    kinds: tuple[str, ...]
    """Repair names in ``REPAIR_NAMES`` order (``other`` for comments, unquoted keys, ...)."""
    hints: tuple[str, ...]
    keys: int
    duplicate: str | None
    refusal: str
    """Why no repair is safe (NaN, a bare word, text after the object...), or ``""``."""
    truncated: str
    """What is left open at the end (``"an unclosed string"``), or ``""``."""


def _key_text(kind: str, token: str) -> str:
    if kind == "word":
        return token
    if kind == "dq":
        try:
            key = json.loads(token)
        except ValueError:
            return token[1:-1]
        return key if isinstance(key, str) else token[1:-1]
    inner = token[1:-1].replace("\\'", "'").replace('"', '\\"')
    try:
        key = json.loads(f'"{inner}"')
    except ValueError:
        return token[1:-1]
    return key if isinstance(key, str) else token[1:-1]


def scan(text: str, max_depth: int) -> Scan:
    """Walk the tokens once, noting each deviation from JSON and every key per object."""
    tokens = [(m.lastgroup or "bad", m.group()) for m in _TOKEN.finditer(text)]
    tokens = [t for t in tokens if t[0] != "ws"]
    found: set[str] = set()
    stack: list[set[str] | None] = []
    keys = 0
    duplicate: str | None = None
    refusal = ""
    truncated = ""
    prev = "start"  # start | open | comma | colon | value
    done = False
    i, n = 0, len(tokens)
    while i < n and not refusal:
        kind, tok = tokens[i]
        i += 1
        if kind == "comment":
            found.add("comment")
            continue
        if kind in ("dq", "sq", "word", "num", "open_string", "open"):
            if done:
                refusal = "there is more text after the JSON object; send exactly one object"
                break
            if prev == "value":
                found.add("missing_comma")
        if kind == "open_string":
            truncated = "an unclosed string"
            prev = "value"
            if tok[0] == "'":
                found.add("single_quotes")
            continue
        if kind in ("dq", "sq", "word", "num"):
            in_object = bool(stack) and stack[-1] is not None
            is_key = in_object and i < n and tokens[i][0] == "colon"
            if in_object and not is_key and prev in ("open", "comma"):
                if i == n:
                    truncated = "a key without a value"
                else:
                    refusal = f"the key {tok} is not followed by ':'"
                break
            if kind == "sq":
                found.add("single_quotes")
            if kind in ("dq", "sq") and _CONTROL.search(tok):
                found.add("control")
            if is_key:
                if kind == "word":
                    found.add("unquoted_key")
                elif kind == "num":
                    refusal = f"the key {tok} is not a string; put every key in double quotes"
                    break
                key = _key_text(kind, tok)
                seen = stack[-1]
                assert seen is not None
                if key in seen and duplicate is None:
                    duplicate = key
                seen.add(key)
                keys += 1
                i += 1  # the colon
                prev = "colon"
                continue
            if kind == "word":
                if tok in ("True", "False", "None"):
                    found.add("python_literals")
                elif tok in ("NaN", "Infinity"):
                    refusal = _NAN
                elif tok not in ("true", "false", "null"):
                    refusal = f"{tok!r} is not a JSON value; put strings in double quotes"
            elif kind == "num":
                if "NaN" in tok or "Infinity" in tok:
                    refusal = _NAN
                elif not _JSON_NUMBER.fullmatch(tok):
                    refusal = f"{tok!r} is not a JSON number"
            prev = "value"
            done = not stack
        elif kind == "open":
            if stack and stack[-1] is not None and prev in ("open", "comma"):
                refusal = "an object or array stands where a key should be"
                break
            stack.append(set() if tok == "{" else None)
            if len(stack) > max_depth:
                raise ArgumentsTooDeep(TOO_DEEP.format(limit=max_depth), limit=max_depth)
            prev = "open"
        elif kind == "close":
            if not stack or (tok == "}") != (stack[-1] is not None):
                refusal = f"a {tok!r} does not close anything open at that point"
                break
            if prev == "comma":
                found.add("trailing_comma")
            elif prev == "colon":
                refusal = "a key has no value"
                break
            stack.pop()
            prev = "value"
            done = not stack
        elif kind == "comma":
            if prev in ("start", "open", "comma", "colon"):
                refusal = "a comma is not preceded by a value"
                break
            if done:
                found.add("trailing_comma")
            prev = "comma"
        elif kind == "colon":
            refusal = "a ':' is not preceded by a key"
        else:  # bad
            refusal = f"unexpected character {tok!r}"
    if not refusal and not truncated and stack:
        truncated = "an unclosed object" if stack[-1] is not None else "an unclosed array"
    if not refusal and not truncated and not done:
        refusal = "there is no JSON value"
    kinds = [k for k in REPAIR_NAMES if k in {_KIND_OF_HINT.get(f, "other") for f in found}]
    hints = [_HINTS[f] for f in _HINTS if f in found]
    if refusal:
        hints.append(refusal)
    return Scan(tuple(kinds), tuple(hints), keys, duplicate, refusal, truncated)


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


def _syntax_error(
    raw: str, exc: orjson.JSONDecodeError | None, found: Scan | None, extra: str = ""
) -> NoReturn:
    """Raise the most useful message: cut off, duplicate key, or the parser's reason plus a hint."""
    if found is not None and found.truncated:
        raise InvalidArgumentsJSON(CUT_OFF.format(what=found.truncated), reason="truncated")
    if found is not None and found.duplicate is not None:
        key = found.duplicate
        raise InvalidArgumentsJSON(DUPLICATE_KEY.format(key=key), key=key)
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
        _syntax_error(raw, exc, scan(raw, max_depth))
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

    found = scan(text, max_depth)
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
    if (
        len(text) > max_repair_bytes
        or len(text.encode("utf-8", "surrogatepass")) > max_repair_bytes
    ):
        _syntax_error(text, exc, None, TOO_LARGE_TO_REPAIR.format(limit=max_repair_bytes))

    import json_repair  # deferred: only the repair path pays for importing it

    try:
        fixed = json_repair.repair_json(text, skip_json_loads=True)
        value = orjson.loads(fixed) if isinstance(fixed, str) else None
    except (orjson.JSONDecodeError, RecursionError, ValueError, TypeError, IndexError):
        # json-repair produced something still not strict JSON (e.g. a lone surrogate escape).
        _syntax_error(text, exc, found._replace(truncated=""))
    repairs.extend(found.kinds or (() if found.truncated else ("other",)))
    if found.truncated:
        repairs.append("truncated")
    if type(value) is not dict:
        return _not_an_object(value, repairs, has_parameters, max_depth, "safe")
    if _count_keys(value) < found.keys:
        raise InvalidArgumentsJSON(REPAIR_LOST_KEYS, reason="unrepairable")
    return ParsedArguments(value, repairs)
