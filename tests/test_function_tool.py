"""``@tool`` turns a Python function into the exact tool schema a model gets, and runs it."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import functools
import inspect
import pickle
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, Optional

import cloudpickle
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from tamma_tools.errors import ArgumentValidationError, ToolDefinitionError
from tamma_tools.function_tool import (
    CallPlan,
    ExecutorInfo,
    FunctionTool,
    describe_executor,
    tool,
    tool_from_function,
)
from tamma_tools.schema.strict import check_strict_schema
from tamma_tools.schema.validator import compile_validator
from tamma_tools.types import CallerContext, RateLimit, ToolMetadata

# --- types used in the table ----------------------------------------------------------------


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(typing.TypedDict):
    street: str
    zip: NotRequired[str | None]


class Point(BaseModel):
    """A point on the map."""

    x: float
    y: float
    label: str | None = None


class Box(BaseModel):
    corner: Point
    size: float = 1.0  # a nested default that cannot be null: not strict-clean


@dataclasses.dataclass
class Window:
    width: int
    height: int


class Tree(BaseModel):
    value: int
    children: list[Tree]


# --- the table: function -> exact parameters schema -----------------------------------------


def primitives(s: str, i: int, f: float, b: bool) -> None: ...


def with_defaults(city: str, days: int = 3, note: str | None = None) -> None: ...


def literals(mode: Literal["fast", "slow"], level: Literal[1, 2, 3]) -> None: ...


def enums(unit: Unit, level: Level) -> None: ...


def optionals(a: Optional[int], b: str | None, c: Unit | None, d: int | str) -> None: ...  # noqa: UP045


def containers(tags: list[str], matrix: list[list[float]]) -> None: ...


def mapping(scores: dict[str, int]) -> None: ...


def typed_dict(address: Address) -> None: ...


def model(point: Point) -> None: ...


def dataclass_param(window: Window) -> None: ...


def annotated(
    count: Annotated[int, Field(description="How many.", ge=1, le=10)],
    name: Annotated[str, Field(min_length=2, pattern="^[a-z]+$")],
) -> None: ...


def recursive(tree: Tree) -> None: ...


def untyped(x, y=2):  # type: ignore[no-untyped-def]
    ...


STRICT_TABLE: list[tuple[Any, dict[str, Any]]] = [
    (
        primitives,
        {
            "type": "object",
            "properties": {
                "s": {"type": "string"},
                "i": {"type": "integer"},
                "f": {"type": "number"},
                "b": {"type": "boolean"},
            },
            "required": ["s", "i", "f", "b"],
            "additionalProperties": False,
        },
    ),
    (
        with_defaults,
        {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"description": "Null means the default, 3.", "type": ["integer", "null"]},
                "note": {"type": ["string", "null"]},
            },
            "required": ["city", "days", "note"],
            "additionalProperties": False,
        },
    ),
    (
        literals,
        {
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "level": {"type": "integer", "enum": [1, 2, 3]},
            },
            "required": ["mode", "level"],
            "additionalProperties": False,
        },
    ),
    (
        enums,
        {
            "type": "object",
            "properties": {
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "level": {"type": "integer", "enum": [1, 2]},
            },
            "required": ["unit", "level"],
            "additionalProperties": False,
        },
    ),
    (
        optionals,
        {
            "type": "object",
            "properties": {
                "a": {"type": ["integer", "null"]},
                "b": {"type": ["string", "null"]},
                "c": {
                    "anyOf": [
                        {"type": "string", "enum": ["celsius", "fahrenheit"]},
                        {"type": "null"},
                    ]
                },
                "d": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            },
            "required": ["a", "b", "c", "d"],
            "additionalProperties": False,
        },
    ),
    (
        containers,
        {
            "type": "object",
            "properties": {
                "tags": {"type": "array", "items": {"type": "string"}},
                "matrix": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "number"}},
                },
            },
            "required": ["tags", "matrix"],
            "additionalProperties": False,
        },
    ),
    (
        typed_dict,
        {
            "type": "object",
            "properties": {
                "address": {
                    "type": "object",
                    "properties": {
                        "street": {"type": "string"},
                        "zip": {"type": ["string", "null"]},
                    },
                    "required": ["street", "zip"],
                    "additionalProperties": False,
                }
            },
            "required": ["address"],
            "additionalProperties": False,
        },
    ),
    (
        model,
        {
            "type": "object",
            "properties": {
                "point": {
                    "description": "A point on the map.",
                    "properties": {
                        "x": {"type": "number"},
                        "y": {"type": "number"},
                        "label": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    },
                    "required": ["x", "y", "label"],
                    "type": "object",
                    "additionalProperties": False,
                }
            },
            "required": ["point"],
            "additionalProperties": False,
        },
    ),
    (
        dataclass_param,
        {
            "type": "object",
            "properties": {
                "window": {
                    "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
                    "required": ["width", "height"],
                    "type": "object",
                    "additionalProperties": False,
                }
            },
            "required": ["window"],
            "additionalProperties": False,
        },
    ),
    (
        annotated,
        {
            "type": "object",
            "properties": {
                "count": {
                    "type": "integer",
                    "description": "How many.",
                    "minimum": 1,
                    "maximum": 10,
                },
                "name": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2},
            },
            "required": ["count", "name"],
            "additionalProperties": False,
        },
    ),
    (
        recursive,
        {
            "type": "object",
            "properties": {
                "tree": {
                    "properties": {
                        "value": {"type": "integer"},
                        "children": {"items": {"$ref": "#/$defs/Tree"}, "type": "array"},
                    },
                    "required": ["value", "children"],
                    "type": "object",
                    "additionalProperties": False,
                }
            },
            "required": ["tree"],
            "additionalProperties": False,
            "$defs": {
                "Tree": {
                    "properties": {
                        "value": {"type": "integer"},
                        "children": {"items": {"$ref": "#/$defs/Tree"}, "type": "array"},
                    },
                    "required": ["value", "children"],
                    "type": "object",
                    "additionalProperties": False,
                }
            },
        },
    ),
]


@pytest.mark.parametrize(
    ("fn", "expected"), STRICT_TABLE, ids=[f.__name__ for f, _ in STRICT_TABLE]
)
def test_strict_schema_of_each_type_form(fn: Any, expected: dict[str, Any]) -> None:
    made = tool(fn)
    assert made.strict, made.strict_error
    assert made.definition.function.strict is True
    assert made.definition.function.parameters == expected
    # What we call strict, OpenAI's strict-subset rules accept.
    assert check_strict_schema(expected).valid


LOOSE_TABLE: list[tuple[Any, dict[str, Any], str]] = [
    (
        mapping,
        {
            "type": "object",
            "properties": {
                "scores": {"type": "object", "additionalProperties": {"type": "integer"}}
            },
            "required": ["scores"],
            "additionalProperties": False,
        },
        "properties.scores: has free-form keys (a dict)",
    ),
    (
        untyped,
        {
            "type": "object",
            "properties": {"x": {}, "y": {"default": 2}},
            "required": ["x"],
            "additionalProperties": False,
        },
        "properties.x: accepts any value; give it a type",
    ),
]


@pytest.mark.parametrize(("fn", "expected", "why"), LOOSE_TABLE, ids=["dict", "untyped"])
def test_schema_that_cannot_be_strict_falls_back_to_plain(
    fn: Any, expected: dict[str, Any], why: str
) -> None:
    made = tool(fn)
    assert not made.strict
    assert made.strict_error == why
    assert made.definition.function.parameters == expected
    assert "strict" not in made.to_openai()["function"]


def test_strict_false_keeps_defaults_and_optional_parameters() -> None:
    made = tool(strict=False)(with_defaults)
    assert made.definition.function.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "default": 3},
            "note": {"type": ["string", "null"], "default": None},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert made.strict_error == "strict=False was asked for"


def test_nested_default_that_cannot_be_null_is_not_strict() -> None:
    def place(box: Box) -> None: ...

    made = tool(place)
    assert not made.strict
    assert made.strict_error is not None and "properties.box.properties.size" in made.strict_error
    box = made.definition.function.parameters["properties"]["box"]
    assert box["properties"]["size"] == {"default": 1.0, "type": "number"}
    with pytest.raises(ToolDefinitionError) as info:
        tool(strict=True)(place)
    assert info.value.code == "not_strict_compatible"
    assert "strict=False" in info.value.message


# --- descriptions ---------------------------------------------------------------------------


def google(city: str, days: int) -> None:
    """Get the forecast.

    Args:
        city: The city.
        days: Days ahead.
    """


def numpy_style(city: str, days: int) -> None:
    """Get the forecast.

    Parameters
    ----------
    city : str
        The city.
    days : int
        Days ahead.
    """


def sphinx(city: str, days: int) -> None:
    """Get the forecast.

    :param city: The city.
    :param days: Days ahead.
    """


@pytest.mark.parametrize("fn", [google, numpy_style, sphinx])
def test_docstring_styles_describe_tool_and_parameters(fn: Any) -> None:
    function = tool(fn).definition.function
    assert function.description == "Get the forecast."
    assert function.parameters is not None
    assert function.parameters["properties"] == {
        "city": {"description": "The city.", "type": "string"},
        "days": {"description": "Days ahead.", "type": "integer"},
    }


def test_field_description_wins_over_docstring_and_description_argument_over_summary() -> None:
    @tool(description="Count things.")
    def counter(n: Annotated[int, Field(description="From Field.")]) -> int:
        """Ignored summary.

        Args:
            n: From the docstring.
        """
        return n

    assert counter.definition.function.description == "Count things."
    assert counter.definition.function.parameters is not None
    assert counter.definition.function.parameters["properties"]["n"]["description"] == "From Field."


def test_description_argument_keeps_docstring_parameter_texts() -> None:
    @tool(description="Say hello.")
    def greet(name: str) -> str:
        """Ignored summary.

        Args:
            name: Who to greet.
        """
        return name

    function = greet.definition.function
    assert function.description == "Say hello."
    assert function.parameters is not None
    assert function.parameters["properties"]["name"] == {
        "description": "Who to greet.",
        "type": "string",
    }


def test_no_docstring_means_no_description_key() -> None:
    def bare(x: int) -> int:
        return x

    assert "description" not in tool(bare).to_openai()["function"]


# --- metadata and naming ----------------------------------------------------------------------


def test_metadata_keywords_reach_the_definition() -> None:
    @tool(
        name="read_notes",
        category="filesystem",
        permissions=["file:read"],
        timeout_s=10,
        rate_limit=RateLimit(calls_per_minute=30),
        read_only=True,
        tags=["notes"],
        isolation="worker",
    )
    def read(path: str) -> str:
        return path

    meta = read.definition.metadata
    assert read.name == "read_notes"
    assert meta == ToolMetadata(
        category="filesystem",
        permissions=["file:read"],
        timeout_s=10,
        rate_limit=RateLimit(calls_per_minute=30),
        read_only=True,
        tags=["notes"],
        isolation="worker",
    )
    assert "metadata" not in read.to_openai()


def test_metadata_object_and_keywords_combine() -> None:
    base = ToolMetadata(category="net", open_world=True)
    made = tool_from_function(primitives, metadata=base, timeout_s=5)
    assert made.definition.metadata.category == "net"
    assert made.definition.metadata.open_world is True
    assert made.definition.metadata.timeout_s == 5
    assert base.timeout_s is None  # the caller's object is not changed


def test_unknown_metadata_field_is_a_clear_error() -> None:
    with pytest.raises(ToolDefinitionError) as info:
        tool(categroy="x")(primitives)
    assert info.value.code == "invalid_metadata"
    assert "categroy" in info.value.message and "category" in info.value.message


@pytest.mark.parametrize("name", ["has space", "dotted.name", "x" * 65, "ünï"])
def test_names_openai_rejects_are_refused_at_decoration(name: str) -> None:
    with pytest.raises(ToolDefinitionError) as info:
        tool(name=name)(primitives)
    assert info.value.code == "invalid_name"
    assert "a-z A-Z 0-9 _ -" in info.value.message


def test_signatures_that_cannot_be_called_by_name_are_refused() -> None:
    def star(*values: int) -> None: ...

    def kw(**options: int) -> None: ...

    def positional(x: int, /) -> None: ...

    class Service:
        def method(self, x: int) -> int:
            return x

    for fn in (star, kw, positional, Service.method):
        with pytest.raises(ToolDefinitionError) as info:
            tool(fn)
        assert info.value.code == "unsupported_signature"
    bound = tool_from_function(Service().method)
    assert bound.executor(x=4) == 4
    assert list(bound.definition.function.parameters["properties"]) == ["x"]  # type: ignore[index]


class Opaque:
    """A class pydantic has no JSON Schema for."""


def test_type_that_has_no_json_schema_is_a_definition_error() -> None:
    def takes(o: Opaque) -> None: ...

    with pytest.raises(ToolDefinitionError) as info:
        tool(takes)
    assert info.value.code == "unsupported_type"
    assert "'o'" in info.value.message and "Opaque" in info.value.message


def test_unresolvable_annotation_names_the_parameter_and_the_fix() -> None:
    class Local(BaseModel):  # with postponed annotations, "Local" cannot be resolved later
        v: int

    def takes(city: str, item: Local) -> Local:
        return item

    with pytest.raises(ToolDefinitionError) as info:
        tool(takes)
    assert info.value.code == "unsupported_type"
    assert "parameter 'item'" in info.value.message
    assert "define the type at module level" in info.value.message


def test_unresolvable_return_annotation_does_not_matter() -> None:
    class Local(BaseModel):
        v: int

    def make(v: int) -> Local:
        return Local(v=v)

    assert tool(make).definition.function.parameters == {
        "type": "object",
        "properties": {"v": {"type": "integer"}},
        "required": ["v"],
        "additionalProperties": False,
    }


def test_mapping_with_non_string_keys_is_refused() -> None:
    def takes(m: dict[int, str]) -> None: ...

    with pytest.raises(ToolDefinitionError, match=re.escape("use dict[str, ...]")):
        tool(takes)


# --- calling ------------------------------------------------------------------------------


def test_function_tool_is_callable_like_the_function_and_keeps_its_identity() -> None:
    def add(a: int, b: int = 1) -> int:
        """Add."""
        return a + b

    made = tool(add)
    assert isinstance(made, FunctionTool)
    assert made(2) == 3 and made(a=2, b=5) == 7
    assert made.fn is add
    assert made.__name__ == "add" and made.__doc__ == "Add."
    assert made.is_async is False and made.context_param is None


def test_plain_json_parameters_need_no_adapter() -> None:
    # Nothing to convert: the executor is the tool itself, which calls the function directly.
    made = tool(primitives)
    assert made.executor is made
    assert made.plan.empty


def test_context_parameter_is_injected_and_hidden_from_the_schema() -> None:
    @tool
    def whoami(prefix: str, ctx: CallerContext) -> str:
        return f"{prefix}{ctx.user_id}"

    assert whoami.context_param == "ctx"
    params = whoami.definition.function.parameters
    assert params is not None and list(params["properties"]) == ["prefix"]
    assert whoami.executor(prefix="u:", ctx=CallerContext(user_id="ada")) == "u:ada"
    assert describe_executor(whoami) == ExecutorInfo(is_async=False, context_param="ctx")


async def test_async_tool_is_awaited_with_converted_models() -> None:
    @tool
    async def move(point: Point, by: float, ctx: Optional[CallerContext] = None) -> Point:  # noqa: UP045
        await asyncio.sleep(0)
        return Point(x=point.x + by, y=point.y + by)

    assert move.is_async and move.context_param == "ctx"
    assert describe_executor(move.executor) == ExecutorInfo(is_async=True, context_param="ctx")
    moved = await move.executor(point={"x": 1, "y": 2, "label": None}, by=1.5, ctx=CallerContext())
    assert moved == Point(x=2.5, y=3.5)


def test_models_dataclasses_and_enums_arrive_as_python_objects() -> None:
    seen: dict[str, Any] = {}

    @tool
    def place(
        point: Point, window: Window, unit: Unit, levels: list[Level], tags: list[str]
    ) -> None:
        seen.update(point=point, window=window, unit=unit, levels=levels, tags=tags)

    place.executor(
        point={"x": 1, "y": 2, "label": "a"},
        window={"width": 3, "height": 4},
        unit="celsius",
        levels=[2, 1],
        tags=["t"],
    )
    assert seen == {
        "point": Point(x=1, y=2, label="a"),
        "window": Window(3, 4),
        "unit": Unit.CELSIUS,
        "levels": [Level.HIGH, Level.LOW],
        "tags": ["t"],
    }
    assert [name for name, _ in place.plan.converters] == ["point", "window", "unit", "levels"]


def test_strict_null_means_the_python_default() -> None:
    calls: list[tuple[Any, ...]] = []

    def record(city: str, days: int = 3, note: str | None = None) -> None:
        calls.append((city, days, note))

    recorder = tool(record)
    recorder.executor(city="Oslo", days=None, note=None)
    recorder.executor(city="Oslo", days=5, note="n")
    assert calls == [("Oslo", 3, None), ("Oslo", 5, "n")]
    # note's own type takes null, so null reaches the function as None (its default anyway).
    assert recorder.plan.null_means_default == frozenset({"days"})


def test_field_used_as_default_gives_its_value_not_the_field() -> None:
    @tool(strict=False)
    def page(size: int = Field(20, description="Page size.", le=100)) -> int:
        return size

    params = page.definition.function.parameters
    assert params is not None
    assert params["properties"]["size"] == {
        "type": "integer",
        "description": "Page size.",
        "maximum": 100,
        "default": 20,
    }
    assert page.executor() == 20
    assert page.executor(size=7) == 7


def test_value_the_model_type_rejects_is_an_argument_error() -> None:
    @tool
    def locate(point: Point) -> Point:
        return point

    with pytest.raises(ArgumentValidationError) as info:
        locate.executor(point={"x": "east", "y": 1, "label": None})
    assert info.value.code == "schema_violation"
    assert "point.x" in info.value.message


def test_executor_with_conversions_survives_cloudpickle() -> None:
    # Worker-process isolation ships the executor by cloudpickle: the plan must rebuild there.
    @tool
    def locate(point: Point, unit: Unit = Unit.CELSIUS) -> str:
        return f"{point.x},{point.y} {unit.value}"

    clone = cloudpickle.loads(cloudpickle.dumps(locate.executor))
    assert clone(point={"x": 1, "y": 2, "label": None}, unit=None) == "1.0,2.0 celsius"
    assert cloudpickle.loads(cloudpickle.dumps(locate.plan)).null_means_default == {"unit"}
    assert isinstance(cloudpickle.loads(cloudpickle.dumps(locate.plan)), CallPlan)


@tool
def shipped_plain(city: str) -> str:
    return f"plain:{city}"


@tool
def shipped_model(point: Point, unit: Unit = Unit.CELSIUS) -> str:
    return f"{point.x}:{unit.value}"


@pytest.mark.parametrize(
    ("made", "args", "expected"),
    [
        (shipped_plain, {"city": "Oslo"}, "plain:Oslo"),
        (shipped_model, {"point": {"x": 2, "y": 0, "label": None}, "unit": None}, "2.0:celsius"),
    ],
    ids=["plain", "with-plan"],
)
def test_module_level_executor_pickles_by_reference_into_a_fresh_process(
    made: FunctionTool[..., Any], args: dict[str, Any], expected: str
) -> None:
    """A worker imports the tool by name: small payload, no copy of the module's globals."""
    blob = pickle.dumps(made.executor)
    assert b"tests.test_function_tool" in blob and len(blob) < 300
    script = (
        "import pickle, sys, json\n"
        "executor = pickle.loads(sys.stdin.buffer.read())\n"
        f"print(json.dumps(executor(**{args!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=blob,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert orjson.loads(done.stdout) == expected
    assert pickle.loads(pickle.dumps(made)) is made


# --- describe_executor ----------------------------------------------------------------------


def test_describe_executor_on_plain_callables() -> None:
    async def fetch(url: str, context: CallerContext) -> str:
        return url

    class Handler:
        async def __call__(self, q: str) -> str:
            return q

        def run(self, q: str, who: CallerContext | None = None) -> str:
            return q

    assert describe_executor(fetch) == ExecutorInfo(True, "context")
    assert describe_executor(functools.partial(fetch, "u")) == ExecutorInfo(True, "context")
    assert describe_executor(Handler()) == ExecutorInfo(True, None)
    assert describe_executor(Handler().run) == ExecutorInfo(False, "who")
    assert describe_executor(len) == ExecutorInfo(False, None)
    assert describe_executor(lambda **kw: kw) == ExecutorInfo(False, None)


# --- the schemas hold up --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "expected"), STRICT_TABLE, ids=[f.__name__ for f, _ in STRICT_TABLE]
)
def test_generated_definitions_pass_definition_validation(
    fn: Any, expected: dict[str, Any]
) -> None:
    from tamma_tools.schema.definition import validate_tool_definition

    result = validate_tool_definition(tool(fn).definition)
    assert result.valid, result.summary()


