"""Compiled validators for a tool's arguments, built once per schema.

jsonschema-rs (Rust) validates the typical tool schema ~100x faster than pure-Python
``jsonschema`` and still reports every violation with its path, which is what a model needs to
repair its call. Validation never coerces: ``"false"`` is not ``false``.

Schemas are compiled offline: a ``$ref`` to an ``http(s)`` URL is an error at registration, never
a request. A tool schema comes from application code, but fetching whatever URL it names while
registering tools would turn a typo (or a poisoned import) into a request from inside the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any, Final, Literal, TypeAlias

import jsonschema_rs
import orjson

from tamma_tools.errors import ToolDefinitionError
from tamma_tools.types import ValidationIssue

__all__ = [
    "ArgumentsValidator",
    "Draft",
    "compile_validator",
    "format_instance_path",
    "quote_value",
]

Draft: TypeAlias = Literal["draft7", "draft2020-12"]
"""A JSON-Schema draft to force; ``None`` reads ``$schema`` and falls back to 2020-12."""

MAX_QUOTED_CHARS: Final = 80
"""Quoted instance values are cut to this many characters: the model must never get megabytes
of its own output echoed back (it costs tokens and can carry an injection a second time)."""
MAX_LISTED_VALUES: Final = 20
"""Allowed enum values / property names listed in one message before ``... and N more``."""
DEFAULT_MAX_ERRORS: Final = 50
"""Violations reported per instance; a 100,000-element array of wrong types stops here."""

CODE_TOO_MANY_ERRORS: Final = "too_many_errors"
CODE_UNSUPPORTED_VALUE: Final = "unsupported_value"
CODE_INVALID_SCHEMA: Final = "invalid_parameters_schema"

_VALIDATOR_CLASSES: Final[dict[str, Any]] = {
    "draft7": jsonschema_rs.Draft7Validator,
    "draft2020-12": jsonschema_rs.Draft202012Validator,
}


def format_instance_path(parts: Iterable[str | int]) -> str:
    """``["items", 0, "name"]`` -> ``items[0].name``; the root is ``$``."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(f".{part}" if out else str(part))
    return "".join(out) if out else "$"


def quote_value(value: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """JSON text of ``value``, cut to ``limit`` characters with the full length noted."""
    if isinstance(value, str) and len(value) > limit * 4:
        # Cut before encoding: a 10 MB string must not be serialised just to be shortened.
        text = orjson.dumps(value[: limit * 2]).decode()
        return f"{text[:limit]}... ({len(value)} chars)"
    try:
        text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} chars)"


def _list_values(values: list[Any]) -> str:
    shown = ", ".join(quote_value(v, 40) for v in values[:MAX_LISTED_VALUES])
    extra = len(values) - MAX_LISTED_VALUES
    return f"{shown} ... and {extra} more" if extra > 0 else shown


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" if n == 1 else f"{n:g} {word}s"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() and math.isfinite(value) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# One message per jsonschema-rs error kind, built from the kind's values rather than from the
# library's text, which quotes the whole offending instance. Codes are the snake_case kind names
# (stable: tests and callers match on them).
_Formatter: TypeAlias = Callable[[dict[str, Any], Any], str]

