"""Every rule of ``openai-tool-rules.md`` (sections 1 and 2) and our metadata rules: one
passing and one failing definition each, with the code and the path the failure is reported at.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tamma_tools.errors import ToolDefinitionError
from tamma_tools.schema.definition import (
    assert_valid_definition,
    validate_tool_definition,
    validate_tool_list,
)
from tamma_tools.schema.strict import StrictLimits
from tamma_tools.types import ToolDefinition, ToolMetadata

OBJ = {"type": "object", "properties": {}, "additionalProperties": False, "required": []}


def obj(props: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A strict-valid object schema with every property required."""
    props = props or {}
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
        **extra,
    }


def tool(
    params: Any = None,
    *,
    strict: bool | None = True,
    name: Any = "get_weather",
    **function: Any,
) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": name, **function}
    if params is not None:
        fn["parameters"] = params
    if strict is not None:
        fn["strict"] = strict
    return {"type": "function", "function": fn}


def nested_objects(levels: int) -> dict[str, Any]:
    """An object schema ``levels`` objects deep (the root counts as one)."""
    node = obj({"leaf": {"type": "string"}})
    for _ in range(levels - 1):
        node = obj({"child": node})
    return node


def nested_arrays(pairs: int) -> dict[str, Any]:
    """Root object, then ``pairs`` times an array of objects: 1 + 2 * pairs levels."""
    node = obj({"leaf": {"type": "string"}})
    for _ in range(pairs):
        node = obj({"list": {"type": "array", "items": node}})
    return node


def many_properties(n: int) -> dict[str, Any]:
    return obj({f"p{i}": {"type": "string"} for i in range(n)})


def enums(counts: list[int]) -> dict[str, Any]:
    return obj({f"e{i}": {"type": "integer", "enum": list(range(c))} for i, c in enumerate(counts)})


def string_enum(count: int, total_chars: int) -> dict[str, Any]:
    """One string enum of ``count`` distinct values whose lengths add up to ``total_chars``."""
    base, rest = divmod(total_chars, count)
    values = []
    for i in range(count):
        length = base + (1 if i < rest else 0)
        tag = f"{i}-"
        values.append((tag + "v" * length)[:length] if length >= len(tag) else str(i))
    assert sum(map(len, values)) == total_chars and len(set(values)) == count
    return obj({"choice": {"type": "string", "enum": values}})


