"""OpenAI's strict-mode JSON-Schema subset: check a schema against it, or convert one to it.

With ``strict: true`` the API accepts only the Structured Outputs subset
(``shared/conformance/openai-tool-rules.md`` section 2) and answers anything else with a 400.
``check_strict_schema`` finds every violation before a request is sent, with a path to it;
``to_strict_schema`` rewrites what can be rewritten without changing what the tool accepts and
says exactly what could not be.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from tamma_tools.types import ValidationIssue, ValidationResult

__all__ = [
    "DEFAULT_STRICT_LIMITS",
    "STRICT_FORMATS",
    "StrictLimits",
    "check_strict_schema",
    "join_path",
]

# --- the subset ---------------------------------------------------------------------------

STRICT_FORMATS: Final = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
"""The only string formats strict mode takes [SO "Supported properties"]."""
STRICT_TYPES: Final = frozenset(
    {"string", "number", "boolean", "integer", "object", "array", "null"}
)
_STRUCTURE: Final = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "anyOf", "enum", "const"}
    | {"$ref", "$defs", "definitions"}
)
_ANNOTATIONS: Final = frozenset({"title", "description", "$comment", "$schema", "$id"})
_CONSTRAINTS: Final = frozenset(
    {"pattern", "format", "minLength", "maxLength"}
    | {"multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"}
    | {"minItems", "maxItems"}
)
FINE_TUNED_UNSUPPORTED: Final = frozenset(
    {"minLength", "maxLength", "pattern", "format", "minimum", "maximum", "multipleOf"}
    | {"minItems", "maxItems"}
)
"""Keywords strict mode rejects for fine-tuned models [SO "not yet supported"]."""
SUPPORTED_KEYWORDS: Final = _STRUCTURE | _ANNOTATIONS | _CONSTRAINTS

_WHY_UNSUPPORTED: Final[dict[str, str]] = {
    "allOf": "composition with allOf is not supported; merge the branches into one schema",
    "not": "'not' is not supported; describe the allowed values positively (enum, anyOf)",
    "if": "if/then/else is not supported; use anyOf over the allowed shapes",
    "then": "if/then/else is not supported; use anyOf over the allowed shapes",
    "else": "if/then/else is not supported; use anyOf over the allowed shapes",
    "dependentRequired": "dependentRequired is not supported; make the fields required and "
    "nullable",
    "dependentSchemas": "dependentSchemas is not supported; use anyOf over the allowed shapes",
    "dependencies": "dependencies is not supported; make the fields required and nullable",
    "oneOf": "oneOf is not supported; use anyOf (the branches should not overlap)",
    "prefixItems": "prefixItems (tuples) is not supported; use an object with named fields",
    "patternProperties": "patternProperties is not supported; list the properties by name",
    "propertyNames": "propertyNames is not supported; list the properties by name",
    "unevaluatedProperties": "unevaluatedProperties is not supported; use "
    "additionalProperties: false",
}


@dataclass(frozen=True, slots=True)
class StrictLimits:
    """Size limits of a strict schema; the defaults are OpenAI's current documented numbers.

    Azure OpenAI has been quoted with the older ones (100 properties, 5 levels, 15,000 chars,
    500 enum values, 7,500 chars): pass ``StrictLimits(max_properties=100, ...)`` for it.
    """

    max_properties: int = 5000
    """Object properties in the whole schema."""
    max_depth: int = 10
    """Nesting levels; the root object is level 1 and every object or array adds one."""
    max_string_chars: int = 120_000
    """Total length of property names, definition names, enum and const values."""
    max_enum_values: int = 1000
    """Enum values across all enums."""
    large_enum_threshold: int = 250
    """A string enum with more values than this ..."""
    large_enum_max_chars: int = 15_000
    """... may total at most this many characters."""


DEFAULT_STRICT_LIMITS: Final = StrictLimits()

# --- issue codes (stable) -----------------------------------------------------------------

STRICT_NOT_A_SCHEMA: Final = "strict_not_a_schema"
STRICT_BOOLEAN_SCHEMA: Final = "strict_boolean_schema"
STRICT_UNSUPPORTED_KEYWORD: Final = "strict_unsupported_keyword"
STRICT_FINE_TUNED_KEYWORD: Final = "strict_fine_tuned_keyword"
STRICT_DEFAULT: Final = "strict_default"
STRICT_MISSING_TYPE: Final = "strict_missing_type"
STRICT_UNSUPPORTED_TYPE: Final = "strict_unsupported_type"
STRICT_ADDITIONAL_PROPERTIES: Final = "strict_additional_properties"
STRICT_PROPERTY_NOT_REQUIRED: Final = "strict_property_not_required"
STRICT_UNSUPPORTED_FORMAT: Final = "strict_unsupported_format"
STRICT_TUPLE_ITEMS: Final = "strict_tuple_items"
STRICT_ROOT_ANY_OF: Final = "strict_root_any_of"
STRICT_ROOT_NOT_OBJECT: Final = "strict_root_not_object"
STRICT_UNRESOLVABLE_REF: Final = "strict_unresolvable_ref"
STRICT_REF_WITH_SIBLINGS: Final = "strict_ref_with_siblings"
STRICT_TOO_MANY_PROPERTIES: Final = "strict_too_many_properties"
STRICT_TOO_DEEP: Final = "strict_too_deep"
STRICT_STRINGS_TOO_LONG: Final = "strict_strings_too_long"
STRICT_TOO_MANY_ENUM_VALUES: Final = "strict_too_many_enum_values"
STRICT_LARGE_ENUM_TOO_LONG: Final = "strict_large_enum_too_long"
STRICT_TOO_COMPLEX: Final = "strict_too_complex"

# Changes made by ``to_strict_schema``.
CHANGE_ADDED_ADDITIONAL_PROPERTIES: Final = "added_additional_properties_false"
CHANGE_MADE_REQUIRED_NULLABLE: Final = "made_required_nullable"
CHANGE_DROPPED_DEFAULT: Final = "dropped_default"
CHANGE_INLINED_REF: Final = "inlined_ref"
CHANGE_MERGED_ALL_OF: Final = "merged_single_all_of"

MSG_ADDITIONAL_PROPERTIES: Final = (
    "strict mode needs additionalProperties: false on every object (found {found})"
)
MSG_OPEN_MAP: Final = (
    "additionalProperties is a schema (an open map of {found}); strict mode has no open maps "
    "and setting it to false would reject keys the tool accepts: use an array of "
    "{{key, value}} objects instead"
)
MSG_NOT_REQUIRED: Final = (
    "property {name} is not in required; strict mode needs every property required. To make it "
    'optional keep it required and allow null: "type": [<type>, "null"]'
)
MSG_MISSING_TYPE: Final = (
    "schema has no type; strict mode needs one of type, anyOf, $ref, enum or const here"
)
MSG_DEFAULT: Final = (
    "'default' is not part of the strict subset and has been rejected by the API; drop it "
    "(to_strict_schema does)"
)

_SIMPLE_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
_MISSING: Final = object()


def join_path(base: str, key: str | int) -> str:
    """``join_path("a.properties", "city") == "a.properties.city"``; odd keys are JSON-quoted
    (``properties["a.b"]``) and list indexes bracketed (``anyOf[1]``)."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if _SIMPLE_KEY.match(key):
        return f"{base}.{key}" if base else key
    quoted = '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{base}[{quoted}]"


