"""A lenient scan of arguments that failed the strict parse: the failure path only.

It tells safe repair what a text deviates from JSON by (single quotes, Python literals, trailing
commas, comments...), what must never be repaired (NaN, bare words, text after the object, a
duplicate key), whether the text is cut off, and every key and value in document order, so that
a repair can be checked to change punctuation only. It also gives strict mode its hints.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from tamma_tools.errors import ArgumentsTooDeep

__all__ = ["REPAIR_NAMES", "TOO_DEEP", "Scan", "same_content", "scan"]

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

TOO_DEEP = (
    "arguments nest objects and arrays deeper than {limit} levels; send a flatter object "
    "with at most {limit} levels"
)


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
    content: tuple[Any, ...]
    """Keys, scalars and brackets in document order (see ``_content``): what a repair keeps."""
    duplicate: str | None
    refusal: str
    """Why no repair is safe (NaN, a bare word, text after the object...), or ``""``."""
    truncated: str
    """What is left open at the end (``"an unclosed string"``), or ``""``."""


_WORD_VALUES = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}


_ESCAPE = re.compile(r"\\(.)", re.S)


def _unescape_quote(match: re.Match[str]) -> str:
    return "'" if match.group(1) == "'" else match.group(0)


def _string_text(kind: str, token: str) -> str:
    """What a quoted (or, for keys, bare) token means; raw control characters are kept."""
    if kind == "word":
        return token
    if kind == "open_string":
        token += token[0]
    if "\\" not in token:
        return token[1:-1]  # no escapes: the text between the quotes is the value
    # \' is not a JSON escape, but in either quote style a model means a plain '.
    inner = _ESCAPE.sub(_unescape_quote, token[1:-1])
    body = token[0] + inner + token[0] if token[0] == '"' else '"' + inner.replace('"', '\\"') + '"'
    try:
        text = json.loads(body, strict=False)
    except ValueError:
        return token[1:-1]  # an escape JSON lacks (\x41): compared raw, so a repair will differ
    return text if isinstance(text, str) else token[1:-1]


def _scalar(kind: str, token: str) -> tuple[str, Any]:
    value: Any
    if kind == "word":
        value = _WORD_VALUES[token]  # other words were refused before a value is recorded
    elif kind == "num":  # matched _JSON_NUMBER, so Python reads it the way JSON does
        value = float(token) if "." in token or "e" in token or "E" in token else int(token)
    else:
        value = _string_text(kind, token)
    return (type(value).__name__, value)


def _content(value: Any, out: list[Any]) -> list[Any]:
    """``value`` flattened like ``Scan.content``: brackets, ``("key", k)`` and typed scalars."""
    kind = type(value)
    if kind is dict:
        out.append("{")
        for key, item in value.items():
            out.append(("key", key))
            _content(item, out)
        out.append("}")
    elif kind is list:
        out.append("[")
        for item in value:
            _content(item, out)
        out.append("]")
    else:
        out.append((kind.__name__, value))
    return out


def same_content(found: Scan, value: Any) -> bool:
    """True when the repaired value holds exactly the keys, scalars and nesting of the text.

    json-repair guesses: it drops values after a missing comma inside arrays, flattens a
    misplaced bracket, strips a raw newline from a key. Accepting a repair only when nothing but
    punctuation changed makes "safe" mean what it says. Completed truncated input may add the
    closing brackets and one value for a dangling key.
    """
    got = _content(value, [])
    want = found.content
    if not found.truncated:
        return tuple(got) == want
    head = len(want) - 1 if want and want[-1] not in ("{", "[") else len(want)
    if tuple(got[:head]) != want[:head]:
        return False
    return sum(1 for item in got[head:] if item not in ("}", "]")) <= 1


def scan(text: str, max_depth: int) -> Scan:
    """Walk the tokens once, noting each deviation from JSON and every key per object."""
    tokens = [(m.lastgroup or "bad", m.group()) for m in _TOKEN.finditer(text)]
    tokens = [t for t in tokens if t[0] != "ws"]
    found: set[str] = set()
    stack: list[set[str] | None] = []
    content: list[Any] = []
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
            content.append(_scalar(kind, tok))
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
                key = _string_text(kind, tok)
                seen = stack[-1]
                assert seen is not None
                if key in seen and duplicate is None:
                    duplicate = key
                seen.add(key)
                content.append(("key", key))
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
            if not refusal:
                content.append(_scalar(kind, tok))
            prev = "value"
            done = not stack
        elif kind == "open":
            if stack and stack[-1] is not None and prev in ("open", "comma"):
                refusal = "an object or array stands where a key should be"
                break
            stack.append(set() if tok == "{" else None)
            content.append(tok)
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
            content.append(tok)
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
    return Scan(tuple(kinds), tuple(hints), tuple(content), duplicate, refusal, truncated)
