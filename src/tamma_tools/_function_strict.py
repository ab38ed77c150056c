"""The strict form of a function's schema, and when there is none.

Strict mode (OpenAI Structured Outputs, ``shared/conformance/openai-tool-rules.md`` section 2):
every object closed with ``additionalProperties: false``, every property required, optional
ones nullable, no ``default``. A top-level parameter with a default becomes required-nullable and
``null`` means "use the default" (the call plan drops it). A nested optional field that cannot
hold ``null`` would change meaning under that rewrite, so such a schema is not strict-clean.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import orjson

from tamma_tools.schema.strict import check_strict_schema

__all__ = [
    "NULL_SCHEMA",
    "NotStrictCompatible",
    "accepts_null",
    "nullable",
    "say_defaults",
    "to_strict",
]

NULL_SCHEMA: dict[str, Any] = {"type": "null"}


class NotStrictCompatible(ValueError):
    """The schema has a part OpenAI strict mode cannot express without changing its meaning."""


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Let ``schema`` also accept ``null``, in the plainest form that says so."""
    if not schema or accepts_null(schema):
        return schema
    kind = schema.get("type")
    if "enum" not in schema and "$ref" not in schema:
        if isinstance(kind, str):
            return {**schema, "type": [kind, "null"]}
        if isinstance(kind, list):
            return {**schema, "type": [*kind, "null"]}
    if "anyOf" in schema and len(schema) == 1:
        return {"anyOf": [*schema["anyOf"], dict(NULL_SCHEMA)]}
    return {"anyOf": [schema, dict(NULL_SCHEMA)]}


def accepts_null(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return schema is True
    if not schema:
        return True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return "enum" not in schema or None in schema["enum"]
    return any(accepts_null(b) for b in schema.get("anyOf", ()))


def to_strict(schema: dict[str, Any], *, top_level_optional_ok: bool = False) -> dict[str, Any]:
    """OpenAI's strict form of ``schema``, or ``NotStrictCompatible`` saying what stands in the way.

    Unlike ``schema.strict.to_strict_schema`` (which documents "null means not given" and leaves
    the tool to cope), this refuses any rewrite the Python function would see differently: an
    open map, an untyped value, or a nested optional field that cannot hold null.

    With ``top_level_optional_ok`` the root's optional properties become required-nullable even
    when they cannot hold null (the call plan turns their null back into the default).
    """

    def convert(node: Any, path: str, root: bool) -> Any:
        if node is True or node == {}:
            raise NotStrictCompatible(f"{path or '<root>'}: accepts any value; give it a type")
        if not isinstance(node, dict):
            raise NotStrictCompatible(f"{path or '<root>'}: is not a schema object")
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "default":
                continue  # rejected in strict mode ("'default' is not permitted")
            if key == "items":
                out[key] = convert(value, f"{path}.items", False)
            elif key == "anyOf":
                out[key] = [convert(v, f"{path}.anyOf[{i}]", False) for i, v in enumerate(value)]
            elif key == "$defs":
                out[key] = {k: convert(v, f"$defs.{k}", False) for k, v in value.items()}
            elif key in ("properties", "additionalProperties", "required"):
                continue
            else:
                out[key] = value
        kind = node.get("type")
        is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
        if "properties" in node or is_object:
            extra = node.get("additionalProperties")
            if extra not in (None, False):
                raise NotStrictCompatible(f"{path or '<root>'}: has free-form keys (a dict)")
            props: dict[str, Any] = node.get("properties", {})
            if not props and not root:
                raise NotStrictCompatible(f"{path or '<root>'}: is an object with no properties")
            required = set(node.get("required", ()))
            new_props: dict[str, Any] = {}
            for name, sub in props.items():
                where = f"{path}.properties.{name}" if path else f"properties.{name}"
                converted = convert(sub, where, False)
                if name not in required:
                    if not accepts_null(sub) and not (root and top_level_optional_ok):
                        raise NotStrictCompatible(
                            f"{where}: is optional but cannot be null, so strict mode's "
                            "required-nullable form would change its meaning"
                        )
                    converted = nullable(converted)
                new_props[name] = converted
            out["properties"] = new_props
            out["required"] = list(new_props)
            out["additionalProperties"] = False
        if "$defs" in out:
            out["$defs"] = out.pop("$defs")  # after the properties, as in the plain schema
        return out

    out = typing.cast(dict[str, Any], convert(schema, "", True))
    # Keywords, formats and size limits: the shared strict-subset checker has the last word.
    report = check_strict_schema(out)
    if not report.valid:
        raise NotStrictCompatible(report.summary())
    return out


def say_defaults(schema: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Strict mode drops ``default``; tell the model in words what sending null gets it."""
    properties = schema["properties"]
    for name, value in defaults.items():
        if value is None:
            continue
        prop = properties[name]
        note = f"null means the default, {orjson.dumps(value).decode()}."
        text = prop.get("description")
        properties[name] = {
            "description": f"{text} ({note})" if text else note[0].upper() + note[1:]
        }
        properties[name].update({k: v for k, v in prop.items() if k != "description"})
    return schema
