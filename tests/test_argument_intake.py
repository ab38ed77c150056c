"""Argument intake: what a tool receives for each ``arguments`` string a model really sends.

Each row of ``CASES`` is one malformed (or borderline) string with its outcome in both repair
modes; the property tests cover arbitrary text and arbitrary JSON.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tamma_tools.errors import (
    ArgumentError,
    ArgumentsTooDeep,
    ArgumentsTooLarge,
    InvalidArgumentsJSON,
)
from tamma_tools.manager.arguments import (
    BOM,
    CODE_FENCE,
    REPAIR_NAMES,
    ParsedArguments,
    parse_arguments,
)


@dataclass(frozen=True)
class Ok:
    value: dict[str, Any]
    repairs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Err:
    error: type[ArgumentError]
    says: str
    """A fragment of the message the model must see."""


NOT_OBJ = InvalidArgumentsJSON
DUP = "more than once"
CUT = "look cut off"
NAN = "NaN and Infinity are not JSON numbers"
GUESS = "cannot be repaired without guessing"

# (id, raw arguments, outcome with repair="off", outcome with repair="safe")
CASES: list[tuple[str, str, Ok | Err, Ok | Err]] = [
    ("plain", '{"city": "Paris"}', Ok({"city": "Paris"}), Ok({"city": "Paris"})),
    ("empty", "", Ok({}), Ok({})),
    ("whitespace", "  \n\t", Ok({}), Ok({})),
    ("empty object", "{}", Ok({}), Ok({})),
    ("padded", '  {"a": 1}  \n', Ok({"a": 1}), Ok({"a": 1})),
    ("null", "null", Err(NOT_OBJ, "got null"), Err(NOT_OBJ, "got null")),
    ("array", "[1, 2]", Err(NOT_OBJ, "got an array"), Err(NOT_OBJ, "got an array")),
    ("array of objects", '[{"a": 1}]', Err(NOT_OBJ, "got an array"), Err(NOT_OBJ, "array")),
    ("number", "42", Err(NOT_OBJ, "got a number"), Err(NOT_OBJ, "got a number")),
    ("boolean", "true", Err(NOT_OBJ, "got a boolean"), Err(NOT_OBJ, "got a boolean")),
    ("string", '"Paris"', Err(NOT_OBJ, "got a string"), Err(NOT_OBJ, "got a string")),
    (
        "double-encoded",
        json.dumps(json.dumps({"city": "Paris"})),
        Err(NOT_OBJ, "encoded a second time"),
        Ok({"city": "Paris"}, ("double_encoded",)),
    ),
    (
        "double-encoded array",
        json.dumps("[1, 2]"),
        Err(NOT_OBJ, "got a string"),
        Err(NOT_OBJ, "got a string"),
    ),
    (
        "double-encoded with duplicate key",
        json.dumps('{"path": "a", "path": "/etc/passwd"}'),
        Err(NOT_OBJ, "'path' more than once"),
        Err(NOT_OBJ, "'path' more than once"),
    ),
    (
        "duplicate key",
        '{"path":"notes.txt","path":"/etc/passwd"}',
        Err(NOT_OBJ, "'path' more than once"),
        Err(NOT_OBJ, "'path' more than once"),
    ),
    (
        "duplicate key, same value",
        '{"a": 1, "a": 1}',
        Err(NOT_OBJ, "'a' more than once"),
        Err(NOT_OBJ, "'a' more than once"),
    ),
    (
        "nested duplicate key",
        '{"opts": {"mode": "r", "mode": "w"}}',
        Err(NOT_OBJ, "'mode' more than once"),
        Err(NOT_OBJ, "'mode' more than once"),
    ),
    (
        "duplicate key in an array element",
        '{"items": [{"id": 1}, {"id": 2, "id": 3}]}',
        Err(NOT_OBJ, "'id' more than once"),
        Err(NOT_OBJ, "'id' more than once"),
    ),
    (
        "duplicate key hidden by a colon in a value",
        '{"url": "http://a:80", "u": 1, "u": 2}',
        Err(NOT_OBJ, "'u' more than once"),
        Err(NOT_OBJ, "'u' more than once"),
    ),
    (
        "duplicate key spelled two ways",
        '{"a": 1, "\\u0061": 2}',
        Err(NOT_OBJ, "'a' more than once"),
        Err(NOT_OBJ, "'a' more than once"),
    ),
    (
        "same key in different objects",
        '{"a": {"id": 1}, "b": {"id": 2}, "id": 3}',
        Ok({"a": {"id": 1}, "b": {"id": 2}, "id": 3}),
        Ok({"a": {"id": 1}, "b": {"id": 2}, "id": 3}),
    ),
    (
        "colons inside strings",
        '{"url": "https://x.org:8443/a?b=c:d", "at": "12:30:00", "k\\":": "v"}',
        Ok({"url": "https://x.org:8443/a?b=c:d", "at": "12:30:00", 'k":': "v"}),
        Ok({"url": "https://x.org:8443/a?b=c:d", "at": "12:30:00", 'k":': "v"}),
    ),
    (
        "duplicate single-quoted key",
        "{'path': 'a', 'path': 'b'}",
        Err(NOT_OBJ, "'path' more than once"),
        Err(NOT_OBJ, "'path' more than once"),
    ),
    ("NaN", '{"a": NaN}', Err(NOT_OBJ, NAN), Err(NOT_OBJ, NAN)),
    ("Infinity", '{"a": Infinity}', Err(NOT_OBJ, NAN), Err(NOT_OBJ, NAN)),
    ("-Infinity", '{"a": -Infinity}', Err(NOT_OBJ, NAN), Err(NOT_OBJ, NAN)),
    ("number overflow", '{"a": 1e999}', Err(NOT_OBJ, "line 1"), Err(NOT_OBJ, "not valid JSON")),
    ("hex number", '{"a": 0x1F}', Err(NOT_OBJ, "'0x1F'"), Err(NOT_OBJ, "'0x1F'")),
    ("leading zero", '{"a": 007}', Err(NOT_OBJ, "'007'"), Err(NOT_OBJ, "'007'")),
    ("plus sign", '{"a": +1}', Err(NOT_OBJ, "'+1'"), Err(NOT_OBJ, "'+1'")),
    (
        "lone high surrogate escape",
        '{"s": "\\ud800"}',
        Err(NOT_OBJ, "lone surrogate"),
        Err(NOT_OBJ, "lone surrogate"),
    ),
    (
        "lone low surrogate escape",
        '{"s": "x\\udc00"}',
        Err(NOT_OBJ, "lone surrogate"),
        Err(NOT_OBJ, "lone surrogate"),
    ),
    (
        "surrogate pair escape",
        '{"s": "\\ud83d\\ude00"}',
        Ok({"s": "\N{GRINNING FACE}"}),
        Ok({"s": "\N{GRINNING FACE}"}),
    ),
    (
        "lone surrogate code point",
        '{"s": "\ud800"}',
        Err(NOT_OBJ, "not valid JSON"),
        Err(NOT_OBJ, "not valid JSON"),
    ),
    ("escaped NUL", '{"s": "a\\u0000b"}', Ok({"s": "a\x00b"}), Ok({"s": "a\x00b"})),
    (
        "raw newline in a string",
        '{"code": "def f():\n    return 1"}',
        Err(NOT_OBJ, "raw control character"),
        Ok({"code": "def f():\n    return 1"}, ("other",)),
    ),
    (
        "raw tab and NUL in a string",
        '{"s": "a\tb\x00"}',
        Err(NOT_OBJ, "raw control character"),
        Ok({"s": "a\tb\x00"}, ("other",)),
    ),
    ("BOM", '\ufeff{"a": 1}', Err(NOT_OBJ, BOM), Ok({"a": 1}, ("bom",))),
    (
        "code fence",
        '```json\n{"a": 1}\n```',
        Err(NOT_OBJ, CODE_FENCE),
        Ok({"a": 1}, ("code_fence",)),
    ),
    (
        "code fence without language",
        '\n```\n{"a": [1, 2]}\n```\n',
        Err(NOT_OBJ, CODE_FENCE),
        Ok({"a": [1, 2]}, ("code_fence",)),
    ),
    (
        "code fence around single quotes",
        "```json\n{'a': 1}\n```",
        Err(NOT_OBJ, CODE_FENCE),
        Ok({"a": 1}, ("code_fence", "single_quotes")),
    ),
    (
        "BOM and fence",
        '\ufeff```json\n{"a": 1}\n```',
        Err(NOT_OBJ, BOM),
        Ok({"a": 1}, ("bom", "code_fence")),
    ),
    (
        "prose around a fence",
        'Here you go:\n```json\n{"a": 1}\n```',
        Err(NOT_OBJ, "not valid JSON"),
        Err(NOT_OBJ, "cannot be repaired safely"),
    ),
    (
        "single quotes",
        "{'city': 'Paris'}",
        Err(NOT_OBJ, "use double quotes"),
        Ok({"city": "Paris"}, ("single_quotes",)),
    ),
    (
        "single quotes with an escaped quote",
        "{'msg': 'it\\'s'}",
        Err(NOT_OBJ, "use double quotes"),
        Ok({"msg": "it's"}, ("single_quotes",)),
    ),
    (
        "escaped apostrophe in a double-quoted string",
        r"""{"msg": "it\'s done"}""",
        Err(NOT_OBJ, "line 1, column 12"),
        Ok({"msg": "it's done"}, ("other",)),
    ),
    (
        "unescaped Windows path",
        r'{"path": "C:\Users\me"}',
        Err(NOT_OBJ, "not valid JSON"),
        Ok({"path": "C:\\Users\\me"}, ("other",)),
    ),
    (
        "Python literals",
        '{"a": True, "b": False, "c": None}',
        Err(NOT_OBJ, "lowercase"),
        Ok({"a": True, "b": False, "c": None}, ("python_literals",)),
    ),
    (
        "Python dict repr",
        "{'a': True, 'b': [1, None],}",
        Err(NOT_OBJ, "use double quotes"),
        Ok({"a": True, "b": [1, None]}, ("single_quotes", "python_literals", "trailing_comma")),
    ),
    (
        "trailing comma",
        '{"a": 1,}',
        Err(NOT_OBJ, "remove the comma"),
        Ok({"a": 1}, ("trailing_comma",)),
    ),
    (
        "trailing commas in an array",
        '{"a": [1, 2,],}',
        Err(NOT_OBJ, "remove the comma"),
        Ok({"a": [1, 2]}, ("trailing_comma",)),
    ),
    ("truncated string", '{"city": "Par', Err(NOT_OBJ, CUT), Err(NOT_OBJ, CUT)),
    ("truncated array", '{"ids": [1, 2', Err(NOT_OBJ, CUT), Err(NOT_OBJ, CUT)),
    ("truncated after comma", '{"a": 1, ', Err(NOT_OBJ, CUT), Err(NOT_OBJ, CUT)),
    ("truncated key", '{"a": 1, "b', Err(NOT_OBJ, CUT), Err(NOT_OBJ, CUT)),
    ("truncated nested", '{"a": {"b": 1}', Err(NOT_OBJ, CUT), Err(NOT_OBJ, CUT)),
    ("just an open brace", "{", Err(NOT_OBJ, CUT), Err(NOT_OBJ, CUT)),
    (
        "two objects",
        '{"a": 1}{"b": 2}',
        Err(NOT_OBJ, "more text after the JSON object"),
        Err(NOT_OBJ, "more text after the JSON object"),
    ),
    (
        "prose after the object",
        '{"a": 1}\n\nI called the tool.',
        Err(NOT_OBJ, "more text after"),
        Err(NOT_OBJ, "more text after"),
    ),
    (
        "line comment",
        '// arguments\n{"a": 1}',
        Err(NOT_OBJ, "remove comments"),
        Ok({"a": 1}, ("other",)),
    ),
    (
        "block comment",
        '{"a": 1 /* one */}',
        Err(NOT_OBJ, "remove comments"),
        Ok({"a": 1}, ("other",)),
    ),
    (
        "unquoted key",
        '{city: "Paris"}',
        Err(NOT_OBJ, "put every key in double quotes"),
        Ok({"city": "Paris"}, ("other",)),
    ),
    (
        "missing comma",
        '{"a": 1 "b": 2}',
        Err(NOT_OBJ, "separate members"),
        Ok({"a": 1, "b": 2}, ("other",)),
    ),
    (
        "bare word value",
        '{"city": Paris}',
        Err(NOT_OBJ, "'Paris' is not a JSON value"),
        Err(NOT_OBJ, "'Paris' is not a JSON value"),
    ),
    # json-repair guesses on these (drops 1, drops {} and 2, moves the array's object up a level,
    # strips the newline from the key); safe repair refuses whatever would change content.
    ("missing comma between numbers", '{"s": 8 1}', Err(NOT_OBJ, "commas"), Err(NOT_OBJ, GUESS)),
    ("missing comma in an array", '{"r": [{}2, "x"]}', Err(NOT_OBJ, "commas"), Err(NOT_OBJ, GUESS)),
    ("misplaced bracket", '{"t": 8[{"e": "x"}]}', Err(NOT_OBJ, "commas"), Err(NOT_OBJ, GUESS)),
    (
        "raw newline in a key",
        '{"r\n": true}',
        Err(NOT_OBJ, "raw control character"),
        Err(NOT_OBJ, GUESS),
    ),
    ("Python escape", "{'a': '\\x41'}", Err(NOT_OBJ, "double quotes"), Err(NOT_OBJ, GUESS)),
    ("undefined", '{"a": undefined}', Err(NOT_OBJ, "'undefined'"), Err(NOT_OBJ, "'undefined'")),
    ("missing value", '{"a": }', Err(NOT_OBJ, "no value"), Err(NOT_OBJ, "no value")),
    ("missing colon", '{"a" 1}', Err(NOT_OBJ, "not followed by ':'"), Err(NOT_OBJ, "':'")),
    ("double comma", '{"a": 1,, "b": 2}', Err(NOT_OBJ, "comma"), Err(NOT_OBJ, "comma")),
    ("mismatched bracket", '{"a": "b"]', Err(NOT_OBJ, "']'"), Err(NOT_OBJ, "']'")),
    ("extra brace", '{"a": 1}}', Err(NOT_OBJ, "'}'"), Err(NOT_OBJ, "'}'")),
    ("tuple", "{'a': (1, 2)}", Err(NOT_OBJ, "'('"), Err(NOT_OBJ, "'('")),
    ("XML tool call", "<tool_call>{}</tool_call>", Err(NOT_OBJ, "'<'"), Err(NOT_OBJ, "'<'")),
    (
        "deep arrays",
        "[" * 10_000 + "]" * 10_000,
        Err(ArgumentsTooDeep, "deeper than 64 levels"),
        Err(ArgumentsTooDeep, "deeper than 64 levels"),
    ),
    (
        "deep objects, unclosed",
        '{"a":' * 10_000,
        Err(ArgumentsTooDeep, "at most 64 levels"),
        Err(ArgumentsTooDeep, "at most 64 levels"),
    ),
    (
        "deep single-quoted objects",
        "{'a':" * 65 + "1" + "}" * 65,
        Err(ArgumentsTooDeep, "64"),
        Err(ArgumentsTooDeep, "64"),
    ),
    (
        "brackets inside a string do not count",
        '{"s": "' + "[{" * 5_000 + '"}',
        Ok({"s": "[{" * 5_000}),
        Ok({"s": "[{" * 5_000}),
    ),
    (
        "64 levels is allowed",
        '{"a":' * 63 + "[1]" + "}" * 63,
        Ok(json.loads('{"a":' * 63 + "[1]" + "}" * 63)),
        Ok(json.loads('{"a":' * 63 + "[1]" + "}" * 63)),
    ),
]


def _check(raw: str, expected: Ok | Err, **kwargs: Any) -> None:
    if isinstance(expected, Ok):
        got = parse_arguments(raw, **kwargs)
        assert got.value == expected.value
        assert tuple(got.repairs) == expected.repairs
        assert type(got.value) is dict
    else:
        with pytest.raises(expected.error) as info:
            parse_arguments(raw, **kwargs)
        assert type(info.value) is expected.error
        assert expected.says in info.value.message
        assert info.value.code == expected.error.code


def test_the_table_is_large_and_distinct() -> None:
    assert len(CASES) >= 40
    assert len({raw for _, raw, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("raw", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_strict_mode(raw: str, expected: Ok | Err) -> None:
    _check(raw, expected, repair="off")


@pytest.mark.parametrize(
    ("raw", "expected"), [(c[1], c[3]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_safe_repair_mode(raw: str, expected: Ok | Err) -> None:
    _check(raw, expected, repair="safe")


@pytest.mark.parametrize(
    ("raw", "value", "repairs"),
    [
        ('{"city": "Par', {"city": "Par"}, ("truncated",)),
        ('{"ids": [1, 2', {"ids": [1, 2]}, ("truncated",)),
        ('{"a": {"b": 1}', {"a": {"b": 1}}, ("truncated",)),
        ("{'q': 'weath", {"q": "weath"}, ("single_quotes", "truncated")),
        ('{"a": 1, "b"', {"a": 1}, ("truncated",)),
    ],
)
def test_truncated_input_is_completed_only_when_allowed(
    raw: str, value: dict[str, Any], repairs: tuple[str, ...]
) -> None:
    got = parse_arguments(raw, repair="safe", complete_truncated=True)
    assert got.value == value
    assert tuple(got.repairs) == repairs
    # Strict mode never completes anything, whatever the flag says.
    with pytest.raises(InvalidArgumentsJSON, match="cut off"):
        parse_arguments(raw, repair="off", complete_truncated=True)


def test_null_means_no_arguments_for_a_tool_without_parameters() -> None:
    assert parse_arguments("null", has_parameters=False) == ParsedArguments({}, [])
    with pytest.raises(InvalidArgumentsJSON, match="got null"):
        parse_arguments("null", has_parameters=True)
    with pytest.raises(InvalidArgumentsJSON, match="got an array"):
        parse_arguments("[]", has_parameters=False)


def test_fifty_megabytes_are_refused_before_parsing() -> None:
    raw = '{"content": "' + "x" * (50 * 1024 * 1024) + '"}'
    for mode in ("off", "safe"):
        with pytest.raises(ArgumentsTooLarge) as info:
            parse_arguments(raw, repair=mode)  # type: ignore[arg-type]
        assert f"{len(raw)} bytes, over the limit of 1048576 bytes" in info.value.message
        assert info.value.code == "arguments_too_large"


def test_size_counts_utf8_bytes_not_characters() -> None:
    fits = '{"s": "' + "é" * 400_000 + '"}'  # 800,009 bytes
    assert parse_arguments(fits).value == {"s": "é" * 400_000}
    over = '{"s": "' + "é" * 600_000 + '"}'  # fewer characters than the cap, but not bytes
    with pytest.raises(ArgumentsTooLarge, match=f"are {len(over.encode())} bytes, over the"):
        parse_arguments(over)
    huge = "é" * 2_000_000
    with pytest.raises(ArgumentsTooLarge, match="are more than 2000000 bytes"):
        parse_arguments(huge)
    with pytest.raises(ArgumentsTooLarge, match="over the limit of 8 bytes"):
        parse_arguments('{"a": "xyz"}', max_bytes=8)


def test_depth_limit_is_configurable() -> None:
    raw = '{"a": {"b": {"c": 1}}}'
    assert parse_arguments(raw, max_depth=3).value == {"a": {"b": {"c": 1}}}
    with pytest.raises(ArgumentsTooDeep, match="deeper than 2 levels"):
        parse_arguments(raw, max_depth=2)


def test_hostile_quotes_do_not_make_the_depth_scan_quadratic() -> None:
    # \" repeated with no closing quote: a naive string regex backtracks O(n^2) here. The
    # generous per-call budget only catches that blow-up (minutes), not ordinary slowness.
    import time

    raw = '{"a": [' * 20 + '\\"' * 400_000
    started = time.perf_counter()
    for mode in ("off", "safe"):
        with pytest.raises(InvalidArgumentsJSON):
            parse_arguments(raw, repair=mode)  # type: ignore[arg-type]
    assert time.perf_counter() - started < 20


def test_repair_is_only_tried_up_to_its_size_cap() -> None:
    raw = "{'a': '" + "x" * 20_000 + "'}"
    with pytest.raises(InvalidArgumentsJSON, match="repair is only tried on arguments up to"):
        parse_arguments(raw, repair="safe")
    got = parse_arguments(raw, repair="safe", max_repair_bytes=100_000)
    assert got.value == {"a": "x" * 20_000}
    assert got.repairs == ["single_quotes"]


def test_large_broken_input_gets_a_plain_error_without_the_slow_scan() -> None:
    broken = '{"ids": [' + "1, " * 200_000 + "x]}"  # 600 KB: under the size cap, over repair's
    with pytest.raises(InvalidArgumentsJSON) as info:
        parse_arguments(broken, repair="off")
    assert "expected a JSON value at line 1, column 600010" in info.value.message
    with pytest.raises(InvalidArgumentsJSON, match="only tried on arguments up to 16384 bytes"):
        parse_arguments(broken, repair="safe")
    cut = '{"ids": [' + "1, " * 200_000
    for mode in ("off", "safe"):
        with pytest.raises(InvalidArgumentsJSON, match="cut off: an unfinished value"):
            parse_arguments(cut, repair=mode, complete_truncated=True)  # type: ignore[arg-type]


def test_errors_point_at_line_and_column() -> None:
    with pytest.raises(InvalidArgumentsJSON) as info:
        parse_arguments('{\n  "a": 1,\n  "b": tru\n}')
    assert "line 3, column 8" in info.value.message
    assert info.value.message.endswith('e.g. {"key": "value"}')


def test_repairs_use_only_the_documented_names() -> None:
    samples = [c[1] for c in CASES] + ["{'a': 'x", '```\n{"a": True,}\n```']
    for raw in samples:
        try:
            got = parse_arguments(raw, repair="safe", complete_truncated=True)
        except ArgumentError:
            continue
        assert set(got.repairs) <= set(REPAIR_NAMES)
        assert got.repairs == sorted(got.repairs, key=REPAIR_NAMES.index)


# --- properties ---------------------------------------------------------------------------------

_TYPED = (ArgumentsTooLarge, ArgumentsTooDeep, InvalidArgumentsJSON)
_JSONISH = st.lists(
    st.sampled_from(
        [
            *"{}[]\"':,. \n\\/*#-+0123456789eE",
            *("true", "True", "None", "null", "NaN", "a", "b", "\ufeff", "```", "\x00"),
            *("\ud800", "é", "\\u", "\\ud800"),
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.one_of(st.text(max_size=80), _JSONISH),
    repair=st.sampled_from(["off", "safe"]),
    complete=st.booleans(),
)
def test_any_text_gives_a_dict_or_a_typed_error(raw: str, repair: str, complete: bool) -> None:
    try:
        got = parse_arguments(raw, repair=repair, complete_truncated=complete, max_depth=8)  # type: ignore[arg-type]
    except _TYPED as exc:
        assert exc.code in {"arguments_too_large", "arguments_too_deep", "invalid_json"}
        assert exc.message
        return
    assert type(got.value) is dict
    assert set(got.repairs) <= set(REPAIR_NAMES)
    if repair == "off":
        assert got.repairs == []
    # Whatever was accepted is plain JSON again: no NaN, no lone surrogates.
    assert orjson.loads(orjson.dumps(got.value)) == got.value
    if not complete:
        assert "truncated" not in got.repairs


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    # Strings full of what the duplicate-key counting looks at: colons, quotes, whitespace.
    | st.text(alphabet=':" \n\t\\{}[]ab', max_size=10)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    value=_VALUES,
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 2]),
    repair=st.sampled_from(["off", "safe"]),
)
def test_valid_json_round_trips_unchanged(
    value: Any, ensure_ascii: bool, indent: int | None, repair: str
) -> None:
    raw = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    if isinstance(value, dict):
        got = parse_arguments(raw, repair=repair)  # type: ignore[arg-type]
        assert got.value == value
        assert got.repairs == []
    else:
        with pytest.raises(InvalidArgumentsJSON, match="must be a JSON object"):
            parse_arguments(raw, repair=repair)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    value=st.dictionaries(
        st.text(max_size=6) | st.text(alphabet=':" ab', max_size=4), _VALUES, min_size=1, max_size=4
    ),
    data=st.data(),
    nest=st.booleans(),
    compact=st.booleans(),
    repair=st.sampled_from(["off", "safe"]),
)
def test_a_repeated_key_is_always_refused(
    value: dict[str, Any], data: st.DataObject, nest: bool, compact: bool, repair: str
) -> None:
    # Compact text is what most models send, and what the re-serialisation shortcut looks at.
    comma, colon = (",", ":") if compact else (", ", ": ")
    key = data.draw(st.sampled_from(sorted(value)))
    again = data.draw(_VALUES)
    body = json.dumps(value, separators=(comma, colon))
    raw = body[:-1] + comma + json.dumps(key) + colon + json.dumps(again, separators=(comma, colon))
    raw += "}"
    if nest:
        raw = '{"outer":[1,' + raw + "]}"
    with pytest.raises(InvalidArgumentsJSON) as info:
        parse_arguments(raw, repair=repair)  # type: ignore[arg-type]
    assert f"{key!r} more than once" in info.value.message


_WORDS = st.text(alphabet=string.ascii_letters + string.digits + " _-", max_size=12)
_PY_SCALARS = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | _WORDS
_PY_VALUES = st.recursive(
    _PY_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_WORDS, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(_WORDS, _PY_VALUES, min_size=1, max_size=4))
def test_a_python_dict_repr_is_repaired_to_the_same_value(value: dict[str, Any]) -> None:
    got = parse_arguments(repr(value), repair="safe")
    assert got.value == value
    assert set(got.repairs) <= {"single_quotes", "python_literals"}