def _types(node: dict[str, Any]) -> list[Any]:
    kind = node.get("type")
    if isinstance(kind, list):
        return kind
    return [] if kind is None else [kind]


def _is_object(node: dict[str, Any]) -> bool:
    return "object" in _types(node) or "properties" in node


def _is_array(node: dict[str, Any]) -> bool:
    return "array" in _types(node) or "items" in node


def _resolve(root: Any, ref: str) -> tuple[Any, list[str | int]] | None:
    """A local ``$ref`` (``#`` or a JSON pointer under ``#/``) -> (target, path); else ``None``."""
    if ref == "#":
        return root, []
    if not ref.startswith("#/"):
        return None
    node = root
    path: list[str | int] = []
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            path.append(int(part))
        else:
            return None
    return node, path


def _path_of(base: str, parts: list[str | int]) -> str:
    for part in parts:
        base = join_path(base, part)
    return base


def _children(node: dict[str, Any], path: str) -> list[tuple[Any, str]]:
    """Subschemas strict mode allows, with their paths (objects, items, anyOf, definitions)."""
    out: list[tuple[Any, str]] = []
    props = node.get("properties")
    if isinstance(props, dict):
        base = join_path(path, "properties")
        out.extend((sub, join_path(base, name)) for name, sub in props.items())
    items = node.get("items")
    if isinstance(items, dict | bool):
        out.append((items, join_path(path, "items")))
    branches = node.get("anyOf")
    if isinstance(branches, list):
        base = join_path(path, "anyOf")
        out.extend((sub, join_path(base, i)) for i, sub in enumerate(branches))
    for key in ("$defs", "definitions"):
        defs = node.get(key)
        if isinstance(defs, dict):
            base = join_path(path, key)
            out.extend((sub, join_path(base, name)) for name, sub in defs.items())
    return out


