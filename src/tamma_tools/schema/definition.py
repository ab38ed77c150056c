"""Tool-definition rules: what OpenAI's Chat Completions API accepts, checked before a request.

Each rule of ``shared/conformance/openai-tool-rules.md`` (sections 1 and 2) is one check here
with a stable code (the ``DEF_*`` constants) and a path like
``function.parameters.properties.city.type``. Checks are local and cheap (no network, one
meta-schema validation and one compile per definition), so they run at registration.

Decisions where the rules leave room:

- A description over 1,024 characters is a **warning** by default: the API has answered 400 for
  it, but the limit has been lifted for some models (llama_index PR #18784).
  ``long_description="error"`` makes it an error.
- ``default`` in a strict schema is a **warning**: recorded requests with ``default`` under
  ``strict: true`` were accepted, other reports show it rejected. ``to_strict_schema`` drops it.
- A dict without ``type`` gets a warning (``"function"`` is assumed, as ``ToolDefinition`` does);
  any other ``type`` is an error.
- More than 20 tools in one list is a warning (OpenAI's advice for accuracy, not a limit).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Final, Literal

import jsonschema_rs
from pydantic import ValidationError

from tamma_tools.errors import ToolDefinitionError
from tamma_tools.schema.strict import (
    DEFAULT_STRICT_LIMITS,
    StrictLimits,
    check_strict_schema,
    join_path,
)
from tamma_tools.schema.validator import compile_validator
from tamma_tools.types import ToolDefinition, ToolMetadata, ValidationIssue, ValidationResult

__all__ = [
    "MAX_DESCRIPTION_CHARS",
    "MAX_TOOLS",
    "NAME_PATTERN",
    "assert_valid_definition",
    "validate_tool_definition",
    "validate_tool_list",
]

NAME_PATTERN: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""OpenAI ``FunctionObject.name`` (Chat Completions); the API's 400 quotes this regex."""
MAX_NAME_CHARS: Final = 64
MAX_DESCRIPTION_CHARS: Final = 1024
MAX_TOOLS: Final = 128
"""``tools`` holds at most 128 entries (400 ``array_above_max_length``)."""
ADVISED_MAX_TOOLS: Final = 20

# --- issue codes (stable) -----------------------------------------------------------------

DEF_NOT_OBJECT: Final = "definition_not_object"
DEF_SHAPE: Final = "definition_invalid"
DEF_UNKNOWN_FIELD: Final = "unknown_field"
DEF_TYPE_MISSING: Final = "type_missing"
DEF_TYPE_NOT_FUNCTION: Final = "type_not_function"
DEF_FUNCTION_MISSING: Final = "function_missing"
DEF_UNKNOWN_FUNCTION_FIELD: Final = "unknown_function_field"
DEF_NAME_MISSING: Final = "name_missing"
DEF_NAME_INVALID: Final = "name_invalid"
DEF_NAME_TOO_LONG: Final = "name_too_long"
DEF_DESCRIPTION_NOT_STRING: Final = "description_not_string"
DEF_DESCRIPTION_TOO_LONG: Final = "description_too_long"
DEF_PARAMETERS_NOT_OBJECT: Final = "parameters_not_object"
DEF_PARAMETERS_INVALID_SCHEMA: Final = "parameters_invalid_schema"
DEF_PARAMETERS_UNKNOWN_DIALECT: Final = "parameters_unknown_dialect"
DEF_PARAMETERS_UNCOMPILABLE: Final = "parameters_uncompilable"
DEF_PARAMETERS_ROOT_NOT_OBJECT: Final = "parameters_root_not_object"
DEF_STRICT_NOT_BOOLEAN: Final = "strict_not_boolean"
DEF_METADATA_INVALID: Final = "metadata_invalid"
DEF_METADATA_UNKNOWN_ISOLATION: Final = "metadata_unknown_isolation"
DEF_METADATA_TIMEOUT: Final = "metadata_timeout_not_positive"
DEF_METADATA_RATE_LIMIT: Final = "metadata_rate_limit_not_positive"
DEF_METADATA_MAX_OUTPUT: Final = "metadata_negative_max_output_bytes"
DEF_METADATA_EMPTY_PERMISSION: Final = "metadata_empty_permission"
DEF_SCHEMA_TOO_DEEP: Final = "parameters_too_deep"
LIST_NOT_ARRAY: Final = "tools_not_array"
LIST_TOO_MANY: Final = "too_many_tools"
LIST_MANY_TOOLS: Final = "many_tools"
LIST_DUPLICATE_NAME: Final = "duplicate_tool_name"