_MESSAGES: Final[dict[str, tuple[str, _Formatter]]] = {
    "Required": (
        "required",
        lambda k, v: f"missing required property {quote_value(k['property'])}",
    ),
    "Type": (
        "type",
        lambda k, v: f"expected {' or '.join(k['types'])}, got {_json_type(v)} {quote_value(v)}",
    ),
    "Constant": (
        "constant",
        lambda k, v: f"must be exactly {quote_value(k['expected_value'])}, got {quote_value(v)}",
    ),
    "Minimum": ("minimum", lambda k, v: f"{quote_value(v)} is less than the minimum {k['limit']}"),
    "Maximum": (
        "maximum",
        lambda k, v: f"{quote_value(v)} is greater than the maximum {k['limit']}",
    ),
    "ExclusiveMinimum": (
        "exclusive_minimum",
        lambda k, v: f"{quote_value(v)} must be greater than {k['limit']}",
    ),
    "ExclusiveMaximum": (
        "exclusive_maximum",
        lambda k, v: f"{quote_value(v)} must be less than {k['limit']}",
    ),
    "MultipleOf": (
        "multiple_of",
        lambda k, v: f"{quote_value(v)} is not a multiple of {k['multiple_of']:g}",
    ),
    "MinLength": (
        "min_length",
        lambda k, v: f"{quote_value(v)} is shorter than {_plural(k['limit'], 'character')}",
    ),
    "MaxLength": (
        "max_length",
        lambda k, v: (
            f"string of {len(v) if isinstance(v, str) else '?'} characters is longer "
            f"than the maximum of {_plural(k['limit'], 'character')}: {quote_value(v)}"
        ),
    ),
    "Pattern": (
        "pattern",
        lambda k, v: f"{quote_value(v)} does not match the pattern {quote_value(k['pattern'])}",
    ),
    "Format": (
        "format",
        lambda k, v: f"{quote_value(v)} is not a valid {k['format']!r}",
    ),
    "MinItems": (
        "min_items",
        lambda k, v: f"array has {len(v)} items; at least {_plural(k['limit'], 'item')} required",
    ),
    "MaxItems": (
        "max_items",
        lambda k, v: f"array has {len(v)} items; at most {_plural(k['limit'], 'item')} allowed",
    ),
    "UniqueItems": ("unique_items", lambda k, v: "array items must be unique; some repeat"),
    "MinProperties": (
        "min_properties",
        lambda k, v: f"object has {len(v)} properties; at least {k['limit']} required",
    ),
    "MaxProperties": (
        "max_properties",
        lambda k, v: f"object has {len(v)} properties; at most {k['limit']} allowed",
    ),
    "OneOfMultipleValid": (
        "one_of_multiple_valid",
        lambda k, v: (
            f"{quote_value(v)} matches more than one alternative (oneOf); it must match exactly one"
        ),
    ),
    "Not": ("not", lambda k, v: f"{quote_value(v)} matches a schema it must not match"),
    "FalseSchema": ("false_schema", lambda k, v: "no value is allowed here; leave it out"),
    "Contains": ("contains", lambda k, v: "no array item matches the required item schema"),
}


def _schema_at(schema: Any, path: list[str | int]) -> Any:
    """The subschema at ``path`` (a jsonschema-rs ``schema_path``), or ``None``."""
    node = schema
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _describe_branch(branch: Any) -> str:
    """A short name for one ``anyOf``/``oneOf`` alternative: its type, ref name or values."""
    if not isinstance(branch, dict):
        return "anything" if branch is True else "nothing"
    kind = branch.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if isinstance(branch.get("$ref"), str):
        return "object " + branch["$ref"].rsplit("/", 1)[-1] if branch["$ref"] != "#" else "root"
    if isinstance(branch.get("enum"), list):
        return f"one of {_list_values(branch['enum'])}"
    if "const" in branch:
        return quote_value(branch["const"], 40)
    return "a schema"


def _alternatives_message(schema: Any, schema_path: list[str | int], value: Any, word: str) -> str:
    branches = _schema_at(schema, schema_path)
    head = f"{quote_value(value)} does not match any of the allowed alternatives ({word})"
    if not isinstance(branches, list) or not branches:
        return head
    described = "; ".join(_describe_branch(b) for b in branches[:MAX_LISTED_VALUES])
    return f"{head}: expected {described}"


def _allowed_properties(schema: Any, schema_path: list[str | int]) -> str:
    """The tail of an additional-property message: which keys this object does take."""
    node = _schema_at(schema, schema_path[:-1])  # the path ends at "additionalProperties"
    allowed = list(node.get("properties", {})) if isinstance(node, dict) else []
    if not allowed:
        return "; this object takes no other properties"
    return f"; allowed properties are: {_list_values(allowed)}"