# (id, definition, options, error code expected or None, path of that error)
RULES: list[tuple[str, Any, dict[str, Any], str | None, str]] = [
    # --- section 1: the function definition -------------------------------------------
    ("type/function", tool(OBJ), {}, None, ""),
    ("shape/well-formed", tool(OBJ, description="Forecast"), {}, None, ""),
    ("type/other", {**tool(OBJ), "type": "retrieval"}, {}, "type_not_function", "type"),
    ("shape/unknown-top-level-field", {**tool(OBJ), "extra": 1}, {}, "unknown_field", "extra"),
    ("shape/function-missing", {"type": "function"}, {}, "function_missing", "function"),
    ("shape/not-an-object", ["get_weather"], {}, "definition_not_object", ""),
    ("name/ok", tool(OBJ, name="Get_weather-2"), {}, None, ""),
    ("name/64-chars", tool(OBJ, name="a" * 64), {}, None, ""),
    ("name/65-chars", tool(OBJ, name="a" * 65), {}, "name_too_long", "function.name"),
    ("name/space", tool(OBJ, name="get weather"), {}, "name_invalid", "function.name"),
    ("name/dot", tool(OBJ, name="weather.get"), {}, "name_invalid", "function.name"),
    ("name/unicode", tool(OBJ, name="wetter_für"), {}, "name_invalid", "function.name"),
    ("name/empty", tool(OBJ, name=""), {}, "name_missing", "function.name"),
    ("name/not-string", tool(OBJ, name=7), {}, "name_invalid", "function.name"),
    ("description/absent", tool(OBJ), {}, None, ""),
    ("description/1024", tool(OBJ, description="d" * 1024), {}, None, ""),
    (
        "description/1025-as-error",
        tool(OBJ, description="d" * 1025),
        {"long_description": "error"},
        "description_too_long",
        "function.description",
    ),
    (
        "description/not-string",
        tool(OBJ, description=5),
        {},
        "description_not_string",
        "function.description",
    ),
    ("parameters/absent", tool(None, strict=None), {}, None, ""),
    ("parameters/not-object", tool("string"), {}, "parameters_not_object", "function.parameters"),
    (
        "parameters/invalid-json-schema",
        tool({"type": "object", "properties": {"city": {"type": "text"}}}, strict=False),
        {},
        "parameters_invalid_schema",
        "function.parameters.properties.city.type",
    ),
    (
        "parameters/bad-regex",
        tool(
            {"type": "object", "properties": {"code": {"type": "string", "pattern": "("}}},
            strict=False,
        ),
        {},
        "parameters_uncompilable",
        "function.parameters.properties.code.pattern",
    ),
    (
        "parameters/unknown-dialect",
        tool({"$schema": "http://example.com/my-schema", "type": "object"}, strict=False),
        {},
        "parameters_unknown_dialect",
        "function.parameters.$schema",
    ),
    (
        "parameters/draft7-dialect",
        tool({"$schema": "http://json-schema.org/draft-07/schema#", **OBJ}),
        {},
        None,
        "",
    ),
    (
        "parameters/root-array",
        tool({"type": "array"}, strict=False),
        {},
        "parameters_root_not_object",
        "function.parameters.type",
    ),
    ("strict/not-boolean", tool(OBJ, strict="yes"), {}, "strict_not_boolean", "function.strict"),  # type: ignore[arg-type]
    # --- section 2: strict mode, structure ---------------------------------------------
    (
        "strict/off-allows-open-objects",
        tool({"type": "object", "properties": {"a": {}}}, strict=False),
        {},
        None,
        "",
    ),
    (
        "strict/root-anyOf",
        tool({"type": "object", "anyOf": [obj({"a": {"type": "string"}})]}),
        {},
        "strict_root_any_of",
        "function.parameters.anyOf",
    ),
    (
        "strict/root-additionalProperties-missing",
        tool({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}),
        {},
        "strict_additional_properties",
        "function.parameters.additionalProperties",
    ),
    (
        "strict/nested-object-closed",
        tool(obj({"loc": obj({"lat": {"type": "number"}})})),
        {},
        None,
        "",
    ),
    (
        "strict/nested-object-open",
        tool(
            obj(
                {
                    "loc": {
                        "type": "object",
                        "properties": {"lat": {"type": "number"}},
                        "required": ["lat"],
                    }
                }
            )
        ),
        {},
        "strict_additional_properties",
        "function.parameters.properties.loc.additionalProperties",
    ),
    (
        "strict/items-object-open",
        tool(obj({"rows": {"type": "array", "items": {"type": "object", "properties": {}}}})),
        {},
        "strict_additional_properties",
        "function.parameters.properties.rows.items.additionalProperties",
    ),
    (
        "strict/anyOf-branch-open",
        tool(obj({"v": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {}}]}})),
        {},
        "strict_additional_properties",
        "function.parameters.properties.v.anyOf[1].additionalProperties",
    ),
    (
        "strict/anyOf-branches-valid",
        tool(obj({"v": {"anyOf": [{"type": "string"}, obj()]}})),
        {},
        None,
        "",
    ),
    (
        "strict/defs-object-open",
        tool(
            {
                **obj({"loc": {"$ref": "#/$defs/Loc"}}),
                "$defs": {"Loc": {"type": "object", "properties": {}}},
            }
        ),
        {},
        "strict_additional_properties",
        "function.parameters.$defs.Loc.additionalProperties",
    ),
    (
        "strict/defs-and-ref",
        tool({**obj({"loc": {"$ref": "#/$defs/Loc"}}), "$defs": {"Loc": obj()}}),
        {},
        None,
        "",
    ),
    (
        "strict/recursive-root-ref",
        tool(obj({"children": {"type": "array", "items": {"$ref": "#"}}})),
        {},
        None,
        "",
    ),
    (
        "strict/ref-outside-schema",
        tool(obj({"loc": {"$ref": "#/$defs/Missing"}}), strict=True),
        {},
        "parameters_uncompilable",
        "function.parameters",
    ),
    (
        "strict/open-map",
        tool(obj({"tags": {"type": "object", "additionalProperties": {"type": "string"}}})),
        {},
        "strict_additional_properties",
        "function.parameters.properties.tags.additionalProperties",
    ),
    (
        "strict/all-required",
        tool(obj({"a": {"type": "string"}, "b": {"type": ["integer", "null"]}})),
        {},
        None,
        "",
    ),
    (
        "strict/optional-property",
        tool({**obj({"a": {"type": "string"}, "b": {"type": "integer"}}), "required": ["a"]}),
        {},
        "strict_property_not_required",
        "function.parameters.properties.b",
    ),
    (
        "strict/missing-type",
        tool(obj({"a": {"description": "anything"}})),
        {},
        "strict_missing_type",
        "function.parameters.properties.a",
    ),
    (
        "strict/boolean-schema",
        tool(obj({"a": True})),
        {},
        "strict_boolean_schema",
        "function.parameters.properties.a",
    ),
    (
        "strict/tuple-items",
        tool(obj({"a": {"type": "array", "items": [{"type": "string"}]}}), strict=True),
        {},
        "parameters_invalid_schema",
        "function.parameters.properties.a.items",
    ),
    # --- strict mode, keywords ---------------------------------------------------------
    (
        "strict/supported-constraints",
        tool(
            obj(
                {
                    "s": {"type": "string", "pattern": "^[a-z]+$", "format": "date-time"},
                    "n": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 9,
                        "exclusiveMinimum": -1,
                        "exclusiveMaximum": 10,
                        "multipleOf": 0.5,
                    },
                    "l": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": 3,
                    },
                    "k": {"const": "fixed"},
                }
            )
        ),
        {},
        None,
        "",
    ),
    *[
        (f"strict/format-{fmt}", tool(obj({"s": {"type": "string", "format": fmt}})), {}, None, "")
        for fmt in (
            "date-time",
            "time",
            "date",
            "duration",
            "email",
            "hostname",
            "ipv4",
            "ipv6",
            "uuid",
        )
    ],
    (
        "strict/format-uri",
        tool(obj({"s": {"type": "string", "format": "uri"}})),
        {},
        "strict_unsupported_format",
        "function.parameters.properties.s.format",
    ),
    (
        "strict/fine-tuned-minimum",
        tool(obj({"n": {"type": "integer", "minimum": 1}})),
        {"fine_tuned": True},
        "strict_fine_tuned_keyword",
        "function.parameters.properties.n.minimum",
    ),
    (
        "strict/fine-tuned-plain",
        tool(obj({"n": {"type": "integer"}})),
        {"fine_tuned": True},
        None,
        "",
    ),
    *[
        (
            f"strict/{kw}",
            tool(obj({"x": {"type": "string", kw: value}})),
            {},
            "strict_unsupported_keyword",
            f"function.parameters.properties.x.{kw}",
        )
        for kw, value in [
            ("allOf", [{"type": "string"}]),
            ("not", {"const": "a"}),
            ("if", {"const": "a"}),
            ("then", {"const": "a"}),
            ("else", {"const": "a"}),
            ("oneOf", [{"type": "string"}]),
            ("dependentRequired", {"a": ["b"]}),
            ("dependentSchemas", {"a": {"type": "object"}}),
            ("prefixItems", [{"type": "string"}]),
            ("patternProperties", {"^a": {"type": "string"}}),
            ("uniqueItems", True),
        ]
    ],
    # --- strict mode, size limits ------------------------------------------------------
    ("limit/5000-properties", tool(many_properties(5000)), {}, None, ""),
    (
        "limit/5001-properties",
        tool(many_properties(5001)),
        {},
        "strict_too_many_properties",
        "function.parameters",
    ),
    ("limit/depth-10", tool(nested_objects(10)), {}, None, ""),
    (
        "limit/depth-11",
        tool(nested_objects(11)),
        {},
        "strict_too_deep",
        "function.parameters" + ".properties.child" * 10,
    ),
    ("limit/arrays-count-9", tool(nested_arrays(4)), {}, None, ""),
    (
        "limit/arrays-count-11",
        tool(nested_arrays(5)),
        {},
        "strict_too_deep",
        "function.parameters" + ".properties.list.items" * 5,
    ),
    (
        "limit/120000-chars",
        tool(obj({"c": {"type": "string", "const": "x" * 119_999}})),
        {},
        None,
        "",
    ),
    (
        "limit/120001-chars",
        tool(obj({"c": {"type": "string", "const": "x" * 120_000}})),
        {},
        "strict_strings_too_long",
        "function.parameters",
    ),
    ("limit/1000-enum-values", tool(enums([250, 250, 250, 250])), {}, None, ""),
    (
        "limit/1001-enum-values",
        tool(enums([250, 250, 250, 250, 1])),
        {},
        "strict_too_many_enum_values",
        "function.parameters",
    ),
    ("limit/251-values-15000-chars", tool(string_enum(251, 15_000)), {}, None, ""),
    (
        "limit/251-values-15001-chars",
        tool(string_enum(251, 15_001)),
        {},
        "strict_large_enum_too_long",
        "function.parameters.properties.choice.enum",
    ),
    ("limit/250-values-30000-chars", tool(string_enum(250, 30_000)), {}, None, ""),
    (
        "limit/azure-5-levels",
        tool(nested_objects(6)),
        {"strict_limits": StrictLimits(max_depth=5)},
        "strict_too_deep",
        "function.parameters" + ".properties.child" * 5,
    ),
    # --- tamma-tools metadata ----------------------------------------------------------
    (
        "metadata/sane",
        {
            **tool(OBJ),
            "metadata": {
                "timeout_s": 2.5,
                "rate_limit": {"calls_per_minute": 5},
                "isolation": "process",
                "max_output_bytes": 0,
            },
        },
        {},
        None,
        "",
    ),
    (
        "metadata/timeout-zero",
        {**tool(OBJ), "metadata": {"timeout_s": 0}},
        {},
        "metadata_timeout_not_positive",
        "metadata.timeout_s",
    ),
    (
        "metadata/timeout-nan",
        {**tool(OBJ), "metadata": {"timeout_s": float("nan")}},
        {},
        "metadata_timeout_not_positive",
        "metadata.timeout_s",
    ),
    (
        "metadata/rate-limit-zero",
        {**tool(OBJ), "metadata": {"rate_limit": {"calls_per_hour": 0}}},
        {},
        "metadata_rate_limit_not_positive",
        "metadata.rate_limit.calls_per_hour",
    ),
    (
        "metadata/isolation-unknown",
        {**tool(OBJ), "metadata": {"isolation": "docker"}},
        {},
        "metadata_unknown_isolation",
        "metadata.isolation",
    ),
    (
        "metadata/max-output-negative",
        {**tool(OBJ), "metadata": {"max_output_bytes": -1}},
        {},
        "metadata_negative_max_output_bytes",
        "metadata.max_output_bytes",
    ),
    (
        "metadata/empty-permission",
        {**tool(OBJ), "metadata": {"permissions": ["files.read", " "]}},
        {},
        "metadata_empty_permission",
        "metadata.permissions[1]",
    ),
    (
        "metadata/unknown-key",
        {**tool(OBJ), "metadata": {"colour": "red"}},
        {},
        "metadata_invalid",
        "metadata.colour",
    ),
]