MSG_NAME_RULE: Final = "use only a-z, A-Z, 0-9, _ and - (1 to 64 characters)"
MSG_ROOT_NOT_OBJECT: Final = 'parameters must be a schema with "type": "object" at the root'

_TOP_LEVEL_KEYS: Final = frozenset({"type", "function", "metadata"})
_FUNCTION_KEYS: Final = frozenset({"name", "description", "parameters", "strict"})
_JSON_TYPES: Final = "array, boolean, integer, null, number, object, string"

_META_SCHEMAS: Final[dict[str, str]] = {
    "https://json-schema.org/draft/2020-12/schema": "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema": "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema": "http://json-schema.org/draft-07/schema#",
    "http://json-schema.org/draft-06/schema": "http://json-schema.org/draft-06/schema#",
    "http://json-schema.org/draft-04/schema": "http://json-schema.org/draft-04/schema#",
}
_DEFAULT_META: Final = "https://json-schema.org/draft/2020-12/schema"


@lru_cache(maxsize=8)
def _meta_validator(uri: str) -> Any:
    """The meta-schema as a validator; jsonschema-rs ships the meta-schemas (no network)."""
    # The meta-schema's own dialect must be declared too, or only 2020-12 is in the registry.
    return jsonschema_rs.validator_for({"$schema": uri, "$ref": uri}, offline=True)


class _Issues:
    """Errors and warnings of one validation, with paths under a common prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.errors: list[ValidationIssue] = []
        self.warnings: list[ValidationIssue] = []

    def path(self, *parts: str | int) -> str:
        out = self.prefix
        for part in parts:
            out = join_path(out, part)
        return out

    def error(self, path: str, code: str, message: str) -> None:
        self.errors.append(ValidationIssue(path=path, message=message, code=code))

    def warn(self, path: str, code: str, message: str) -> None:
        self.warnings.append(ValidationIssue(path=path, message=message, code=code))

    def result(self) -> ValidationResult:
        return ValidationResult(valid=not self.errors, errors=self.errors, warnings=self.warnings)


def _split(defn: Any) -> tuple[Any, Any]:
    """(the OpenAI part as a dict, the metadata as given or ``None``)."""
    if isinstance(defn, ToolDefinition):
        return defn.to_openai(), defn.metadata
    if isinstance(defn, dict):
        return {k: v for k, v in defn.items() if k != "metadata"}, defn.get("metadata")
    return defn, None


def validate_tool_definition(
    defn: ToolDefinition | dict[str, Any],
    *,
    long_description: Literal["warning", "error"] = "warning",
    fine_tuned: bool = False,
    strict_limits: StrictLimits = DEFAULT_STRICT_LIMITS,
) -> ValidationResult:
    """Check one tool against OpenAI's rules (and strict mode when ``strict`` is true) and
    tamma-tools' metadata rules; every problem is reported, not only the first."""
    issues = _Issues()
    _check_definition(defn, issues, long_description, fine_tuned, strict_limits)
    return issues.result()


