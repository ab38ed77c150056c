"""``ToolRegistry``: what goes in is valid, what is asked for is found, what changes is told."""

from __future__ import annotations

import logging
import string
import threading
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tamma_tools.errors import (
    DuplicateToolError,
    RegistryError,
    RegistryFullError,
    ToolDefinitionError,
    ToolNotFound,
)
from tamma_tools.function_tool import tool
from tamma_tools.registry import (
    EXPORT_FORMAT,
    ImportReport,
    RegisteredTool,
    RegistryEvent,
    ToolRegistry,
)
from tamma_tools.types import CallerContext, ToolDefinition

CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def definition(
    name: str,
    *,
    description: str = "A tool.",
    category: str = "general",
    permissions: list[str] | None = None,
    tags: list[str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": parameters or CITY_SCHEMA,
        },
        "metadata": {
            "category": category,
            "permissions": permissions or [],
            "tags": tags or [],
        },
    }


def weather(city: str) -> str:
    return f"sunny in {city}"


@pytest.fixture
def registry() -> ToolRegistry:
    reg = ToolRegistry()
    reg.register(
        definition(
            "get_weather",
            description="Current weather for a city.",
            category="weather",
            tags=["forecast", "outdoors"],
        ),
        weather,
    )
    reg.register(
        definition(
            "read_file",
            description="Read a text file from the workspace.",
            category="filesystem",
            permissions=["file:read"],
        ),
        weather,
    )
    reg.register(
        definition(
            "write_file",
            description="Write a text file; replaces the weather report too.",
            category="filesystem",
            permissions=["file:read", "file:write"],
        ),
        weather,
    )
    return reg


@pytest.fixture
def events(registry: ToolRegistry) -> list[RegistryEvent]:
    seen: list[RegistryEvent] = []
    registry.subscribe(seen.append)
    return seen


# --- registering --------------------------------------------------------------------------


def test_register_a_dict_definition_with_executor() -> None:
    reg = ToolRegistry()
    entry = reg.register(definition("get_weather"), weather)
    assert isinstance(entry, RegisteredTool)
    assert entry.name == "get_weather" and entry.executor is weather and entry.enabled
    assert entry.is_async is False and entry.context_param is None
    assert reg.get("get_weather") is entry
    assert isinstance(entry.definition, ToolDefinition)


def test_register_a_tool_function_brings_its_executor_and_call_facts() -> None:
    @tool(category="weather", permissions=["net"])
    async def forecast(city: str, ctx: CallerContext) -> str:
        return city

    reg = ToolRegistry()
    entry = reg.register(forecast)
    assert entry.executor is forecast.executor
    assert entry.source is forecast and entry.source.fn is forecast.fn
    assert entry.is_async and entry.context_param == "ctx"
    assert reg.by_permission("net") == [entry]


def test_register_detects_async_and_context_of_plain_executors() -> None:
    async def lookup(city: str, who: CallerContext) -> str:
        return city

    entry = ToolRegistry().register(definition("lookup"), lookup)
    assert entry.is_async and entry.context_param == "who"


def test_invalid_definition_is_refused_with_every_issue(registry: ToolRegistry) -> None:
    bad = definition("bad name!", parameters={"type": "array"})
    with pytest.raises(ToolDefinitionError) as info:
        registry.register(bad, weather)
    assert info.value.code == "invalid_definition"
    paths = {issue.path for issue in info.value.issues}
    assert "function.name" in paths
    assert any(p.startswith("function.parameters") for p in paths)
    assert "bad name!" not in registry and len(registry) == 3


def test_malformed_input_is_a_definition_error_not_a_crash() -> None:
    reg = ToolRegistry()
    with pytest.raises(ToolDefinitionError) as info:
        reg.register({"type": "function"})
    assert any(issue.path == "function" for issue in info.value.issues)
    with pytest.raises(ToolDefinitionError, match="not int"):
        reg.register(42)  # type: ignore[arg-type]
    assert len(reg) == 0


def test_duplicate_name_is_refused_unless_replacing(registry: ToolRegistry) -> None:
    first = registry.get("get_weather")
    with pytest.raises(DuplicateToolError) as info:
        registry.register(definition("get_weather"), weather)
    assert info.value.code == "duplicate_tool"
    assert "already registered" in info.value.message
    assert registry.get("get_weather") is first
    replaced = registry.register(definition("get_weather", category="misc"), weather, replace=True)
    assert registry.get("get_weather") is replaced
    assert replaced.version > first.version
    assert registry.by_category("weather") == []
    assert registry.by_category("misc") == [replaced]


