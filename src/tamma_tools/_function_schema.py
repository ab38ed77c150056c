"""Python signatures and type hints -> the JSON Schema of a tool's ``parameters``.

Everything here runs once, when a function becomes a tool; the result (``FunctionSchema``) holds
the schema, the strict form when there is one, and what the executor must do per call (which
parameters to convert from JSON, which nulls mean "the default"; ``function_tool.CallPlan``
does it). The JSON-native forms (``str``, ``int``, ``float``, ``bool``, ``None``, ``Literal``,
``Enum``, unions, ``list``, ``dict[str, X]``, ``TypedDict``, ``Annotated[..., Field(...)]``) are
converted here so the schema is exactly what the tests table shows; anything else (pydantic
models, dataclasses, ``datetime``, ``UUID``...) is described by pydantic, cleaned of titles and
with non-recursive ``$ref`` inlined, and converted back from JSON before the function sees it.

The strict form (``_function_strict.py``) is derived from that schema when it can be without
changing what the function receives.
"""

from __future__ import annotations

import collections.abc
import contextlib
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from tamma_tools._docstrings import ParsedDocstring
from tamma_tools._function_strict import (
    NULL_SCHEMA,
    NotStrictCompatible,
    accepts_null,
    nullable,
    say_defaults,
    to_strict,
)
from tamma_tools.errors import ToolDefinitionError
from tamma_tools.types import CallerContext

__all__ = [
    "FunctionSchema",
    "NotStrictCompatible",
    "build_function_schema",
    "find_context_param",
    "to_strict",
]