@pytest.mark.parametrize(
    ("defn", "options", "code", "path"),
    [pytest.param(d, o, c, p, id=i) for i, d, o, c, p in RULES],
)
def test_rule(defn: Any, options: dict[str, Any], code: str | None, path: str) -> None:
    result = validate_tool_definition(defn, **options)
    if code is None:
        assert result.valid, result.summary()
        assert not result.errors
        return
    assert not result.valid
    found = [(e.code, e.path) for e in result.errors]
    assert (code, path) in found, found
    for issue in result.errors:
        assert issue.message and not issue.message.startswith(" ")


def test_every_rule_has_a_passing_and_a_failing_case() -> None:
    families: dict[str, set[bool]] = {}
    for rule_id, _, _, code, _ in RULES:
        families.setdefault(rule_id.split("/")[0], set()).add(code is None)
    assert all(v == {True, False} for v in families.values()), families


def test_long_description_is_a_warning_by_default() -> None:
    # Decision: the API has answered 400 over 1024 chars, but the limit was lifted for some models.
    result = validate_tool_definition(tool(OBJ, description="d" * 1025))
    assert result.valid
    assert [(w.code, w.path) for w in result.warnings] == [
        ("description_too_long", "function.description")
    ]
    assert "1025 characters" in result.warnings[0].message