def _check_definition(
    defn: Any,
    issues: _Issues,
    long_description: Literal["warning", "error"],
    fine_tuned: bool,
    limits: StrictLimits,
) -> None:
    raw, metadata = _split(defn)
    if not isinstance(raw, dict):
        issues.error(
            issues.path(),
            DEF_NOT_OBJECT,
            f'a tool definition must be an object {{"type": "function", "function": {{...}}}}, '
            f"got {type(raw).__name__}",
        )
        return
    for key in raw:
        if key not in _TOP_LEVEL_KEYS:
            issues.error(
                issues.path(key),
                DEF_UNKNOWN_FIELD,
                f"unknown field {key!r}; a tool has only type, function (and tamma-tools' "
                "metadata)",
            )
    if "type" not in raw:
        issues.warn(issues.path("type"), DEF_TYPE_MISSING, 'type is missing; "function" assumed')
    elif raw["type"] != "function":
        issues.error(
            issues.path("type"),
            DEF_TYPE_NOT_FUNCTION,
            f'type must be "function" for Chat Completions tools, got {raw["type"]!r}',
        )
    function = raw.get("function")
    if not isinstance(function, dict):
        issues.error(
            issues.path("function"),
            DEF_FUNCTION_MISSING,
            "function is missing or not an object; it holds name, description, parameters "
            "and strict",
        )
    else:
        _check_function(function, issues, long_description, fine_tuned, limits)
    if metadata is not None:
        _check_metadata(metadata, issues)
    if not issues.errors and isinstance(defn, dict):
        # Anything the checks above let through but the model type refuses.
        try:
            ToolDefinition.model_validate(defn)
        except ValidationError as exc:
            for err in exc.errors():
                issues.error(issues.path(*err["loc"]), DEF_SHAPE, err["msg"])


def _check_function(
    function: dict[str, Any],
    issues: _Issues,
    long_description: Literal["warning", "error"],
    fine_tuned: bool,
    limits: StrictLimits,
) -> None:
    for key in function:
        if key not in _FUNCTION_KEYS:
            issues.warn(
                issues.path("function", key),
                DEF_UNKNOWN_FUNCTION_FIELD,
                f"unknown field {key!r} in function; the API may reject it. Known fields: "
                "name, description, parameters, strict",
            )
    _check_name(function.get("name"), issues)
    description = function.get("description")
    where = issues.path("function", "description")
    if description is not None and not isinstance(description, str):
        issues.error(where, DEF_DESCRIPTION_NOT_STRING, "description must be a string")
    elif isinstance(description, str) and len(description) > MAX_DESCRIPTION_CHARS:
        message = (
            f"description has {len(description)} characters; the API has rejected "
            f"descriptions over {MAX_DESCRIPTION_CHARS} (400 string_above_max_length)"
        )
        if long_description == "error":
            issues.error(where, DEF_DESCRIPTION_TOO_LONG, message)
        else:
            issues.warn(where, DEF_DESCRIPTION_TOO_LONG, message)
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        issues.error(
            issues.path("function", "strict"),
            DEF_STRICT_NOT_BOOLEAN,
            f"strict must be true or false, got {strict!r}",
        )
    if "parameters" not in function or function["parameters"] is None:
        return  # no parameters: a function without arguments
    params = function["parameters"]
    base = issues.path("function", "parameters")
    if not isinstance(params, dict):
        issues.error(
            base,
            DEF_PARAMETERS_NOT_OBJECT,
            f"parameters must be a JSON Schema object, got {type(params).__name__}",
        )
        return
    if not _check_schema(params, base, issues):
        return
    if strict is True:
        try:
            found = check_strict_schema(
                params,
                base_path=base,
                limits=limits,
                fine_tuned=fine_tuned,
                check_root_type=False,  # reported above for every definition
            )
        except RecursionError:
            issues.error(base, DEF_SCHEMA_TOO_DEEP, "parameters nest too deeply to check")
            return
        issues.errors.extend(found.errors)
        issues.warnings.extend(found.warnings)


def _check_name(name: Any, issues: _Issues) -> None:
    where = issues.path("function", "name")
    if name is None or name == "":
        issues.error(where, DEF_NAME_MISSING, f"name is required; {MSG_NAME_RULE}")
    elif not isinstance(name, str):
        issues.error(where, DEF_NAME_INVALID, f"name must be a string; {MSG_NAME_RULE}")
    elif not NAME_PATTERN.match(name):
        bad = sorted({c for c in name if not re.match(r"[a-zA-Z0-9_-]", c)})
        if bad:
            shown = ", ".join(repr(c) for c in bad[:10])
            issues.error(
                where,
                DEF_NAME_INVALID,
                f"name {name[:80]!r} contains characters the API rejects ({shown}); "
                f"{MSG_NAME_RULE}",
            )
        if len(name) > MAX_NAME_CHARS:
            issues.error(
                where,
                DEF_NAME_TOO_LONG,
                f"name has {len(name)} characters; at most {MAX_NAME_CHARS} are allowed",
            )