class ArgumentsValidator:
    """A compiled JSON-Schema validator for one tool's parameters.

    ``is_valid`` is the hot path (one C call, bound at construction); ``errors`` runs only for
    invalid arguments and turns every violation into a message the model can act on.
    """

    __slots__ = ("_listings", "_validator", "is_valid", "max_errors", "schema")

    def __init__(
        self,
        schema: dict[str, Any] | bool,
        *,
        draft: Draft | None = None,
        assert_formats: bool = False,
        max_errors: int = DEFAULT_MAX_ERRORS,
    ) -> None:
        """Compile ``schema``; raise ``ToolDefinitionError`` if it is not a usable JSON Schema.

        ``assert_formats`` turns ``format`` into a check (JSON Schema 2020-12 treats it as an
        annotation by default, so ``"format": "date"`` alone accepts any string).
        """
        self.schema = schema
        self.max_errors = max_errors
        # Allowed-values text per schema location: it depends on the schema only, so it is
        # rendered once, not for every bad call.
        self._listings: dict[tuple[Any, ...], str] = {}
        cls = _VALIDATOR_CLASSES[draft] if draft else jsonschema_rs.validator_for
        try:
            self._validator = cls(schema, validate_formats=assert_formats or None, offline=True)
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            first_line = str(exc).split("\n", 1)[0]
            raise ToolDefinitionError(
                f"the parameters schema cannot be compiled: {first_line}",
                code=CODE_INVALID_SCHEMA,
                schema_path=list(getattr(exc, "instance_path", None) or []),
            ) from None
        self.is_valid: Callable[[Any], bool] = self._validator.is_valid

    def errors(self, instance: Any) -> list[ValidationIssue]:
        """Every violation (up to ``max_errors``), each with its path, code and message."""
        issues: list[ValidationIssue] = []
        try:
            for err in self._validator.iter_errors(instance):
                if len(issues) == self.max_errors:
                    issues.append(
                        ValidationIssue(
                            path="$",
                            message=f"more than {self.max_errors} violations; fix the ones "
                            "listed and call again to see the rest",
                            code=CODE_TOO_MANY_ERRORS,
                        )
                    )
                    break
                issues.append(self._issue(err))
        except (ValueError, OverflowError) as exc:  # e.g. integers beyond 64 bits
            issues.append(
                ValidationIssue(
                    path="$",
                    message=f"a value cannot be checked: {str(exc)[:200]}",
                    code=CODE_UNSUPPORTED_VALUE,
                )
            )
        return issues

    def _issue(self, err: Any) -> ValidationIssue:
        kind = err.kind
        name = type(kind).__name__
        path = format_instance_path(err.instance_path)
        try:
            values: dict[str, Any] = kind.as_dict()
        except Exception:  # defensive: an unknown kind without values
            values = {}
        if name == "AdditionalProperties":
            unexpected = list(values.get("unexpected", []))
            names = ", ".join(quote_value(u, 40) for u in unexpected[:MAX_LISTED_VALUES])
            if len(unexpected) > MAX_LISTED_VALUES:
                names += f" ... and {len(unexpected) - MAX_LISTED_VALUES} more"
            head = f"unexpected propert{'y' if len(unexpected) == 1 else 'ies'} {names}"
            key = (name, *err.schema_path)
            tail = self._listings.get(key)
            if tail is None:
                tail = self._listings[key] = _allowed_properties(self.schema, list(err.schema_path))
            return ValidationIssue(path=path, message=head + tail, code="additional_properties")
        if name == "Enum":
            key = (name, *err.schema_path)
            allowed = self._listings.get(key)
            if allowed is None:
                allowed = self._listings[key] = _list_values(list(values.get("options", [])))
            message = f"{quote_value(err.instance)} is not one of the allowed values: {allowed}"
            return ValidationIssue(path=path, message=message, code="enum")
        if name in ("AnyOf", "OneOfNotValid"):
            word, code = ("anyOf", "any_of") if name == "AnyOf" else ("oneOf", "one_of_not_valid")
            message = _alternatives_message(self.schema, list(err.schema_path), err.instance, word)
            return ValidationIssue(path=path, message=message, code=code)
        entry = _MESSAGES.get(name)
        if entry is not None:
            code, fmt = entry
            try:
                return ValidationIssue(path=path, message=fmt(values, err.instance), code=code)
            except (KeyError, TypeError, ValueError):
                pass
        code = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
        message = err.message
        if len(message) > 4 * MAX_QUOTED_CHARS:
            message = f"{message[: 4 * MAX_QUOTED_CHARS]}... ({len(message)} chars)"
        return ValidationIssue(path=path, message=message, code=code or "invalid")


@lru_cache(maxsize=1024)
def _compile_cached(
    canonical: bytes, draft: Draft | None, assert_formats: bool
) -> ArgumentsValidator:
    return ArgumentsValidator(orjson.loads(canonical), draft=draft, assert_formats=assert_formats)


def compile_validator(
    schema: dict[str, Any] | None,
    *,
    draft: Draft | None = None,
    assert_formats: bool = False,
) -> ArgumentsValidator:
    """Build (or reuse) the validator for ``schema``; identical schemas share one validator.

    ``None`` (a function without ``parameters``) accepts any object, as the API does.
    Raises ``ToolDefinitionError`` (code ``invalid_parameters_schema``) for a schema that cannot
    be compiled or serialised.
    """
    if schema is None:
        schema = {"type": "object", "properties": {}}
    try:
        canonical = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise ToolDefinitionError(
            f"the parameters schema is not JSON: {exc}", code=CODE_INVALID_SCHEMA
        ) from None
    return _compile_cached(canonical, draft, assert_formats)