def test_full_registry_refuses_more() -> None:
    reg = ToolRegistry(max_tools=2)
    reg.register(definition("a"), weather)
    reg.register(definition("b"), weather)
    with pytest.raises(RegistryFullError) as info:
        reg.register(definition("c"), weather)
    assert info.value.code == "registry_full"
    assert "max_tools is 2" in info.value.message
    assert reg.names() == ["a", "b"]
    assert ToolRegistry().max_tools == 128  # OpenAI's per-request limit


def test_unregister_removes_the_tool_and_its_index_entries(
    registry: ToolRegistry, events: list[RegistryEvent]
) -> None:
    removed = registry.unregister("write_file")
    assert removed.name == "write_file"
    assert "write_file" not in registry
    assert registry.permissions() == ["file:read"]
    assert [e.name for e in registry.by_category("filesystem")] == ["read_file"]
    assert events == [RegistryEvent("unregistered", "write_file")]
    with pytest.raises(ToolNotFound):
        registry.unregister("write_file")


# --- lookup ---------------------------------------------------------------------------------


def test_get_unknown_tool_names_the_closest(registry: ToolRegistry) -> None:
    with pytest.raises(ToolNotFound) as info:
        registry.get("get_wether")
    assert info.value.code == "unknown_tool"
    assert "Did you mean: get_weather?" in info.value.message
    assert info.value.details["close"] == ["get_weather"]
    assert registry.find("get_wether") is None
    assert registry.find("get_weather") is registry.get("get_weather")


def test_container_protocol_and_order(registry: ToolRegistry) -> None:
    assert len(registry) == 3
    assert "read_file" in registry and "nope" not in registry
    assert [e.name for e in registry] == ["get_weather", "read_file", "write_file"]
    assert registry.names() == ["get_weather", "read_file", "write_file"]
    assert [e.name for e in registry.all()] == registry.names()


def test_categories_and_permissions(registry: ToolRegistry) -> None:
    assert registry.categories() == ["filesystem", "weather"]
    assert registry.permissions() == ["file:read", "file:write"]
    assert [e.name for e in registry.by_category("filesystem")] == ["read_file", "write_file"]
    assert [e.name for e in registry.by_permission("file:read")] == ["read_file", "write_file"]
    assert [e.name for e in registry.by_permission("file:write")] == ["write_file"]
    assert registry.by_permission("net") == []
    assert registry.has_permission("write_file", "file:write")
    assert not registry.has_permission("read_file", "file:write")
    with pytest.raises(ToolNotFound):
        registry.has_permission("nope", "file:read")


def test_search_ranks_name_then_tags_then_category_then_description(registry: ToolRegistry) -> None:
    assert [e.name for e in registry.search("read_file")] == ["read_file"]
    # "weather": in get_weather's name, and only in write_file's description.
    assert [e.name for e in registry.search("weather")] == ["get_weather", "write_file"]
    assert [e.name for e in registry.search("forecast")] == ["get_weather"]
    assert [e.name for e in registry.search("filesystem")] == ["read_file", "write_file"]
    assert [e.name for e in registry.search("FILE text")][:2] == ["read_file", "write_file"]
    assert [e.name for e in registry.search("wether")] == ["get_weather"]  # a typo still finds it
    assert registry.search("   ") == []
    assert registry.search("zzzz") == []
    assert len(registry.search("file", limit=1)) == 1


# --- enabling and executors -----------------------------------------------------------------


def test_enable_disable(registry: ToolRegistry, events: list[RegistryEvent]) -> None:
    entry = registry.get("read_file")
    version = entry.version
    registry.disable("read_file")
    registry.disable("read_file")  # no change, no event
    assert not registry.is_enabled("read_file") and not entry.enabled
    assert entry.version == version + 1
    registry.enable("read_file")
    assert registry.is_enabled("read_file")
    assert events == [RegistryEvent("disabled", "read_file"), RegistryEvent("enabled", "read_file")]
    with pytest.raises(ToolNotFound):
        registry.enable("nope")