# --- checking -----------------------------------------------------------------------------


class _Checker:
    """One walk over a schema document collecting strict-mode violations and size totals."""

    def __init__(self, root: Any, base: str, limits: StrictLimits, fine_tuned: bool) -> None:
        self.root = root
        self.base = base
        self.limits = limits
        self.fine_tuned = fine_tuned
        self.errors: list[ValidationIssue] = []
        self.warnings: list[ValidationIssue] = []
        self.properties = 0
        self.string_chars = 0
        self.enum_values = 0

    def error(self, path: str, code: str, message: str) -> None:
        self.errors.append(ValidationIssue(path=path, message=message, code=code))

    def visit(self, node: Any, path: str) -> None:
        if isinstance(node, bool):
            self.error(
                path,
                STRICT_BOOLEAN_SCHEMA,
                f"boolean schema {str(node).lower()} is not supported in strict mode; "
                "write a schema object with a type",
            )
            return
        if not isinstance(node, dict):
            self.error(path, STRICT_NOT_A_SCHEMA, "a schema must be a JSON object")
            return
        self._keywords(node, path)
        self._type(node, path)
        if _is_object(node):
            self._object(node, path)
        self._counts(node, path)
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt not in STRICT_FORMATS:
            self.error(
                join_path(path, "format"),
                STRICT_UNSUPPORTED_FORMAT,
                f"format {fmt!r} is not supported in strict mode; supported formats are: "
                + ", ".join(sorted(STRICT_FORMATS)),
            )
        if isinstance(node.get("items"), list):
            self.error(
                join_path(path, "items"),
                STRICT_TUPLE_ITEMS,
                "items as a list (a tuple) is not supported in strict mode; give items one schema",
            )
        ref = node.get("$ref")
        if isinstance(ref, str):
            self._ref(node, ref, path)
        for child, child_path in _children(node, path):
            self.visit(child, child_path)

    def _keywords(self, node: dict[str, Any], path: str) -> None:
        for key in node:
            where = join_path(path, key)
            if key == "default":
                self.warnings.append(ValidationIssue(where, MSG_DEFAULT, STRICT_DEFAULT))
            elif key in _WHY_UNSUPPORTED:
                self.error(where, STRICT_UNSUPPORTED_KEYWORD, _WHY_UNSUPPORTED[key])
            elif key not in SUPPORTED_KEYWORDS:
                self.error(
                    where,
                    STRICT_UNSUPPORTED_KEYWORD,
                    f"keyword {key!r} is not supported in strict mode; supported keywords are: "
                    + ", ".join(sorted(SUPPORTED_KEYWORDS)),
                )
            elif self.fine_tuned and key in FINE_TUNED_UNSUPPORTED:
                self.error(
                    where,
                    STRICT_FINE_TUNED_KEYWORD,
                    f"keyword {key!r} is not supported in strict mode for fine-tuned models",
                )

    def _type(self, node: dict[str, Any], path: str) -> None:
        kind = node.get("type", _MISSING)
        if kind is _MISSING:
            if not any(k in node for k in ("anyOf", "$ref", "enum", "const", *_WHY_UNSUPPORTED)):
                self.error(path, STRICT_MISSING_TYPE, MSG_MISSING_TYPE)
            return
        kinds = kind if isinstance(kind, list) else [kind]
        bad = [k for k in kinds if not (isinstance(k, str) and k in STRICT_TYPES)]
        if bad or not kinds:
            self.error(
                join_path(path, "type"),
                STRICT_UNSUPPORTED_TYPE,
                f"type {kind!r} is not supported; use one of "
                + ", ".join(sorted(STRICT_TYPES))
                + " (or a list of them)",
            )

    def _object(self, node: dict[str, Any], path: str) -> None:
        extra = node.get("additionalProperties", _MISSING)
        if extra is not False:
            where = join_path(path, "additionalProperties")
            if isinstance(extra, dict):
                found = "/".join(str(t) for t in _types(extra)) or "values"
                self.error(where, STRICT_ADDITIONAL_PROPERTIES, MSG_OPEN_MAP.format(found=found))
            else:
                found = "nothing" if extra is _MISSING else repr(extra)
                message = MSG_ADDITIONAL_PROPERTIES.format(found=found)
                self.error(where, STRICT_ADDITIONAL_PROPERTIES, message)
        props = node.get("properties")
        required = node.get("required", [])
        if isinstance(props, dict):
            listed = (
                {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
            )
            base = join_path(path, "properties")
            for name in props:
                if name not in listed:
                    self.error(
                        join_path(base, name),
                        STRICT_PROPERTY_NOT_REQUIRED,
                        MSG_NOT_REQUIRED.format(name=repr(name)),
                    )

    def _ref(self, node: dict[str, Any], ref: str, path: str) -> None:
        if _resolve(self.root, ref) is None:
            self.error(
                join_path(path, "$ref"),
                STRICT_UNRESOLVABLE_REF,
                f"$ref {ref!r} does not point into this schema; strict mode supports only "
                "'#' and '#/$defs/<name>' references",
            )
        siblings = [k for k in node if k != "$ref"]
        if siblings:
            self.warnings.append(
                ValidationIssue(
                    path,
                    f"$ref next to other keywords ({', '.join(siblings)}) is not reliably "
                    "accepted in strict mode; inline the definition (to_strict_schema does)",
                    STRICT_REF_WITH_SIBLINGS,
                )
            )

    def _counts(self, node: dict[str, Any], path: str) -> None:
        props = node.get("properties")
        if isinstance(props, dict):
            self.properties += len(props)
            self.string_chars += sum(len(name) for name in props)
        for key in ("$defs", "definitions"):
            defs = node.get(key)
            if isinstance(defs, dict):
                self.string_chars += sum(len(name) for name in defs)
        if "const" in node:
            self.string_chars += _value_chars(node["const"])
        enum = node.get("enum")
        if isinstance(enum, list):
            self.enum_values += len(enum)
            chars = sum(_value_chars(v) for v in enum)
            self.string_chars += chars
            lim = self.limits
            strings = [v for v in enum if isinstance(v, str)]
            string_chars = sum(len(v) for v in strings)
            if len(strings) > lim.large_enum_threshold and string_chars > lim.large_enum_max_chars:
                self.error(
                    join_path(path, "enum"),
                    STRICT_LARGE_ENUM_TOO_LONG,
                    f"this enum has {len(strings)} string values totalling {string_chars} "
                    f"characters; strict mode allows at most {lim.large_enum_max_chars} "
                    f"characters once an enum has more than {lim.large_enum_threshold} values",
                )

    def totals(self) -> None:
        lim, base = self.limits, self.base
        if self.properties > lim.max_properties:
            self.error(
                base,
                STRICT_TOO_MANY_PROPERTIES,
                f"schema has {self.properties} object properties in total; strict mode allows "
                f"at most {lim.max_properties}",
            )
        if self.string_chars > lim.max_string_chars:
            self.error(
                base,
                STRICT_STRINGS_TOO_LONG,
                f"property names, definition names, enum and const values total "
                f"{self.string_chars} characters; strict mode allows at most "
                f"{lim.max_string_chars}",
            )
        if self.enum_values > lim.max_enum_values:
            self.error(
                base,
                STRICT_TOO_MANY_ENUM_VALUES,
                f"schema has {self.enum_values} enum values in total; strict mode allows at "
                f"most {lim.max_enum_values}",
            )
        depth, deepest = _Depth(self.root).deepest()
        if depth > lim.max_depth:
            self.error(
                _path_of(base, deepest),
                STRICT_TOO_DEEP,
                f"schema nests {depth} levels deep here (the root object and every nested "
                f"object or array count as a level); strict mode allows at most {lim.max_depth}",
            )


def _value_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    return len(str(value))


class _Depth:
    """Nesting height of a schema, following local ``$ref``s (recursion counts once)."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.memo: dict[int, tuple[int, list[str | int]]] = {}
        self.active: set[int] = set()

    def deepest(self) -> tuple[int, list[str | int]]:
        best = self.height(self.root, [])
        if isinstance(self.root, dict):
            for key in ("$defs", "definitions"):
                defs = self.root.get(key)
                if isinstance(defs, dict):
                    for name, sub in defs.items():
                        best = max(best, self.height(sub, [key, name]), key=lambda t: t[0])
        return best

    def height(self, node: Any, path: list[str | int]) -> tuple[int, list[str | int]]:
        if not isinstance(node, dict) or id(node) in self.active:
            return 0, path
        cached = self.memo.get(id(node))
        if cached is not None:
            return cached
        self.active.add(id(node))
        best: tuple[int, list[str | int]] = (0, path)
        for child, child_path in self._children(node, path):
            found = self.height(child, child_path)
            if found[0] > best[0]:
                best = found
        self.active.discard(id(node))
        own = 1 if _is_object(node) or _is_array(node) else 0
        result = (best[0] + own, best[1])
        self.memo[id(node)] = result
        return result

    def _children(
        self, node: dict[str, Any], path: list[str | int]
    ) -> list[tuple[Any, list[str | int]]]:
        out: list[tuple[Any, list[str | int]]] = []
        props = node.get("properties")
        if isinstance(props, dict):
            out.extend((sub, [*path, "properties", name]) for name, sub in props.items())
        if isinstance(node.get("items"), dict):
            out.append((node["items"], [*path, "items"]))
        if isinstance(node.get("additionalProperties"), dict):
            out.append((node["additionalProperties"], [*path, "additionalProperties"]))
        branches = node.get("anyOf")
        if isinstance(branches, list):
            out.extend((sub, [*path, "anyOf", i]) for i, sub in enumerate(branches))
        ref = node.get("$ref")
        if isinstance(ref, str):
            resolved = _resolve(self.root, ref)
            if resolved is not None:
                out.append(resolved)
        return out


def check_strict_schema(
    schema: Any,
    *,
    base_path: str = "",
    limits: StrictLimits = DEFAULT_STRICT_LIMITS,
    fine_tuned: bool = False,
    check_root_type: bool = True,
) -> ValidationResult:
    """Every way ``schema`` breaks the strict subset, as errors (the API would answer 400) and
    warnings (accepted today but not documented, e.g. ``default``).

    Paths start at ``base_path`` (``function.parameters`` when called for a definition).
    ``fine_tuned`` also rejects the keywords fine-tuned models do not support.
    """
    checker = _Checker(schema, base_path, limits, fine_tuned)
    if isinstance(schema, dict):
        if "anyOf" in schema:
            checker.error(
                join_path(base_path, "anyOf"),
                STRICT_ROOT_ANY_OF,
                "the root of a strict schema must not be anyOf; wrap the alternatives in an "
                "object property",
            )
        if check_root_type and schema.get("type") != "object":
            checker.error(
                join_path(base_path, "type"),
                STRICT_ROOT_NOT_OBJECT,
                f'the root must be "type": "object" (found {schema.get("type")!r})',
            )
    try:
        checker.visit(schema, base_path)
        checker.totals()
    except RecursionError:
        checker.error(
            base_path,
            STRICT_TOO_COMPLEX,
            "schema nests too deeply to check; strict mode allows at most "
            f"{limits.max_depth} levels",
        )
    return ValidationResult(
        valid=not checker.errors, errors=checker.errors, warnings=checker.warnings
    )


def __getattr__(name: str) -> Any:
    # The converter lives in its own module and builds on the checker above; importing it
    # lazily keeps ``from tamma_tools.schema.strict import to_strict_schema`` working.
    if name in ("StrictReport", "to_strict_schema"):
        from tamma_tools.schema import strict_convert

        return getattr(strict_convert, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