_LEAVES: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {
    "str": (str, st.text(max_size=5)),
    "int": (int, st.integers(-(2**31), 2**31)),
    "float": (float, st.floats(allow_nan=False, allow_infinity=False)),
    "bool": (bool, st.booleans()),
    "literal": (Literal["a", "b"], st.sampled_from(["a", "b"])),
    "enum": (Unit, st.sampled_from(["celsius", "fahrenheit"])),
    "list": (list[int], st.lists(st.integers(0, 9), max_size=3)),
    "optional": (int | None, st.none() | st.integers(0, 9)),
}


@settings(max_examples=60, deadline=None)
@given(data=st.data(), kinds=st.lists(st.sampled_from(sorted(_LEAVES)), min_size=1, max_size=5))
def test_any_signature_accepts_its_own_values_and_round_trips_them(
    data: st.DataObject, kinds: list[str]
) -> None:
    """Values of the annotated types pass the generated schema and reach the function intact."""
    names = [f"p{i}" for i in range(len(kinds))]
    received: dict[str, Any] = {}

    def target(**kwargs: Any) -> None:
        received.update(kwargs)

    target.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=_LEAVES[k][0])
            for n, k in zip(names, kinds, strict=True)
        ]
    )
    made = tool(name="generated")(target)
    assert made.strict
    args = {n: data.draw(_LEAVES[k][1], label=n) for n, k in zip(names, kinds, strict=True)}
    validator = compile_validator(made.definition.function.parameters)
    assert validator.is_valid(orjson.loads(orjson.dumps(args)))
    made.executor(**args)
    for name, kind in zip(names, kinds, strict=True):
        expected = Unit(args[name]) if kind == "enum" else args[name]
        assert received[name] == expected


