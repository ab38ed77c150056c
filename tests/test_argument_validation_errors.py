"""What the model is told when its arguments break the schema: every violation, a path it can
find (``$``, ``city``, ``items[0].name``), a stable code, the allowed values or expected type,
and never a megabyte of its own output quoted back."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tamma_tools.errors import ToolDefinitionError
from tamma_tools.schema.validator import (
    ArgumentsValidator,
    compile_validator,
    format_instance_path,
)

FORECAST = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Oslo", "Lima", "Pune"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "fields": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "location": {
            "type": "object",
            "properties": {"lat": {"type": "string"}, "lon": {"type": "string"}},
            "required": ["lat", "lon"],
            "additionalProperties": False,
        },
        "code": {"type": "string", "pattern": "^[A-Z]{3}$", "maxLength": 3},
        "mode": {"const": "fast"},
        "value": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
            "minItems": 1,
            "uniqueItems": True,
        },
        "ratio": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}

# (id, arguments, [(path, code, words the message must contain)])
CASES: list[tuple[str, Any, list[tuple[str, str, list[str]]]]] = [
    ("valid", {"city": "Oslo", "days": 3}, []),
    (
        "missing-required",
        {"city": "Oslo"},
        [("$", "required", ['missing required property "days"'])],
    ),
    (
        "enum-lists-allowed-values",
        {"city": "Paris", "days": 3},
        [("city", "enum", ['"Paris" is not one of the allowed values: "Oslo", "Lima", "Pune"'])],
    ),
    (
        "type-names-expected-and-got",
        {"city": "Oslo", "days": "3"},
        [("days", "type", ['expected integer, got string "3"'])],
    ),
    (
        "boolean-is-not-coerced",
        {"city": "Oslo", "days": True},
        [("days", "type", ["expected integer, got boolean true"])],
    ),
    (
        "minimum",
        {"city": "Oslo", "days": 0},
        [("days", "minimum", ["0 is less than the minimum 1"])],
    ),
    (
        "maximum",
        {"city": "Oslo", "days": 15},
        [("days", "maximum", ["15 is greater than the maximum 14"])],
    ),
    (
        "additional-property-lists-allowed",
        {"city": "Oslo", "days": 3, "country": "NO"},
        [
            (
                "$",
                "additional_properties",
                [
                    'unexpected property "country"',
                    "allowed properties are:",
                    '"city"',
                    '"days"',
                    '"location"',
                ],
            )
        ],
    ),
    (
        "nested-additional-property-lists-nested-allowed",
        {"city": "Oslo", "days": 3, "location": {"lat": "1", "lon": "2", "alt": "3"}},
        [
            (
                "location",
                "additional_properties",
                ['unexpected property "alt"', 'allowed properties are: "lat", "lon"'],
            )
        ],
    ),
    (
        "nested-required",
        {"city": "Oslo", "days": 3, "location": {"lat": "1"}},
        [("location", "required", ['missing required property "lon"'])],
    ),
    (
        "array-item-path",
        {"city": "Oslo", "days": 3, "items": [{"name": "a"}, {"name": 5}]},
        [("items[1].name", "type", ["expected string, got integer 5"])],
    ),
    (
        "max-items",
        {"city": "Oslo", "days": 3, "fields": ["a", "b", "c", "d"]},
        [("fields", "max_items", ["array has 4 items; at most 3 items allowed"])],
    ),
    (
        "min-items",
        {"city": "Oslo", "days": 3, "items": []},
        [("items", "min_items", ["at least 1 item required"])],
    ),
    (
        "unique-items",
        {"city": "Oslo", "days": 3, "items": [{"name": "a"}, {"name": "a"}]},
        [("items", "unique_items", ["must be unique"])],
    ),
    (
        "pattern",
        {"city": "Oslo", "days": 3, "code": "ab"},
        [("code", "pattern", ['"ab" does not match the pattern "^[A-Z]{3}$"'])],
    ),
    (
        "const",
        {"city": "Oslo", "days": 3, "mode": "slow"},
        [("mode", "constant", ['must be exactly "fast", got "slow"'])],
    ),
    (
        "anyOf-names-alternatives",
        {"city": "Oslo", "days": 3, "value": [1]},
        [
            (
                "value",
                "any_of",
                ["does not match any of the allowed alternatives", "expected string; integer"],
            )
        ],
    ),
    (
        "exclusive-minimum",
        {"city": "Oslo", "days": 3, "ratio": 0},
        [("ratio", "exclusive_minimum", ["0 must be greater than 0"])],
    ),
    (
        "multiple-of",
        {"city": "Oslo", "days": 3, "ratio": 0.7},
        [("ratio", "multiple_of", ["0.7 is not a multiple of 0.5"])],
    ),
    (
        "every-violation-reported",
        {"city": "Paris", "days": 99, "extra": 1},
        [
            ("city", "enum", ["allowed values"]),
            ("days", "maximum", ["maximum 14"]),
            ("$", "additional_properties", ['"extra"']),
        ],
    ),
    ("root-type", ["Oslo"], [("$", "type", ['expected object, got array ["Oslo"]'])]),
]


@pytest.fixture(scope="module")
def validator() -> ArgumentsValidator:
    return compile_validator(FORECAST)


@pytest.mark.parametrize(("arguments", "expected"), [pytest.param(a, e, id=i) for i, a, e in CASES])
def test_messages(
    validator: ArgumentsValidator, arguments: Any, expected: list[tuple[str, str, list[str]]]
) -> None:
    issues = validator.errors(arguments)
    assert validator.is_valid(arguments) is (not expected)
    assert sorted((i.path, i.code) for i in issues) == sorted((p, c) for p, c, _ in expected)
    for path, code, words in expected:
        (issue,) = [i for i in issues if (i.path, i.code) == (path, code)]
        for word in words:
            assert word in issue.message, issue.message


def test_huge_values_are_never_echoed(validator: ArgumentsValidator) -> None:
    huge = "x" * 5_000_000
    issues = validator.errors({"city": huge, "days": 3, "code": huge, huge: 1})
    assert {i.code for i in issues} == {"enum", "pattern", "max_length", "additional_properties"}
    for issue in issues:
        assert len(issue.message) < 600, (issue.code, len(issue.message))
        assert "(5000002 chars)" in issue.message or "(5000000 chars)" in issue.message


def test_huge_nested_value_is_cut(validator: ArgumentsValidator) -> None:
    issues = validator.errors({"city": "Oslo", "days": [list(range(100_000))]})
    (issue,) = issues
    assert issue.code == "type" and len(issue.message) < 300 and "chars)" in issue.message


def test_long_enum_lists_are_capped() -> None:
    validator = ArgumentsValidator({"enum": [f"v{i}" for i in range(1000)]})
    (issue,) = validator.errors("nope")
    assert '"v0", "v1"' in issue.message and "... and 980 more" in issue.message
    assert len(issue.message) < 600


def test_many_violations_are_capped_with_a_note() -> None:
    validator = ArgumentsValidator({"type": "array", "items": {"type": "integer"}}, max_errors=10)
    issues = validator.errors(["a"] * 10_000)
    assert len(issues) == 11
    assert [i.path for i in issues[:3]] == ["[0]", "[1]", "[2]"]
    assert issues[-1].code == "too_many_errors" and "more than 10 violations" in issues[-1].message


def test_schema_order_is_irrelevant_to_sharing() -> None:
    a = compile_validator(
        {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    )
    b = compile_validator(
        {"properties": {"b": {"type": "integer"}, "a": {"type": "string"}}, "type": "object"}
    )
    assert a is b


def test_no_parameters_accepts_any_object() -> None:
    validator = compile_validator(None)
    assert validator.is_valid({}) and validator.is_valid({"anything": 1})


def test_formats_are_annotations_unless_asserted() -> None:
    schema = {"type": "string", "format": "date"}
    assert compile_validator(schema).is_valid("tomorrow")
    strict = compile_validator(schema, assert_formats=True)
    (issue,) = strict.errors("tomorrow")
    assert (issue.code, issue.message) == ("format", "\"tomorrow\" is not a valid 'date'")


def test_remote_refs_are_never_fetched() -> None:
    # Regression guard: jsonschema-rs fetches http(s) $refs by default; a tool schema must not
    # make the process send requests at registration.
    with pytest.raises(ToolDefinitionError) as info:
        ArgumentsValidator({"$ref": "http://169.254.169.254/latest/meta-data"})
    assert info.value.code == "invalid_parameters_schema"
    assert "Retrieval is disabled" in info.value.message


@pytest.mark.parametrize(
    "schema", [{"type": "objekt"}, {"type": "string", "pattern": "("}, {"$ref": "#/$defs/none"}]
)
def test_bad_schema_is_a_typed_error(schema: dict[str, Any]) -> None:
    with pytest.raises(ToolDefinitionError) as info:
        compile_validator(schema)
    assert info.value.code == "invalid_parameters_schema"


def test_non_json_schema_is_a_typed_error() -> None:
    with pytest.raises(ToolDefinitionError):
        compile_validator({"type": "object", "properties": {"a": {"enum": {1, 2}}}})


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        ([], "$"),
        (["city"], "city"),
        (["items", 0, "name"], "items[0].name"),
        ([2], "[2]"),
        (["a", 1, 2], "a[1][2]"),
    ],
)
def test_format_instance_path(parts: list[str | int], text: str) -> None:
    assert format_instance_path(parts) == text


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=200), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_any_json_gets_consistent_bounded_errors(value: Any) -> None:
    validator = compile_validator(FORECAST)
    issues = validator.errors(value)
    assert (not issues) == validator.is_valid(value)
    for issue in issues:
        assert issue.code and issue.path
        assert len(issue.message) <= 1200