def _check_schema(params: dict[str, Any], base: str, issues: _Issues) -> bool:
    """Meta-validate, check the root type and compile; ``False`` when it is no usable schema."""
    dialect = params.get("$schema", _DEFAULT_META)
    key = dialect.rstrip("#") if isinstance(dialect, str) else None
    meta_uri = _META_SCHEMAS.get(key) if key is not None else None
    if meta_uri is None:
        issues.error(
            join_path(base, "$schema"),
            DEF_PARAMETERS_UNKNOWN_DIALECT,
            f"unknown $schema {dialect!r}; use draft 2020-12 (or leave $schema out)",
        )
        return False
    before = len(issues.errors)
    try:
        for err in _meta_validator(meta_uri).iter_errors(params):
            path = base
            for part in err.instance_path:
                path = join_path(path, part)
            issues.error(path, DEF_PARAMETERS_INVALID_SCHEMA, _meta_message(err))
    except (ValueError, RecursionError) as exc:
        issues.error(base, DEF_PARAMETERS_INVALID_SCHEMA, str(exc).split("\n", 1)[0][:200])
    if params.get("type") != "object":
        found = params.get("type", "nothing")
        issues.error(
            join_path(base, "type"),
            DEF_PARAMETERS_ROOT_NOT_OBJECT,
            f"{MSG_ROOT_NOT_OBJECT} (found {found!r})",
        )
    if len(issues.errors) > before:
        return False
    try:
        compile_validator(params)
    except ToolDefinitionError as exc:
        where = base
        for part in exc.details.get("schema_path", []):
            where = join_path(where, part)
        issues.error(where, DEF_PARAMETERS_UNCOMPILABLE, exc.message)
        return False
    return True


def _meta_message(err: Any) -> str:
    parts = list(err.instance_path)
    if parts and parts[-1] == "type":
        return (
            f"{_short(err.instance)} is not a JSON Schema type; use one of {_JSON_TYPES} "
            "(or a list of them)"
        )
    if parts and parts[-1] == "required":
        return "required must be an array of unique property names"
    first = str(err.message).split("\n", 1)[0]
    return f"not a valid JSON Schema here: {first[:200]}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _check_metadata(metadata: Any, issues: _Issues) -> None:
    if isinstance(metadata, ToolMetadata):
        meta = metadata
    elif not isinstance(metadata, dict):
        issues.error(
            issues.path("metadata"),
            DEF_METADATA_INVALID,
            f"metadata must be an object, got {type(metadata).__name__}",
        )
        return
    else:
        try:
            meta = ToolMetadata.model_validate(metadata)
        except ValidationError as exc:
            failed: set[Any] = set()
            for err in exc.errors():
                loc = err["loc"]
                failed.add(loc[0] if loc else None)
                code = (
                    DEF_METADATA_UNKNOWN_ISOLATION
                    if loc and loc[0] == "isolation"
                    else DEF_METADATA_INVALID
                )
                issues.error(issues.path("metadata", *loc), code, err["msg"])
            # Check the fields that did parse, so one bad field does not hide another.
            rest = {k: v for k, v in metadata.items() if k not in failed}
            try:
                meta = ToolMetadata.model_validate(rest)
            except ValidationError:
                return
    if meta.isolation not in (None, "in_process", "worker", "process"):
        issues.error(
            issues.path("metadata", "isolation"),
            DEF_METADATA_UNKNOWN_ISOLATION,
            f"unknown isolation {meta.isolation!r}; use in_process, worker or process",
        )
    if meta.timeout_s is not None and not (math.isfinite(meta.timeout_s) and meta.timeout_s > 0):
        issues.error(
            issues.path("metadata", "timeout_s"),
            DEF_METADATA_TIMEOUT,
            f"timeout_s must be a positive number of seconds, got {meta.timeout_s!r}",
        )
    if meta.rate_limit is not None:
        for window in ("calls_per_minute", "calls_per_hour", "calls_per_day"):
            value = getattr(meta.rate_limit, window)
            if value is not None and value <= 0:
                issues.error(
                    issues.path("metadata", "rate_limit", window),
                    DEF_METADATA_RATE_LIMIT,
                    f"{window} must be a positive number of calls, got {value!r} "
                    "(leave it out for no limit)",
                )
    if meta.max_output_bytes is not None and meta.max_output_bytes < 0:
        issues.error(
            issues.path("metadata", "max_output_bytes"),
            DEF_METADATA_MAX_OUTPUT,
            f"max_output_bytes must be 0 or more, got {meta.max_output_bytes!r}",
        )
    for i, permission in enumerate(meta.permissions):
        if not permission.strip():
            issues.error(
                issues.path("metadata", "permissions", i),
                DEF_METADATA_EMPTY_PERMISSION,
                "a permission must be a non-empty name",
            )