def test_bind_executor_makes_an_imported_tool_callable() -> None:
    source = ToolRegistry()
    source.register(definition("lookup"), weather)
    target = ToolRegistry()
    report = target.import_(source.export())
    entry = target.get("lookup")
    assert report.imported == ["lookup"]
    assert entry.executor is None and not entry.callable

    async def lookup(city: str, ctx: CallerContext) -> str:
        return city

    version = entry.version
    target.bind_executor("lookup", lookup)
    assert entry.executor is lookup and entry.callable
    assert entry.is_async and entry.context_param == "ctx"
    assert entry.version == version + 1
    with pytest.raises(ToolNotFound):
        target.bind_executor("nope", lookup)


def test_bind_a_tool_function_uses_its_adapter() -> None:
    @tool
    def count(n: int = 2) -> int:
        return n

    reg = ToolRegistry()
    reg.register(count.definition)
    entry = reg.bind_executor("count", count)
    assert entry.executor is count.executor and entry.source is count
    assert entry.executor(n=None) == 2  # strict null -> the default, via the adapter


# --- events ---------------------------------------------------------------------------------


def test_subscribe_and_unsubscribe() -> None:
    reg = ToolRegistry()
    seen: list[RegistryEvent] = []
    unsubscribe = reg.subscribe(seen.append)
    reg.register(definition("a"), weather)
    unsubscribe()
    unsubscribe()  # twice is harmless
    reg.register(definition("b"), weather)
    assert seen == [RegistryEvent("registered", "a")]


def test_a_failing_listener_does_not_break_the_registry(caplog: pytest.LogCaptureFixture) -> None:
    reg = ToolRegistry()
    seen: list[str] = []

    def broken(event: RegistryEvent) -> None:
        raise RuntimeError("listener bug")

    reg.subscribe(broken)
    reg.subscribe(lambda e: seen.append(e.kind))
    with caplog.at_level(logging.ERROR, logger="tamma_tools.registry"):
        reg.register(definition("a"), weather)
    assert "a" in reg
    assert seen == ["registered"]
    assert "listener" in caplog.text and "listener bug" in caplog.text


# --- export / import ----------------------------------------------------------------------


def test_export_is_versioned_json_without_code(registry: ToolRegistry) -> None:
    registry.disable("read_file")
    data = registry.export()
    assert data["format"] == EXPORT_FORMAT == "tamma-tools.registry"
    assert data["version"] == 1
    assert [t["function"]["name"] for t in data["tools"]] == registry.names()
    read = data["tools"][1]
    assert read["enabled"] is False
    assert read["metadata"]["permissions"] == ["file:read"]
    assert read["type"] == "function"
    assert set(read) == {"type", "function", "metadata", "enabled"}
    assert orjson.loads(orjson.dumps(data)) == data  # plain JSON: no executors, no objects


def test_import_keeps_enabled_flags_and_metadata(registry: ToolRegistry) -> None:
    registry.disable("write_file")
    copy = ToolRegistry()
    report = copy.import_(orjson.dumps(registry.export()))
    assert report.ok and report.imported == ["get_weather", "read_file", "write_file"]
    assert not copy.is_enabled("write_file")
    assert copy.export() == registry.export()
    assert copy.permissions() == registry.permissions()


def _mixed_import() -> dict[str, Any]:
    good = definition("good_one")
    bad_name = definition("bad name")
    not_object = "just a string"
    bad_enabled = {**definition("flag"), "enabled": "yes"}
    twice = definition("good_one")
    existing = definition("taken")
    return {
        "format": EXPORT_FORMAT,
        "version": 1,
        "tools": [good, bad_name, not_object, bad_enabled, twice, existing],
    }


def test_skip_invalid_imports_the_valid_and_lists_every_refusal() -> None:
    reg = ToolRegistry()
    reg.register(definition("taken"), weather)
    seen: list[RegistryEvent] = []
    reg.subscribe(seen.append)
    report = reg.import_(_mixed_import(), mode="skip_invalid")
    assert report.imported == ["good_one"]
    assert [(r.index, r.name) for r in report.refused] == [
        (1, "bad name"),
        (2, None),
        (3, "flag"),
        (4, "good_one"),
        (5, "taken"),
    ]
    reasons = {r.index: r.reason for r in report.refused}
    assert "function.name" in reasons[1]
    assert "not a JSON object" in reasons[2]
    assert "'enabled' must be true or false" in reasons[3]
    assert "already registered" in reasons[4] and "already registered" in reasons[5]
    assert report.refused[0].issues  # the validator's issues travel with the refusal
    assert reg.names() == ["taken", "good_one"]
    kinds = [e.kind for e in seen]
    assert kinds.count("import_error") == 5
    assert kinds[-1] == "import_completed" and "imported 1" in (seen[-1].detail or "")
    assert RegistryEvent("registered", "good_one") in seen