_PRIMITIVES: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
_SEQUENCES = (list, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_UNIONS = (Union, types.UnionType)
_WRAPPERS = (typing.Required, typing.NotRequired)
_CONTEXT_NAMES = frozenset({"CallerContext", "CallerContext | None", "Optional[CallerContext]"})

# annotated_types / FieldInfo constraint attribute -> JSON Schema keyword.
_CONSTRAINTS = (
    ("ge", "minimum"),
    ("gt", "exclusiveMinimum"),
    ("le", "maximum"),
    ("lt", "exclusiveMaximum"),
    ("multiple_of", "multipleOf"),
    ("pattern", "pattern"),
)
_LENGTH_KEYS = {
    "string": ("minLength", "maxLength"),
    "array": ("minItems", "maxItems"),
    "object": ("minProperties", "maxProperties"),
}

# Keywords whose value is a subschema, a list of them, or a map of name -> subschema.
_SUB_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then")
_SUB_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUB_MAP = ("properties", "$defs", "definitions", "patternProperties")


@dataclass(frozen=True, slots=True)
class FunctionSchema:
    """What a function contributes to its tool: schema(s), strictness and the call plan."""

    parameters: dict[str, Any]
    """The schema sent to the model: the strict form when ``strict``, else the plain one."""
    strict: bool
    strict_error: str | None
    """Why the tool is not strict (asked-for or automatic), for diagnostics."""
    context_param: str | None
    description: str | None
    converters: tuple[tuple[str, Any], ...]
    """(parameter, annotation) for each parameter the function takes as a non-JSON type."""
    null_means_default: frozenset[str]
    """Strict only: parameters whose null the executor drops so the Python default applies."""
    fill: tuple[tuple[str, Any, Callable[[], Any] | None], ...]
    """Defaults written ``param: T = Field(default)``: Python itself would pass the FieldInfo."""


def _is_context_type(annotation: Any) -> bool:
    if annotation is CallerContext:
        return True
    if isinstance(annotation, str):
        # Unresolvable string annotations (a TYPE_CHECKING import) still name the class.
        return annotation.rsplit(".", 1)[-1].strip("'\" ") in _CONTEXT_NAMES
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_context_type(get_args(annotation)[0])
    if origin in _UNIONS:
        args = [a for a in get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _is_context_type(args[0])
    return False


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError, AttributeError):
        pass
    # One annotation (often the return type, or a class local to a function) does not resolve
    # at decoration time: resolve the others one by one and leave only that one a string.
    sig = inspect.signature(fn)
    namespace = getattr(inspect.unwrap(fn), "__globals__", {})
    params = []
    for param in sig.parameters.values():
        annotation = param.annotation
        if isinstance(annotation, str):
            with contextlib.suppress(Exception):
                annotation = eval(annotation, namespace)  # what eval_str does, per parameter
        params.append(param.replace(annotation=annotation))
    return sig.replace(parameters=params)


def find_context_param(fn: Callable[..., Any]) -> str | None:
    """The name of the parameter annotated ``CallerContext``, if any (checked once, at setup)."""
    try:
        sig = _signature(fn)
    except (TypeError, ValueError):
        return None
    for param in sig.parameters.values():
        if _is_context_type(param.annotation):
            return param.name
    return None


# --- type hints -> schema -------------------------------------------------------------------


class _Converter:
    """Converts one function's annotations, pooling pydantic ``$defs`` across parameters."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.defs: dict[str, Any] = {}

    def fail(self, annotation: Any, why: str) -> ToolDefinitionError:
        return ToolDefinitionError(
            f"{self.where}: cannot describe type {annotation!r} as JSON Schema: {why}",
            code="unsupported_type",
        )

    def schema(self, tp: Any) -> dict[str, Any]:
        if tp is Any or tp is inspect.Parameter.empty or tp is object:
            return {}
        if tp is None or tp is type(None):
            return dict(NULL_SCHEMA)
        if isinstance(tp, type) and tp in _PRIMITIVES:
            return {"type": _PRIMITIVES[tp]}
        origin = get_origin(tp)
        args = get_args(tp)
        if origin is Annotated:
            return self._annotated(args[0], args[1:])
        if origin in _WRAPPERS:
            return self.schema(args[0])
        if origin is Literal:
            return _enum_schema(list(args))
        if origin in _UNIONS:
            return self._union(args)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return self._enum_class(tp)
        if origin in _SEQUENCES or tp in (list, collections.abc.Sequence):
            out: dict[str, Any] = {"type": "array"}
            if args:
                out["items"] = self.schema(args[0])
            return out
        if origin in _MAPPINGS or tp in _MAPPINGS:
            return self._mapping(tp, args)
        if typing.is_typeddict(tp):
            return self._typed_dict(tp)
        if isinstance(tp, str):
            raise self.fail(
                tp,
                "the annotation does not resolve to a type when the tool is made; define the "
                "type at module level, or import it outside 'if TYPE_CHECKING'",
            )
        return self._pydantic(tp)

    def _annotated(self, inner: Any, metadata: tuple[Any, ...]) -> dict[str, Any]:
        out = self.schema(inner)
        for meta in metadata:
            _apply_meta(out, meta)
        return out

    def _union(self, args: tuple[Any, ...]) -> dict[str, Any]:
        members = [a for a in args if a is not type(None)]
        with_none = len(members) < len(args)
        if len(members) == 1:
            out = self.schema(members[0])
            return nullable(out) if with_none else out
        branches = [self.schema(a) for a in members]
        if with_none:
            branches.append(dict(NULL_SCHEMA))
        return {"anyOf": branches}

    def _enum_class(self, tp: type[enum.Enum]) -> dict[str, Any]:
        values = [m.value for m in tp]
        if not all(v is None or isinstance(v, str | int | float | bool) for v in values):
            raise self.fail(tp, "enum values must be strings, numbers or booleans")
        return _enum_schema(values)

    def _mapping(self, tp: Any, args: tuple[Any, ...]) -> dict[str, Any]:
        if not args:
            return {"type": "object"}
        key, value = args
        if key is not str and key is not Any:
            raise self.fail(tp, "JSON object keys are strings; use dict[str, ...]")
        return {"type": "object", "additionalProperties": self.schema(value)}

    def _typed_dict(self, tp: Any) -> dict[str, Any]:
        hints = typing.get_type_hints(tp, include_extras=True)
        required_keys: frozenset[str] = getattr(tp, "__required_keys__", frozenset(hints))
        properties = {name: self.schema(hint) for name, hint in hints.items()}
        out: dict[str, Any] = {"type": "object", "properties": properties}
        required = [name for name in hints if name in required_keys]
        if required:
            out["required"] = required
        doc = tp.__doc__
        if doc and not doc.startswith(f"{tp.__name__}("):  # not the auto-generated signature
            out = {"description": inspect.cleandoc(doc), **out}
        return out

    def _pydantic(self, tp: Any) -> dict[str, Any]:
        try:
            raw = TypeAdapter(tp).json_schema(ref_template="#/$defs/{model}")
        except Exception as exc:
            raise self.fail(tp, f"{type(exc).__name__}: {exc}") from None
        defs = raw.pop("$defs", {})
        for name, schema in defs.items():
            clean = _strip_titles(schema)
            if name in self.defs and self.defs[name] != clean:
                raise self.fail(tp, f"two different types are both named {name!r}; rename one")
            self.defs[name] = clean
        out: dict[str, Any] = _strip_titles(raw)
        return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    values = [v.value if isinstance(v, enum.Enum) else v for v in values]
    kinds: list[str] = []
    for value in values:
        kind = _json_type(value)
        if kind not in kinds:
            kinds.append(kind)
    return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": values}


def _apply_meta(schema: dict[str, Any], meta: Any) -> None:
    """Fold ``Field(...)`` and ``annotated_types`` constraints into ``schema``."""
    items: list[Any] = [meta]
    if isinstance(meta, FieldInfo):
        if meta.description:
            schema["description"] = meta.description
        if meta.examples:
            schema["examples"] = list(meta.examples)
        items = list(meta.metadata)
    for item in items:
        for attr, key in _CONSTRAINTS:
            value = getattr(item, attr, None)
            if value is not None:
                schema[key] = value
        kind = schema.get("type")
        keys = _LENGTH_KEYS.get(kind) if isinstance(kind, str) else None
        if keys is not None:
            for attr, key in zip(("min_length", "max_length"), keys, strict=True):
                value = getattr(item, attr, None)
                if value is not None:
                    schema[key] = value


def _walk(schema: Any, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Any:
    """Rebuild ``schema`` bottom-up, applying ``fn`` to every (sub)schema object."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SUB_ONE and isinstance(value, dict):
            out[key] = _walk(value, fn)
        elif key in _SUB_LIST and isinstance(value, list):
            out[key] = [_walk(v, fn) for v in value]
        elif key in _SUB_MAP and isinstance(value, dict):
            out[key] = {k: _walk(v, fn) for k, v in value.items()}
        else:
            out[key] = value
    return fn(out)


def _strip_titles(schema: Any) -> Any:
    # pydantic titles every model and field ("City", "Days"): tokens that tell the model nothing.
    return _walk(schema, lambda s: {k: v for k, v in s.items() if k != "title"})


def _inline_refs(schema: Any, defs: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Replace ``$ref``s by their definitions except where that would recurse forever.

    Models handle a flat schema better than one full of references; recursive types keep a
    ``$defs`` entry (OpenAI supports ``#/$defs/...`` recursion, even in strict mode).
    """
    keep: dict[str, Any] = {}

    def expand(node: Any, stack: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [expand(v, stack) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
            name = ref[8:]
            if name in stack:
                keep.setdefault(name, None)
                return node
            rest = {k: expand(v, stack) for k, v in node.items() if k != "$ref"}
            return {**expand(defs[name], stack | {name}), **rest}
        return {k: expand(v, stack) for k, v in node.items()}

    out = expand(schema, frozenset())
    done: dict[str, Any] = {}
    while len(done) < len(keep):
        for name in [n for n in keep if n not in done]:
            done[name] = expand(defs[name], frozenset({name}))
    return out, done


# --- the whole function ----------------------------------------------------------------------


def _json_default(value: Any) -> tuple[bool, Any]:
    """The default as JSON, when it is JSON: a schema ``default`` must be data, not a repr."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        return True, orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return False, None


def _is_json_native(tp: Any) -> bool:
    """Whether the function can take the validated JSON value as is (no conversion needed)."""
    if tp is Any or tp is inspect.Parameter.empty or tp is object or tp is None:
        return True
    if tp is type(None) or (isinstance(tp, type) and tp in _PRIMITIVES):
        return True
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Annotated:
        return _is_json_native(args[0])
    if origin is Literal:
        return not any(isinstance(a, enum.Enum) for a in args)
    if origin in _UNIONS or origin in _WRAPPERS:
        return all(_is_json_native(a) for a in args)
    if origin in _SEQUENCES or origin in _MAPPINGS or tp in (list, dict):
        return all(_is_json_native(a) for a in args)
    if typing.is_typeddict(tp):
        return all(_is_json_native(h) for h in typing.get_type_hints(tp).values())
    return False


def build_function_schema(
    fn: Callable[..., Any],
    *,
    name: str,
    docstring: ParsedDocstring,
    strict: bool | None,
) -> FunctionSchema:
    """Describe ``fn``'s parameters; ``strict=None`` means strict when it converts cleanly."""
    sig = _signature(fn)
    conv = _Converter(f"tool {name!r}")
    properties: dict[str, Any] = {}
    required: list[str] = []
    converters: list[tuple[str, Any]] = []
    fill: list[tuple[str, Any, Callable[[], Any] | None]] = []
    optional_not_null: list[str] = []
    json_defaults: dict[str, Any] = {}
    context_param: str | None = None
    # Keywords a functools.partial binds are the application's choice, not the model's.
    bound = set(fn.keywords) if isinstance(fn, functools.partial) else set()
    for param in sig.parameters.values():
        where = f"tool {name!r}, parameter {param.name!r}"
        if param.name in bound:
            continue
        if _is_context_type(param.annotation):
            context_param = param.name
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"{where}: *args and **kwargs cannot be described to a model; "
                "declare each parameter by name",
                code="unsupported_signature",
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"{where}: positional-only parameters cannot be passed by name; remove the '/'",
                code="unsupported_signature",
            )
        annotation = param.annotation
        default = param.default
        conv.where = where
        schema = conv.schema(annotation)
        field = default if isinstance(default, FieldInfo) else None
        if field is not None:
            _apply_meta(schema, field)
            default = param.empty
        elif default is param.empty and get_origin(annotation) is Annotated:
            field = next((m for m in get_args(annotation)[1:] if isinstance(m, FieldInfo)), None)
        if field is not None and field.default is not PydanticUndefined:
            default = field.default
            fill.append((param.name, default, None))
        elif field is not None and field.default_factory is not None:
            factory = typing.cast(Callable[[], Any], field.default_factory)
            default = factory()  # for the schema's "default"; each call gets a fresh one
            fill.append((param.name, None, factory))
        description = docstring.params.get(param.name)
        if description and "description" not in schema:
            schema = {"description": description, **schema}
        if default is param.empty:
            required.append(param.name)
        else:
            ok, value = _json_default(default)
            if ok:
                schema["default"] = value
                json_defaults[param.name] = value
            if not accepts_null(schema):
                optional_not_null.append(param.name)
        properties[param.name] = schema
        if not _is_json_native(annotation):
            converters.append((param.name, annotation))

    loose: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        loose["required"] = required
    # The function takes no other keywords: say so, so an unknown one is a clear schema error
    # for the model rather than a TypeError from the call.
    loose["additionalProperties"] = False
    loose, kept = _inline_refs(_strip_titles(loose), conv.defs)
    if kept:
        loose["$defs"] = kept

    strict_schema: dict[str, Any] | None = None
    strict_error: str | None = None
    if strict is not False:
        try:
            strict_schema = say_defaults(
                to_strict(loose, top_level_optional_ok=True), json_defaults
            )
        except NotStrictCompatible as exc:
            strict_error = str(exc)
            if strict:
                raise ToolDefinitionError(
                    f"tool {name!r} asks for strict=True but its schema cannot be strict: "
                    f"{exc}. Change the type or pass strict=False",
                    code="not_strict_compatible",
                ) from None
    else:
        strict_error = "strict=False was asked for"
    use_strict = strict_schema is not None
    return FunctionSchema(
        parameters=strict_schema if strict_schema is not None else loose,
        strict=use_strict,
        strict_error=strict_error,
        context_param=context_param,
        description=docstring.description,
        converters=tuple(converters),
        null_means_default=frozenset(optional_not_null) if use_strict else frozenset(),
        fill=tuple(fill),
    )