def test_default_under_strict_is_a_warning() -> None:
    # Recorded requests (openai-recorded/*/parse_pydantic_tool) sent default under strict and were
    # accepted; other reports show it rejected.
    schema = obj({"units": {"type": "string", "enum": ["c", "f"], "default": "c"}})
    result = validate_tool_definition(tool(schema))
    assert result.valid
    assert [(w.code, w.path) for w in result.warnings] == [
        ("strict_default", "function.parameters.properties.units.default")
    ]


def test_strict_false_skips_the_subset_but_not_the_json_schema_rules() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "format": "uri"}},
        "allOf": [{}],
    }
    assert validate_tool_definition(tool(schema, strict=False)).valid
    assert not validate_tool_definition(tool(schema, strict=True)).valid


def test_all_errors_are_reported_not_only_the_first() -> None:
    defn = {
        "type": "function",
        "function": {
            "name": "bad name",
            "parameters": {"type": "object", "properties": {"a": {"type": "string"}, "b": {}}},
            "strict": True,
        },
        "metadata": {"timeout_s": -1, "isolation": "vm"},
    }
    codes = {e.code for e in validate_tool_definition(defn).errors}
    assert {
        "name_invalid",
        "strict_additional_properties",
        "strict_property_not_required",
        "strict_missing_type",
        "metadata_timeout_not_positive",
        "metadata_unknown_isolation",
    } <= codes