def test_all_or_nothing_imports_nothing_when_one_is_refused() -> None:
    reg = ToolRegistry()
    reg.register(definition("taken"), weather)
    report = reg.import_(_mixed_import())
    assert report.imported == []
    assert report.rolled_back == ["good_one"]
    assert len(report.refused) == 5 and not report.ok
    assert reg.names() == ["taken"]


def test_import_past_capacity_refuses_the_overflow() -> None:
    reg = ToolRegistry(max_tools=2)
    data = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "tools": [definition("a"), definition("b"), definition("c")],
    }
    report = reg.import_(data, mode="skip_invalid")
    assert report.imported == ["a", "b"]
    assert [(r.name, "max_tools is 2" in r.reason) for r in report.refused] == [("c", True)]


@pytest.mark.parametrize(
    "data",
    [
        {"format": "something-else", "version": 1, "tools": []},
        {"format": EXPORT_FORMAT, "version": 2, "tools": []},
        {"format": EXPORT_FORMAT, "version": True, "tools": []},
        {"format": EXPORT_FORMAT, "version": 1},
        [],
        "{not json",
    ],
    ids=["format", "version", "bool-version", "no-tools", "array", "bad-json"],
)
def test_unknown_document_is_refused_whole(data: Any, registry: ToolRegistry) -> None:
    before = registry.export()
    seen: list[RegistryEvent] = []
    registry.subscribe(seen.append)
    with pytest.raises(RegistryError) as info:
        registry.import_(data)
    assert info.value.code == "invalid_import"
    assert registry.export() == before
    assert [e.kind for e in seen] == ["import_error"]


def test_format_error_names_what_was_expected() -> None:
    with pytest.raises(RegistryError) as info:
        ToolRegistry().import_({"format": "x", "version": 9, "tools": []})
    assert "expected format 'tamma-tools.registry' and version 1" in info.value.message
    assert "found format 'x' and version 9" in info.value.message


def test_import_report_summary() -> None:
    report = ImportReport(mode="skip_invalid", imported=["a"])
    assert report.ok and report.summary() == "imported 1"


# --- concurrency --------------------------------------------------------------------------


def test_concurrent_registration_loses_nothing_and_never_exceeds_max() -> None:
    reg = ToolRegistry(max_tools=100)
    errors: list[Exception] = []

    def worker(offset: int) -> None:
        for i in range(20):
            try:
                reg.register(definition(f"t{offset}_{i}"), weather)
            except RegistryFullError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reg) == 100
    assert len(errors) == 60
    assert len(reg.by_category("general")) == 100


# --- property: export -> import -> export is the identity -----------------------------------

_name = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=64)
_word = st.text(alphabet=string.ascii_lowercase + ":._", min_size=1, max_size=12)
_property_schema = st.sampled_from(
    [
        {"type": "string"},
        {"type": "integer", "minimum": 0},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "array", "items": {"type": "string"}},
        {"type": "string", "enum": ["a", "b"]},
    ]
)


@st.composite
def tool_definitions(draw: st.DrawFn, name: str) -> dict[str, Any]:
    props = draw(st.dictionaries(_word, _property_schema, max_size=4))
    required = draw(st.lists(st.sampled_from(sorted(props)), unique=True)) if props else []
    parameters: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        parameters["required"] = required
    function: dict[str, Any] = {"name": name, "parameters": parameters}
    description = draw(st.none() | st.text(max_size=200))
    if description is not None:
        function["description"] = description
    rate = draw(
        st.none()
        | st.fixed_dictionaries(
            {},
            optional={
                "calls_per_minute": st.integers(1, 1000),
                "calls_per_hour": st.integers(1, 10000),
                "calls_per_day": st.integers(1, 100000),
            },
        )
    )
    metadata = {
        "category": draw(_word),
        "permissions": draw(st.lists(_word, max_size=3)),
        "timeout_s": draw(st.none() | st.floats(0.001, 3600)),
        "rate_limit": rate,
        "isolation": draw(st.sampled_from([None, "in_process", "worker", "process"])),
        "requires_approval": draw(st.booleans()),
        "idempotent": draw(st.booleans()),
        "read_only": draw(st.booleans()),
        "destructive": draw(st.booleans()),
        "open_world": draw(st.booleans()),
        "max_output_bytes": draw(st.none() | st.integers(0, 10**9)),
        "tags": draw(st.lists(_word, max_size=3)),
    }
    return {
        "type": "function",
        "function": function,
        "metadata": metadata,
        "enabled": draw(st.booleans()),
    }