# --- through the manager --------------------------------------------------------------------


def _call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "call_1",
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(args).decode()},
    }


async def test_a_tool_runs_through_the_manager_with_context_models_and_defaults() -> None:
    from tamma_tools.manager import FunctionCallingManager

    @tool(isolation="in_process", permissions=["map:read"])
    async def locate(
        point: Point, ctx: CallerContext, zoom: int = 3, unit: Unit = Unit.CELSIUS
    ) -> dict[str, Any]:
        """Locate a point."""
        return {"x": point.x, "zoom": zoom, "unit": unit.value, "user": ctx.user_id}

    mgr = FunctionCallingManager()
    mgr.register_tool(locate)
    assert mgr.get_available_tools() == [locate.to_openai()]
    caller = CallerContext(user_id="ada", permissions={"map:read"})
    args = {"point": {"x": 1.5, "y": 0, "label": None}, "zoom": None, "unit": "fahrenheit"}
    result = await mgr.execute_function_call(_call("locate", args), caller)
    assert result.success, result.error
    assert result.result == {"x": 1.5, "zoom": 3, "unit": "fahrenheit", "user": "ada"}

    # The strict schema is enforced before the tool runs: a missing property is refused.
    bad = await mgr.execute_function_call(_call("locate", {"point": {"x": 1, "y": 2}}), caller)
    assert not bad.success and bad.error_code == "schema_violation"


