"""Converting a JSON Schema to OpenAI's strict-mode subset, keeping what it means.

``to_strict_schema`` rewrites what can be rewritten without changing what the tool accepts
(closing objects, making optional fields required and nullable, dropping ``default``, inlining
``$ref`` with siblings) and reports exactly which paths it could not convert and why.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any

from tamma_tools.schema.strict import (
    _MISSING,
    CHANGE_ADDED_ADDITIONAL_PROPERTIES,
    CHANGE_DROPPED_DEFAULT,
    CHANGE_INLINED_REF,
    CHANGE_MADE_REQUIRED_NULLABLE,
    CHANGE_MERGED_ALL_OF,
    DEFAULT_STRICT_LIMITS,
    STRICT_TOO_COMPLEX,
    StrictLimits,
    _is_object,
    _resolve,
    check_strict_schema,
    join_path,
)
from tamma_tools.types import ValidationIssue

__all__ = ["StrictReport", "to_strict_schema"]


# --- converting ---------------------------------------------------------------------------


@dataclass(slots=True)
class StrictReport:
    """What ``to_strict_schema`` did: every change it made and every path it could not fix."""

    converted: bool
    """True when the output is a valid strict schema."""
    changes: list[ValidationIssue] = field(default_factory=list)
    unconvertible: list[ValidationIssue] = field(default_factory=list)
    warnings: list[ValidationIssue] = field(default_factory=list)


class _Converter:
    def __init__(self, root: Any) -> None:
        self.root = root
        self.changes: list[ValidationIssue] = []
        self.moved: list[tuple[str, str]] = []
        """(output path, input path) of each property wrapped in ``anyOf: [it, null]``."""

    def in_input_paths(self, issues: list[ValidationIssue]) -> list[ValidationIssue]:
        """Report paths where the user finds them in the input, not in the wrapped output."""
        for issue in issues:
            for new, old in reversed(self.moved):
                path = issue.path
                if path == new or path.startswith((new + ".", new + "[")):
                    issue.path = old + path[len(new) :]
        return issues

    def change(self, path: str, code: str, message: str) -> None:
        self.changes.append(ValidationIssue(path=path, message=message, code=code))

    def convert(self, node: Any, path: str, depth: int = 0) -> Any:
        if not isinstance(node, dict):
            return node
        node = self._inline_ref(node, path)
        node = self._merge_all_of(node, path)
        if "default" in node:
            del node["default"]
            self.change(join_path(path, "default"), CHANGE_DROPPED_DEFAULT, "dropped 'default'")
        if _is_object(node):
            self._close_object(node, path)
        props = node.get("properties")
        if isinstance(props, dict):
            base = join_path(path, "properties")
            for name in list(props):
                props[name] = self.convert(props[name], join_path(base, name), depth + 1)
        if isinstance(node.get("items"), dict):
            node["items"] = self.convert(node["items"], join_path(path, "items"), depth + 1)
        branches = node.get("anyOf")
        if isinstance(branches, list):
            base = join_path(path, "anyOf")
            node["anyOf"] = [
                self.convert(b, join_path(base, i), depth) for i, b in enumerate(branches)
            ]
        for key in ("$defs", "definitions"):
            defs = node.get(key)
            if isinstance(defs, dict):
                base = join_path(path, key)
                for name in list(defs):
                    defs[name] = self.convert(defs[name], join_path(base, name), depth)
        return node

    def _inline_ref(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        # OpenAI's own helper inlines a $ref that has siblings (openai-python lib/_pydantic.py);
        # a bare $ref stays, so recursive schemas keep working.
        ref = node.get("$ref")
        if not isinstance(ref, str) or len(node) == 1:
            return node
        resolved = _resolve(self.root, ref)
        if resolved is None or not isinstance(resolved[0], dict):
            return node
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        merged = {**copy.deepcopy(resolved[0]), **siblings}
        self.change(path, CHANGE_INLINED_REF, f"inlined $ref {ref!r}, which had siblings")
        return self._inline_ref(merged, path) if merged.get("$ref") != ref else merged

    def _merge_all_of(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        branches = node.get("allOf")
        if not (isinstance(branches, list) and len(branches) == 1):
            return node
        branch = branches[0]
        if not isinstance(branch, dict):
            return node
        if isinstance(branch.get("$ref"), str):
            resolved = _resolve(self.root, branch["$ref"])
            if resolved is None or not isinstance(resolved[0], dict):
                return node
            branch = copy.deepcopy(resolved[0])
        if any(k in node and node[k] != v for k, v in branch.items()):
            return node  # both sides constrain the same keyword: merging would change meaning
        merged = {k: v for k, v in node.items() if k != "allOf"}
        merged.update(branch)
        self.change(path, CHANGE_MERGED_ALL_OF, "merged the single allOf branch into its parent")
        return merged

    def _close_object(self, node: dict[str, Any], path: str) -> None:
        extra = node.get("additionalProperties", _MISSING)
        if extra is _MISSING or extra is True:
            node["additionalProperties"] = False
            self.change(
                join_path(path, "additionalProperties"),
                CHANGE_ADDED_ADDITIONAL_PROPERTIES,
                "set additionalProperties to false",
            )
        props = node.get("properties")
        if not isinstance(props, dict):
            return
        required = node.get("required")
        if not isinstance(required, list):
            required = []
        listed = {r for r in required if isinstance(r, str)}
        base = join_path(path, "properties")
        for name, sub in props.items():
            if name in listed:
                continue
            required.append(name)
            props[name], wrapped = _nullable(sub)
            if wrapped:
                where = join_path(base, name)
                self.moved.append((join_path(join_path(where, "anyOf"), 0), where))
            self.change(
                join_path(base, name),
                CHANGE_MADE_REQUIRED_NULLABLE,
                f"made optional property {name!r} required and nullable: the model sends "
                "null when it has no value, so treat null as 'not given'",
            )
        node["required"] = required


def _nullable(schema: Any) -> tuple[Any, bool]:
    """``schema`` that also accepts ``null``, in the plainest form strict mode takes, and
    whether it had to be wrapped in ``anyOf: [schema, {"type": "null"}]``."""
    if not isinstance(schema, dict):
        return schema, False
    out = dict(schema)
    kind = out.get("type")
    if "const" not in out and "$ref" not in out and isinstance(kind, str | list):
        kinds = [kind] if isinstance(kind, str) else list(kind)
        if "null" not in kinds:
            kinds.append("null")
        out["type"] = kinds
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out, False
    if kind is None and isinstance(out.get("anyOf"), list):
        if not any(isinstance(b, dict) and b.get("type") == "null" for b in out["anyOf"]):
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        return out, False
    outer = {k: out.pop(k) for k in ("title", "description", "default") if k in out}
    return {**outer, "anyOf": [out, {"type": "null"}]}, True


def to_strict_schema(
    schema: Any,
    *,
    limits: StrictLimits = DEFAULT_STRICT_LIMITS,
    fine_tuned: bool = False,
) -> tuple[Any, StrictReport]:
    """Convert ``schema`` to the strict subset where its meaning is kept; never mutates it.

    Adds ``additionalProperties: false``, makes optional properties required and nullable,
    drops ``default``, inlines a ``$ref`` that has siblings and merges a one-branch ``allOf``.
    Anything else that breaks the subset (``oneOf``, ``patternProperties``, an open map, a
    format outside the list, size limits...) is left as is and listed in ``unconvertible``.
    """
    try:
        out = copy.deepcopy(schema)
    except RecursionError:
        issue = ValidationIssue("", "schema nests too deeply to convert", STRICT_TOO_COMPLEX)
        return schema, StrictReport(converted=False, unconvertible=[issue])
    converter = _Converter(out)
    with contextlib.suppress(RecursionError):  # the check below reports the nesting
        out = converter.convert(out, "")
    result = check_strict_schema(out, limits=limits, fine_tuned=fine_tuned)
    return out, StrictReport(
        converted=result.valid,
        changes=converter.in_input_paths(converter.changes),
        unconvertible=converter.in_input_paths(result.errors),
        warnings=converter.in_input_paths(result.warnings),
    )