@st.composite
def registries(draw: st.DrawFn) -> ToolRegistry:
    names = draw(st.lists(_name, unique=True, max_size=8))
    reg = ToolRegistry()
    for name in names:
        raw = draw(tool_definitions(name))
        enabled = raw.pop("enabled")
        reg.register(raw, enabled=enabled)
    return reg


@settings(max_examples=75, deadline=None)
@given(registries())
def test_any_export_reimports_to_an_equal_registry(original: ToolRegistry) -> None:
    exported = original.export()
    copy = ToolRegistry()
    report = copy.import_(orjson.loads(orjson.dumps(exported)))
    assert report.ok, report.summary()
    assert report.imported == original.names()
    assert copy.export() == exported
    for entry in copy:
        source = original.get(entry.name)
        assert entry.definition == source.definition
        assert entry.enabled == source.enabled
        assert entry.executor is None
    assert copy.categories() == original.categories()
    assert copy.permissions() == original.permissions()


def test_search_weights_name_over_tags_over_category() -> None:
    reg = ToolRegistry()
    reg.register(definition("filed", description="Report on it.", category="report"), weather)
    reg.register(definition("summarize", description="Makes a report.", tags=["report"]), weather)
    reg.register(definition("weather_report", description="Shows data."), weather)
    # name 6 > tag 4 + description 1 > category 3 + description 1; ties keep registration order.
    assert [e.name for e in reg.search("report")] == ["weather_report", "summarize", "filed"]
    assert [e.name for e in reg.search("weather_report")] == ["weather_report"]


def test_registry_keeps_its_own_copy_of_a_definition() -> None:
    original = ToolDefinition.model_validate(definition("probe", permissions=["a"]))
    reg = ToolRegistry()
    reg.register(original, weather)
    original.metadata.permissions.append("b")
    original.function.description = "changed"
    entry = reg.get("probe")
    assert entry.definition.metadata.permissions == ["a"]
    assert entry.definition.function.description == "A tool."
    assert reg.permissions() == ["a"]


def test_replacing_says_so_in_the_event() -> None:
    reg = ToolRegistry()
    reg.register(definition("a"), weather)
    seen: list[RegistryEvent] = []
    reg.subscribe(seen.append)
    reg.register(definition("a"), weather, replace=True)
    assert seen == [RegistryEvent("registered", "a", "replaced")]


def test_readers_never_fail_while_writers_change_the_registry() -> None:
    reg = ToolRegistry(max_tools=1000)
    stop = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        i = 0
        while not stop.is_set():
            name = f"w{i % 50}"
            if name in reg:
                reg.unregister(name)
            else:
                reg.register(definition(name, category=f"c{i % 3}", permissions=["p"]), weather)
            i += 1

    def read() -> None:
        try:
            for _ in range(300):
                reg.search("w1")
                reg.by_category("c1")
                reg.by_permission("p")
                reg.export()
                list(reg)
        except BaseException as exc:  # any error from a reader is the failure we look for
            failures.append(exc)

    writer = threading.Thread(target=write)
    readers = [threading.Thread(target=read) for _ in range(3)]
    writer.start()
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    writer.join()
    assert failures == []


@settings(max_examples=40, deadline=None)
@given(registries(), st.data())
def test_search_by_exact_name_ranks_that_tool_first(
    original: ToolRegistry, data: st.DataObject
) -> None:
    names = original.names()
    if not names:
        assert original.search("anything") == []
        return
    name = data.draw(st.sampled_from(names))
    hits = original.search(name)
    assert hits[0].name == name
