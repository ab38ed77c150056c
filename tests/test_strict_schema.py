"""``to_strict_schema``: the strict subset where meaning is kept, and an exact report of the rest."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tamma_tools.schema.strict import StrictReport, check_strict_schema, to_strict_schema
from tamma_tools.schema.validator import compile_validator

CLOSED = {"additionalProperties": False}

# (id, input, expected output, [(change code, path)], [(unconvertible code, path)])
CASES: list[tuple[str, Any, Any, list[tuple[str, str]], list[tuple[str, str]]]] = [
    (
        "already-strict",
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], **CLOSED},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], **CLOSED},
        [],
        [],
    ),
    (
        "closes-objects",
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], **CLOSED},
        [("added_additional_properties_false", "additionalProperties")],
        [],
    ),
    (
        "additionalProperties-true-closed",
        {"type": "object", "properties": {}, "additionalProperties": True},
        {"type": "object", "properties": {}, "additionalProperties": False, "required": []},
        [("added_additional_properties_false", "additionalProperties")],
        [],
    ),
    (
        "optional-becomes-required-nullable",
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
            **CLOSED,
        },
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
            "required": ["city", "days"],
            **CLOSED,
        },
        [("made_required_nullable", "properties.days")],
        [],
    ),
    (
        "optional-enum-gets-null-value",
        {"type": "object", "properties": {"u": {"type": "string", "enum": ["c", "f"]}}, **CLOSED},
        {
            "type": "object",
            "properties": {"u": {"type": ["string", "null"], "enum": ["c", "f", None]}},
            "required": ["u"],
            **CLOSED,
        },
        [("made_required_nullable", "properties.u")],
        [],
    ),
    (
        "optional-anyOf-gets-null-branch",
        {
            "type": "object",
            "properties": {"v": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            **CLOSED,
        },
        {
            "type": "object",
            "properties": {
                "v": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}
            },
            "required": ["v"],
            **CLOSED,
        },
        [("made_required_nullable", "properties.v")],
        [],
    ),
    (
        "optional-ref-wrapped-with-description-outside",
        {
            "type": "object",
            "properties": {"loc": {"$ref": "#/$defs/Loc", "description": "where"}},
            "$defs": {
                "Loc": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}},
                    "required": ["lat"],
                    **CLOSED,
                }
            },
            **CLOSED,
        },
        {
            "type": "object",
            "properties": {
                "loc": {
                    "description": "where",
                    "anyOf": [{"$ref": "#/$defs/Loc"}, {"type": "null"}],
                }
            },
            "$defs": {
                "Loc": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}},
                    "required": ["lat"],
                    **CLOSED,
                }
            },
            **CLOSED,
            "required": ["loc"],
        },
        [("made_required_nullable", "properties.loc")],
        [],
    ),
    (
        "drops-default",
        {
            "type": "object",
            "properties": {"u": {"type": "string", "default": "c"}},
            "required": ["u"],
            **CLOSED,
        },
        {"type": "object", "properties": {"u": {"type": "string"}}, "required": ["u"], **CLOSED},
        [("dropped_default", "properties.u.default")],
        [],
    ),
    (
        "inlines-required-ref-with-siblings",
        {
            "type": "object",
            "properties": {"u": {"$ref": "#/$defs/Units", "description": "units"}},
            "required": ["u"],
            "$defs": {"Units": {"type": "string", "enum": ["c", "f"]}},
            **CLOSED,
        },
        {
            "type": "object",
            "properties": {"u": {"type": "string", "enum": ["c", "f"], "description": "units"}},
            "required": ["u"],
            "$defs": {"Units": {"type": "string", "enum": ["c", "f"]}},
            **CLOSED,
        },
        [("inlined_ref", "properties.u")],
        [],
    ),
    (
        "merges-single-allOf",
        {
            "type": "object",
            "properties": {"u": {"allOf": [{"$ref": "#/$defs/U"}], "description": "d"}},
            "required": ["u"],
            "$defs": {"U": {"type": "string"}},
            **CLOSED,
        },
        {
            "type": "object",
            "properties": {"u": {"description": "d", "type": "string"}},
            "required": ["u"],
            "$defs": {"U": {"type": "string"}},
            **CLOSED,
        },
        [("merged_single_all_of", "properties.u")],
        [],
    ),
    (
        "nested-in-items-anyOf-and-defs",
        {
            "type": "object",
            "properties": {
                "rows": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"n": {"type": "integer"}}},
                },
                "v": {"anyOf": [{"type": "object", "properties": {}}, {"type": "null"}]},
            },
            "required": ["rows", "v"],
            "$defs": {"D": {"type": "object", "properties": {}}},
        },
        {
            "type": "object",
            "properties": {
                "rows": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"n": {"type": ["integer", "null"]}},
                        **CLOSED,
                        "required": ["n"],
                    },
                },
                "v": {
                    "anyOf": [
                        {"type": "object", "properties": {}, **CLOSED, "required": []},
                        {"type": "null"},
                    ]
                },
            },
            "required": ["rows", "v"],
            "$defs": {"D": {"type": "object", "properties": {}, **CLOSED, "required": []}},
            **CLOSED,
        },
        [
            ("added_additional_properties_false", "additionalProperties"),
            ("added_additional_properties_false", "properties.rows.items.additionalProperties"),
            ("made_required_nullable", "properties.rows.items.properties.n"),
            ("added_additional_properties_false", "properties.v.anyOf[0].additionalProperties"),
            ("added_additional_properties_false", "$defs.D.additionalProperties"),
        ],
        [],
    ),
    # --- what cannot be converted without changing meaning ---------------------------------
    (
        "allOf-two-branches",
        {
            "type": "object",
            "properties": {"x": {"allOf": [{"type": "string"}, {"minLength": 2}]}},
            "required": ["x"],
            **CLOSED,
        },
        None,
        [],
        [("strict_unsupported_keyword", "properties.x.allOf")],
    ),
    (
        "patternProperties",
        {
            "type": "object",
            "properties": {},
            "patternProperties": {"^x-": {"type": "string"}},
            "required": [],
            **CLOSED,
        },
        None,
        [],
        [("strict_unsupported_keyword", "patternProperties")],
    ),
    (
        "open-map",
        {
            "type": "object",
            "properties": {"tags": {"type": "object", "additionalProperties": {"type": "string"}}},
            "required": ["tags"],
            **CLOSED,
        },
        None,
        [],
        [("strict_additional_properties", "properties.tags.additionalProperties")],
    ),
    (
        "oneOf-in-optional-property-reported-at-input-path",
        {
            "type": "object",
            "properties": {"o": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
            **CLOSED,
        },
        None,
        [("made_required_nullable", "properties.o")],
        [("strict_unsupported_keyword", "properties.o.oneOf")],
    ),
    (
        "format-outside-list",
        {
            "type": "object",
            "properties": {"u": {"type": "string", "format": "uri"}},
            "required": ["u"],
            **CLOSED,
        },
        None,
        [],
        [("strict_unsupported_format", "properties.u.format")],
    ),
    (
        "root-anyOf",
        {"anyOf": [{"type": "object", "properties": {}, **CLOSED}]},
        None,
        [],
        [("strict_root_any_of", "anyOf"), ("strict_root_not_object", "type")],
    ),
    (
        "remote-ref",
        {
            "type": "object",
            "properties": {"a": {"$ref": "https://example.com/a.json"}},
            "required": ["a"],
            **CLOSED,
        },
        None,
        [],
        [("strict_unresolvable_ref", "properties.a.$ref")],
    ),
    (
        "untyped-property",
        {
            "type": "object",
            "properties": {"a": {"description": "anything"}},
            "required": ["a"],
            **CLOSED,
        },
        None,
        [],
        [("strict_missing_type", "properties.a")],
    ),
    (
        "too-many-enum-values",
        {
            "type": "object",
            "properties": {"e": {"type": "integer", "enum": list(range(1001))}},
            "required": ["e"],
            **CLOSED,
        },
        None,
        [],
        [("strict_too_many_enum_values", "")],
    ),
]


@pytest.mark.parametrize(
    ("schema", "expected", "changes", "unconvertible"),
    [pytest.param(s, e, c, u, id=i) for i, s, e, c, u in CASES],
)
def test_to_strict_schema(
    schema: Any,
    expected: Any,
    changes: list[tuple[str, str]],
    unconvertible: list[tuple[str, str]],
) -> None:
    before = copy.deepcopy(schema)
    out, report = to_strict_schema(schema)
    assert schema == before, "the input must not be mutated"
    assert isinstance(report, StrictReport)
    assert sorted((c.code, c.path) for c in report.changes) == sorted(changes)
    assert sorted((u.code, u.path) for u in report.unconvertible) == sorted(unconvertible)
    assert report.converted is (not unconvertible)
    if expected is not None:
        assert out == expected
    if report.converted:
        assert check_strict_schema(out).valid
        again, second = to_strict_schema(out)
        assert again == out and not second.changes, "conversion is idempotent"
    for issue in [*report.changes, *report.unconvertible]:
        assert issue.message


def test_unconvertible_messages_say_why() -> None:
    _, report = to_strict_schema(CASES[13][1])  # the open map
    (issue,) = report.unconvertible
    assert "open map" in issue.message and "would reject keys" in issue.message


def test_nullable_conversion_keeps_what_the_tool_accepts() -> None:
    """Arguments valid before stay valid once absent optional fields are sent as null."""
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "minimum": 1, "default": 3},
            "units": {"type": "string", "enum": ["c", "f"]},
            "loc": {"$ref": "#/$defs/Loc"},
        },
        "required": ["city"],
        "$defs": {
            "Loc": {
                "type": "object",
                "properties": {"lat": {"type": "number"}},
                "required": ["lat"],
            }
        },
    }
    out, report = to_strict_schema(schema)
    assert report.converted
    before, after = compile_validator(schema), compile_validator(out)
    for args in ({"city": "Oslo"}, {"city": "Oslo", "days": 2, "units": "f", "loc": {"lat": 1.5}}):
        assert before.is_valid(args)
        filled = {k: args.get(k) for k in out["properties"]}
        assert after.is_valid(filled)
    assert not after.is_valid({"city": "Oslo", "days": 0, "units": None, "loc": None})
    assert not after.is_valid({"city": "Oslo", "days": None, "units": "k", "loc": None})
    assert not after.is_valid({"city": "Oslo", "days": None, "units": None, "loc": None, "x": 1})


def test_non_schema_input_is_reported_not_raised() -> None:
    out, report = to_strict_schema(["not", "a", "schema"])
    assert out == ["not", "a", "schema"]
    assert not report.converted
    assert [(u.code, u.path) for u in report.unconvertible] == [("strict_not_a_schema", "")]


def test_deeply_nested_input_does_not_crash() -> None:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(3000):
        node = {"type": "object", "properties": {"c": node}}
    _, report = to_strict_schema(node)
    assert not report.converted
    assert {u.code for u in report.unconvertible} & {"strict_too_complex", "strict_too_deep"}


_leaf = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer", "minimum": 0},
        {"type": "string", "enum": ["a", "b"]},
        {"type": "boolean", "default": True},
        {"type": "number", "description": "n"},
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"$ref": "#/$defs/Leaf"},
        {"$ref": "#/$defs/Leaf", "description": "with sibling"},
    ]
)


def _object(children: dict[str, Any], required: list[bool], closed: bool | None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "properties": children}
    node["required"] = [k for k, r in zip(children, required, strict=False) if r]
    if closed is not None:  # None leaves it out; False writes the open form (true)
        node["additionalProperties"] = not closed
    return node


_schemas = st.recursive(
    _leaf,
    lambda inner: (
        st.builds(
            _object,
            st.dictionaries(st.from_regex(r"[a-z]{1,4}", fullmatch=True), inner, max_size=4),
            st.lists(st.booleans(), min_size=4, max_size=4),
            st.sampled_from([None, True, False]),
        )
        | inner.map(lambda s: {"type": "array", "items": s})
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(_schemas)
def test_converted_output_is_always_strict_valid(schema: Any) -> None:
    root = {"type": "object", "properties": {"v": schema}, "$defs": {"Leaf": {"type": "string"}}}
    before = copy.deepcopy(root)
    out, report = to_strict_schema(root)
    assert root == before
    assert report.converted, [str(u) for u in report.unconvertible]
    assert check_strict_schema(out).valid
    compile_validator(out)


_keys = st.sampled_from(
    [
        *("type", "properties", "required", "additionalProperties", "items", "anyOf", "$ref"),
        *("$defs", "enum", "const", "default", "allOf", "format", "oneOf", "minimum"),
    ]
)
_garbage = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.sampled_from(["object", "array", "string", "#", "#/$defs/a", "#/properties", ""]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(_keys | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(_garbage)
def test_any_input_is_reported_never_raised(schema: Any) -> None:
    """Hostile or broken schemas (regression: ``{"type": {}}`` raised TypeError) give a report."""
    result = check_strict_schema(schema)
    assert result.valid is (not result.errors)
    out, report = to_strict_schema(schema)
    assert report.converted is (not report.unconvertible)
    if report.converted:
        assert check_strict_schema(out).valid