def validate_tool_list(
    defs: list[ToolDefinition | dict[str, Any]],
    *,
    long_description: Literal["warning", "error"] = "warning",
    fine_tuned: bool = False,
    strict_limits: StrictLimits = DEFAULT_STRICT_LIMITS,
) -> ValidationResult:
    """Check a request's ``tools`` list: each tool's own rules (paths ``tools[i]....``), at
    most 128 tools, and no name used twice."""
    issues = _Issues("tools")
    if not isinstance(defs, list | tuple):
        issues.error("tools", LIST_NOT_ARRAY, f"tools must be an array, got {type(defs).__name__}")
        return issues.result()
    if len(defs) > MAX_TOOLS:
        issues.error(
            "tools",
            LIST_TOO_MANY,
            f"{len(defs)} tools; the API accepts at most {MAX_TOOLS} per request: send only the "
            "tools this step needs",
        )
    elif len(defs) > ADVISED_MAX_TOOLS:
        issues.warn(
            "tools",
            LIST_MANY_TOOLS,
            f"{len(defs)} tools; OpenAI advises fewer than about {ADVISED_MAX_TOOLS} at once "
            "for accurate tool choice",
        )
    first_seen: dict[str, int] = {}
    for i, defn in enumerate(defs):
        own = _Issues(f"tools[{i}]")
        _check_definition(defn, own, long_description, fine_tuned, strict_limits)
        issues.errors.extend(own.errors)
        issues.warnings.extend(own.warnings)
        raw, _ = _split(defn)
        function = raw.get("function") if isinstance(raw, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_seen:
            issues.error(
                f"tools[{i}].function.name",
                LIST_DUPLICATE_NAME,
                f"tool name {name!r} is already used by tools[{first_seen[name]}]; names must "
                "be unique",
            )
        else:
            first_seen[name] = i
    return issues.result()


def assert_valid_definition(
    defn: ToolDefinition | dict[str, Any],
    *,
    long_description: Literal["warning", "error"] = "warning",
    fine_tuned: bool = False,
    strict_limits: StrictLimits = DEFAULT_STRICT_LIMITS,
) -> ToolDefinition:
    """The definition as a ``ToolDefinition``; raises ``ToolDefinitionError`` listing every
    error (``.issues``) when it breaks a rule."""
    result = validate_tool_definition(
        defn,
        long_description=long_description,
        fine_tuned=fine_tuned,
        strict_limits=strict_limits,
    )
    if not result.valid:
        raw, _ = _split(defn)
        function = raw.get("function") if isinstance(raw, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        label = f"tool {name!r}" if isinstance(name, str) else "tool definition"
        raise ToolDefinitionError(
            f"{label} is invalid: {result.summary()}",
            issues=result.errors,
        )
    if isinstance(defn, ToolDefinition):
        return defn
    return ToolDefinition.model_validate(defn)