_LEAF_TYPES: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (str, st.text(max_size=3)),
    (int, st.integers(-(2**53), 2**53)),
    (float, st.floats(allow_nan=False, allow_infinity=False)),
    (bool, st.booleans()),
    (Literal["a", "b"], st.sampled_from(["a", "b"])),
    (Unit, st.sampled_from(["celsius", "fahrenheit"])),
]


def _nest(
    inner: st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]],
) -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]:
    return st.one_of(
        inner.map(lambda tv: (list[tv[0]], st.lists(tv[1], max_size=3))),  # type: ignore[name-defined]
        inner.map(lambda tv: (Optional[tv[0]], st.none() | tv[1])),  # noqa: UP045
        inner.map(
            lambda tv: (dict[str, tv[0]], st.dictionaries(st.text(max_size=3), tv[1], max_size=2))  # type: ignore[name-defined]
        ),
    )


_typed_values = st.recursive(st.sampled_from(_LEAF_TYPES), _nest, max_leaves=4)


def _as_json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    return value


@settings(max_examples=80, deadline=None)
@given(data=st.data(), typed=st.lists(_typed_values, min_size=1, max_size=3))
def test_nested_annotations_give_valid_schemas_that_accept_their_values(
    data: st.DataObject, typed: list[tuple[Any, st.SearchStrategy[Any]]]
) -> None:
    """Any nesting of the supported forms: a valid definition, strict when it should be, and
    every value of the annotated type passes the schema and reaches the function intact."""
    from jsonschema import Draft202012Validator

    from tamma_tools.schema.definition import validate_tool_definition

    names = [f"p{i}" for i in range(len(typed))]
    received: dict[str, Any] = {}

    def target(**kwargs: Any) -> None:
        received.update(kwargs)

    target.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=t)
            for n, (t, _) in zip(names, typed, strict=True)
        ]
    )
    made = tool(name="nested")(target)
    params = made.definition.function.parameters
    assert params is not None
    Draft202012Validator.check_schema(params)
    result = validate_tool_definition(made.definition)
    assert result.valid, result.summary()
    has_map = any("dict[" in repr(t) for t, _ in typed)
    assert made.strict is not has_map, made.strict_error
    if made.strict:
        assert check_strict_schema(params).valid
    args = {n: data.draw(values, label=n) for n, (_, values) in zip(names, typed, strict=True)}
    assert Draft202012Validator(params).is_valid(args)
    assert compile_validator(params).is_valid(args)
    made.executor(**args)
    assert _as_json(received) == args


def test_field_default_factory_gives_each_call_a_fresh_value() -> None:
    @tool(strict=False)
    def collect(
        item: str,
        bag: Annotated[list[str], Field(default_factory=list, description="Collected.")],
    ) -> list[str]:
        bag.append(item)
        return bag

    params = collect.definition.function.parameters
    assert params is not None
    assert params["properties"]["bag"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "Collected.",
        "default": [],
    }
    assert params["required"] == ["item"]
    assert collect.executor(item="a") == ["a"]
    assert collect.executor(item="b") == ["b"]  # not ["a", "b"]: no shared default


def test_partial_is_named_and_described_by_its_function() -> None:
    def search(query: str, limit: int) -> str:
        """Search the index."""
        return f"{query}:{limit}"

    made = tool(functools.partial(search, limit=5))
    assert made.name == "search"
    assert made.definition.function.description == "Search the index."
    assert made.definition.function.parameters == {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
        "additionalProperties": False,
    }
    assert made.executor(query="q") == "q:5"