def test_unknown_function_field_is_a_warning() -> None:
    result = validate_tool_definition(tool(OBJ, returns={"type": "string"}))
    assert result.valid
    assert [w.code for w in result.warnings] == ["unknown_function_field"]


def test_accepts_a_tool_definition_object() -> None:
    defn = ToolDefinition.model_validate({**tool(OBJ), "metadata": {"timeout_s": 1}})
    assert validate_tool_definition(defn).valid
    defn.metadata = ToolMetadata(timeout_s=-3)
    result = validate_tool_definition(defn)
    assert [(e.code, e.path) for e in result.errors] == [
        ("metadata_timeout_not_positive", "metadata.timeout_s")
    ]


def test_odd_property_names_get_quoted_paths() -> None:
    schema = {"type": "object", "properties": {"a.b": {"type": "objekt"}}}
    result = validate_tool_definition(tool(schema, strict=False))
    assert [e.path for e in result.errors] == ['function.parameters.properties["a.b"].type']


# --- tool lists ---------------------------------------------------------------------------


def test_list_of_128_passes_and_129_fails() -> None:
    tools = [tool(OBJ, name=f"t{i}") for i in range(129)]
    ok = validate_tool_list(tools[:128])
    assert ok.valid and [w.code for w in ok.warnings] == ["many_tools"]
    bad = validate_tool_list(tools)
    assert [(e.code, e.path) for e in bad.errors] == [("too_many_tools", "tools")]
    assert "at most 128" in bad.errors[0].message


def test_list_duplicate_names_and_per_tool_paths() -> None:
    tools = [tool(OBJ, name="a"), tool(OBJ, name="b"), tool({"type": "array"}, name="a")]
    result = validate_tool_list(tools)
    found = [(e.code, e.path) for e in result.errors]
    assert ("duplicate_tool_name", "tools[2].function.name") in found
    assert ("parameters_root_not_object", "tools[2].function.parameters.type") in found
    dup = next(e for e in result.errors if e.code == "duplicate_tool_name")
    assert "tools[0]" in dup.message


def test_list_must_be_a_list() -> None:
    result = validate_tool_list({"a": 1})  # type: ignore[arg-type]
    assert [e.code for e in result.errors] == ["tools_not_array"]


# --- assert_valid_definition --------------------------------------------------------------


def test_assert_valid_definition_returns_the_model() -> None:
    defn = assert_valid_definition({**tool(OBJ), "metadata": {"category": "weather"}})
    assert isinstance(defn, ToolDefinition)
    assert defn.metadata.category == "weather"


def test_assert_valid_definition_raises_with_every_issue() -> None:
    with pytest.raises(ToolDefinitionError) as info:
        assert_valid_definition(tool({"type": "array"}, name="bad name"))
    assert info.value.code == "invalid_definition"
    assert {i.code for i in info.value.issues} == {"name_invalid", "parameters_root_not_object"}
    assert "'bad name'" in info.value.message


# --- properties ---------------------------------------------------------------------------


@given(st.text(max_size=80))
def test_name_rule_matches_openais_regex(name: str) -> None:
    result = validate_tool_definition(tool(OBJ, name=name))
    name_errors = [e for e in result.errors if e.path == "function.name"]
    assert (not name_errors) == bool(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name))


@given(
    st.recursive(
        st.just({"type": "string"}) | st.just({"type": "integer"}),
        lambda inner: (
            st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), inner, max_size=3).map(
                obj
            )
            | inner.map(lambda s: {"type": "array", "items": s})
        ),
        max_leaves=8,
    )
)
def test_generated_strict_schemas_pass_when_well_formed(schema: dict[str, Any]) -> None:
    root = schema if schema.get("type") == "object" else obj({"v": schema})
    result = validate_tool_definition(tool(root))
    assert result.valid, result.summary()


_any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "function", "name", "parameters", "strict", "metadata", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(_any_json)
def test_any_input_gets_a_result_never_an_exception(value: Any) -> None:
    result = validate_tool_definition(value)
    assert result.valid is (not result.errors)
    listed = validate_tool_list([value, value])
    assert listed.valid is (not listed.errors)
