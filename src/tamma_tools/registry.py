"""``ToolRegistry``: the tools an application offers, with their metadata, indexes and events.

Definitions are validated on the way in (OpenAI's rules and ours, via
``schema.definition.validate_tool_definition``), so everything in a registry can be sent to a
model as is. Each entry (``RegisteredTool``) carries what the manager needs to call the tool
without reflection (``is_async``, ``context_param``) and a ``version`` that changes whenever the
entry does, so per-tool state prepared elsewhere can be cached and invalidated.

Mutations take a lock; lookups (``find``/``get``) read a dict and take none, as the manager calls
them once per tool call.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NoReturn, TypeAlias

import orjson
from pydantic import ValidationError

from tamma_tools.errors import (
    DuplicateToolError,
    RegistryError,
    RegistryFullError,
    ToolDefinitionError,
    ToolNotFound,
)
from tamma_tools.function_tool import FunctionTool, describe_executor
from tamma_tools.types import ToolDefinition, ValidationIssue, ValidationResult

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_VERSION",
    "ImportMode",
    "ImportReport",
    "RefusedTool",
    "RegisteredTool",
    "RegistryEvent",
    "RegistryEventKind",
    "ToolRegistry",
]

log = logging.getLogger(__name__)

EXPORT_FORMAT: Final = "tamma-tools.registry"
EXPORT_VERSION: Final = 1
DEFAULT_MAX_TOOLS: Final = 128
"""OpenAI takes at most 128 tools per request (openai-tool-rules.md section 1)."""

ImportMode: TypeAlias = Literal["all_or_nothing", "skip_invalid"]
RegistryEventKind: TypeAlias = Literal[
    "registered",
    "unregistered",
    "enabled",
    "disabled",
    "executor_bound",
    "import_error",
    "import_completed",
]

DUPLICATE = "a tool named {name!r} is already registered; unregister it first or pass replace=True"
FULL = (
    "the registry is full: it holds {count} tools and max_tools is {max_tools} "
    "(OpenAI accepts at most 128 per request); unregister a tool or raise max_tools"
)
NOT_FOUND = "no tool named {name!r} is registered.{hint} Registered tools: {names}"
NOT_A_TOOL = (
    "register() takes a ToolDefinition, an OpenAI tool dict or a @tool function, not {kind}"
)
BAD_FORMAT = (
    "not a tamma-tools registry export: expected format {expected!r} and version {version}, "
    "found format {found!r} and version {found_version!r}"
)
_FUZZY_CUTOFF = 0.8


@dataclass(slots=True, eq=False)
class RegisteredTool:
    """One registry entry: the definition, how to call it, and whether it may be called."""

    definition: ToolDefinition
    executor: Callable[..., Any] | None = None
    """``None`` for a tool imported without code: listed, not callable until one is bound."""
    enabled: bool = True
    is_async: bool = False
    context_param: str | None = None
    """Keyword that receives the ``CallerContext``; the manager adds it to the arguments."""
    source: FunctionTool[..., Any] | None = None
    """The ``@tool`` it came from (original ``fn``, call plan), when it came from one."""
    version: int = 0
    """Bumped by every change to this entry; cache prepared state keyed on (name, version)."""

    @property
    def name(self) -> str:
        return self.definition.function.name

    @property
    def callable(self) -> bool:
        return self.enabled and self.executor is not None

    def _bind(self, code: Callable[..., Any]) -> None:
        """Take ``code`` as the executor; a ``@tool`` brings its adapter and call facts."""
        if isinstance(code, FunctionTool):
            self.source = code
            self.executor = code.executor
        else:
            self.executor = code
        info = describe_executor(code)
        self.is_async, self.context_param = info.is_async, info.context_param
        self.version += 1


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """Something that happened to a registry; ``detail`` says more for import events."""

    kind: RegistryEventKind
    tool: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RefusedTool:
    """A tool an import did not take, and why (never dropped without a reason)."""

    index: int
    name: str | None
    reason: str
    issues: tuple[ValidationIssue, ...] = ()


@dataclass(slots=True)
class ImportReport:
    """The outcome of ``ToolRegistry.import_``: every tool in the input is in one list."""

    mode: ImportMode
    imported: list[str] = field(default_factory=list)
    refused: list[RefusedTool] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    """Valid tools left out because ``all_or_nothing`` refused the whole import."""

    @property
    def ok(self) -> bool:
        return not self.refused

    def summary(self) -> str:
        parts = [f"imported {len(self.imported)}"]
        if self.refused:
            reasons = "; ".join(f"#{r.index} {r.name or '?'}: {r.reason}" for r in self.refused)
            parts.append(f"refused {len(self.refused)} ({reasons})")
        if self.rolled_back:
            parts.append(f"rolled back {len(self.rolled_back)}")
        return ", ".join(parts)


def _validate(defn: ToolDefinition) -> ValidationResult:
    # Imported here: the definition validator lives with the schema rules, which import us not.
    from tamma_tools.schema.definition import validate_tool_definition

    return validate_tool_definition(defn)


def _invalid(defn_name: str, result: ValidationResult) -> ToolDefinitionError:
    return ToolDefinitionError(
        f"tool {defn_name!r} has an invalid definition: {result.summary()}",
        issues=result.errors,
    )


def _as_definition(value: Any) -> ToolDefinition:
    if isinstance(value, ToolDefinition):
        return value
    if isinstance(value, Mapping):
        try:
            return ToolDefinition.model_validate(dict(value))
        except ValidationError as exc:
            issues = [
                ValidationIssue(
                    path=".".join(str(p) for p in e["loc"]), message=e["msg"], code="malformed"
                )
                for e in exc.errors()
            ]
            text = "; ".join(str(i) for i in issues)
            raise ToolDefinitionError(f"not a tool definition: {text}", issues=issues) from None
    raise ToolDefinitionError(NOT_A_TOOL.format(kind=type(value).__name__))


class ToolRegistry:
    """The tools an application offers, indexed by name, category and permission."""

    def __init__(self, max_tools: int = DEFAULT_MAX_TOOLS) -> None:
        if max_tools < 1:
            raise ValueError(f"max_tools must be at least 1, got {max_tools}")
        self.max_tools = max_tools
        self._tools: dict[str, RegisteredTool] = {}
        self._by_category: dict[str, set[str]] = {}
        self._by_permission: dict[str, set[str]] = {}
        self._subscribers: list[Callable[[RegistryEvent], None]] = []
        self._lock = threading.RLock()

    # --- container protocol ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[RegisteredTool]:
        return iter(list(self._tools.values()))

    def __repr__(self) -> str:
        return f"ToolRegistry({len(self)} tools, max_tools={self.max_tools})"

    # --- registering ----------------------------------------------------------------------

    def register(
        self,
        tool: ToolDefinition | Mapping[str, Any] | FunctionTool[..., Any],
        executor: Callable[..., Any] | None = None,
        *,
        enabled: bool = True,
        replace: bool = False,
    ) -> RegisteredTool:
        """Add a tool; a ``@tool`` function brings its own executor unless one is given.

        Raises ``ToolDefinitionError`` (with ``issues``), ``DuplicateToolError`` or
        ``RegistryFullError``; the registry is unchanged when it raises.
        """
        source: FunctionTool[..., Any] | None = None
        if isinstance(tool, FunctionTool):
            source = tool
            tool = tool.definition
        # A private copy: the caller changing its object later must not bypass the indexes.
        defn = _as_definition(tool).model_copy(deep=True)
        result = _validate(defn)
        if not result.valid:
            raise _invalid(defn.function.name, result)
        entry = RegisteredTool(definition=defn, enabled=enabled, source=source)
        code = executor if executor is not None else source
        if code is not None:
            entry._bind(code)
            entry.version = 0
        with self._lock:
            replaced = self._insert(entry, replace=replace)
        self._emit(RegistryEvent("registered", entry.name, "replaced" if replaced else None))
        return entry

    def _insert(self, entry: RegisteredTool, *, replace: bool) -> bool:
        """Add ``entry`` to the table and indexes; whether it replaced one (lock held)."""
        name = entry.name
        old = self._tools.get(name)
        if old is not None:
            if not replace:
                raise DuplicateToolError(DUPLICATE.format(name=name), tool=name)
            self._unindex(old)
            entry.version = old.version + 1
        elif len(self._tools) >= self.max_tools:
            raise RegistryFullError(
                FULL.format(count=len(self._tools), max_tools=self.max_tools), tool=name
            )
        self._tools[name] = entry
        meta = entry.definition.metadata
        self._by_category.setdefault(meta.category, set()).add(name)
        for perm in meta.permissions:
            self._by_permission.setdefault(perm, set()).add(name)
        return old is not None

    def _unindex(self, entry: RegisteredTool) -> None:
        meta = entry.definition.metadata
        pairs = [(self._by_category, meta.category)]
        pairs += [(self._by_permission, perm) for perm in meta.permissions]
        for index, key in pairs:
            names = index.get(key)
            if names is not None:
                names.discard(entry.name)
                if not names:
                    del index[key]

    def unregister(self, name: str) -> RegisteredTool:
        """Remove a tool and return its entry; ``ToolNotFound`` if there is none."""
        with self._lock:
            entry = self.get(name)
            del self._tools[name]
            self._unindex(entry)
        self._emit(RegistryEvent("unregistered", name))
        return entry

    def bind_executor(self, name: str, fn: Callable[..., Any]) -> RegisteredTool:
        """Give a registered (e.g. imported) tool the code that runs it, or replace that code."""
        with self._lock:
            entry = self.get(name)
            entry._bind(fn)
        self._emit(RegistryEvent("executor_bound", name))
        return entry

    # --- lookup ---------------------------------------------------------------------------

    def find(self, name: str) -> RegisteredTool | None:
        return self._tools.get(name)

    def get(self, name: str) -> RegisteredTool:
        """The entry for ``name``; ``ToolNotFound`` names the closest registered tools."""
        entry = self._tools.get(name)
        if entry is not None:
            return entry
        names = list(self._tools)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5) if names else []
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        listed = ", ".join(sorted(names)[:20]) or "none"
        raise ToolNotFound(
            NOT_FOUND.format(name=name, hint=hint, names=listed), tool=name, close=close
        )

    def all(self) -> list[RegisteredTool]:
        """Every entry, in registration order.

        A snapshot: readers take no lock, and copying the table in one C-level step is what
        keeps a Python-level loop over it safe while another thread registers.
        """
        return list(self._tools.values())

    def names(self) -> list[str]:
        return list(self._tools)

    def by_category(self, category: str) -> list[RegisteredTool]:
        names = frozenset(self._by_category.get(category, ()))
        return [e for e in self.all() if e.name in names]

    def by_permission(self, permission: str) -> list[RegisteredTool]:
        """Tools that require ``permission``."""
        names = frozenset(self._by_permission.get(permission, ()))
        return [e for e in self.all() if e.name in names]

    def categories(self) -> list[str]:
        return sorted(self._by_category)

    def permissions(self) -> list[str]:
        return sorted(self._by_permission)

    def has_permission(self, tool: str, permission: str) -> bool:
        """Whether calling ``tool`` requires ``permission``."""
        return permission in self.get(tool).definition.metadata.permissions

    def search(self, query: str, *, limit: int | None = None) -> list[RegisteredTool]:
        """Tools matching ``query`` in name, description, category or tags, best first.

        Ranking: exact name, then name prefix, then each query word found in the name
        (weight 6), tags (4), category (3), description (1); typos in the name still
        score by similarity. Ties keep registration order.
        """
        text = query.strip().lower()
        if not text:
            return []
        words = text.split()
        scored: list[tuple[float, int, RegisteredTool]] = []
        for order, entry in enumerate(self.all()):
            score = _score(entry, text, words)
            if entry.name == query.strip():
                score += 1  # "Read" and "read" may both exist: the exact spelling wins
            if score > 0:
                scored.append((-score, order, entry))
        scored.sort(key=lambda item: (item[0], item[1]))
        hits = [entry for _, _, entry in scored]
        return hits if limit is None else hits[:limit]

    # --- enabling -------------------------------------------------------------------------

    def enable(self, name: str) -> None:
        self._set_enabled(name, True)

    def disable(self, name: str) -> None:
        """Keep the tool registered but refuse calls to it and leave it out of tool lists."""
        self._set_enabled(name, False)

    def is_enabled(self, name: str) -> bool:
        return self.get(name).enabled

    def _set_enabled(self, name: str, enabled: bool) -> None:
        with self._lock:
            entry = self.get(name)
            if entry.enabled == enabled:
                return
            entry.enabled = enabled
            entry.version += 1
        self._emit(RegistryEvent("enabled" if enabled else "disabled", name))

    # --- events ---------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[RegistryEvent], None]) -> Callable[[], None]:
        """Call ``callback`` for every event; returns the function that unsubscribes it."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, event: RegistryEvent) -> None:
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                # A broken listener must not undo or block a registry change that already happened.
                log.exception("registry event listener %r failed on %s", callback, event.kind)

    # --- export / import ------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Versioned JSON of every definition, its metadata and enabled flag (never code)."""
        tools: list[dict[str, Any]] = []
        for entry in self.all():
            defn = entry.definition
            tools.append(
                {
                    **defn.to_openai(),
                    "metadata": defn.metadata.model_dump(mode="json"),
                    "enabled": entry.enabled,
                }
            )
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "tools": tools}

    def import_(
        self, data: Mapping[str, Any] | str | bytes, mode: ImportMode = "all_or_nothing"
    ) -> ImportReport:
        """Add the tools of an ``export()``; each is validated and either imported or refused.

        ``all_or_nothing`` imports nothing when any tool is refused; ``skip_invalid`` imports
        the valid ones. Imported tools have no executor until ``bind_executor``. A document of
        another format or version raises ``RegistryError`` and changes nothing.
        """
        if mode not in ("all_or_nothing", "skip_invalid"):
            raise ValueError(f"mode must be 'all_or_nothing' or 'skip_invalid', got {mode!r}")
        doc = self._read_document(data)
        report = ImportReport(mode=mode)
        accepted: list[RegisteredTool] = []
        with self._lock:
            seen: set[str] = set()
            room = self.max_tools - len(self._tools)
            for index, item in enumerate(doc["tools"]):
                entry, refusal = self._import_one(index, item, seen)
                if refusal is None and entry is not None and len(accepted) >= room:
                    refusal = RefusedTool(
                        index, entry.name, FULL.format(count=len(self._tools) + len(accepted),
                                                       max_tools=self.max_tools),
                    )  # fmt: skip
                if refusal is not None:
                    report.refused.append(refusal)
                elif entry is not None:
                    seen.add(entry.name)
                    accepted.append(entry)
            if report.refused and mode == "all_or_nothing":
                report.rolled_back = [e.name for e in accepted]
                accepted = []
            for entry in accepted:
                self._insert(entry, replace=False)
                report.imported.append(entry.name)
        for refused in report.refused:
            self._emit(RegistryEvent("import_error", refused.name, refused.reason))
        for entry in accepted:
            self._emit(RegistryEvent("registered", entry.name))
        self._emit(RegistryEvent("import_completed", None, report.summary()))
        return report

    def _read_document(self, data: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
        doc: Any = data
        if isinstance(data, str | bytes):
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                self._refuse_document(f"the import is not valid JSON: {exc}")
        if not isinstance(doc, Mapping):
            self._refuse_document(f"the import must be a JSON object, not {type(doc).__name__}")
        found, found_version = doc.get("format"), doc.get("version")
        if (
            found != EXPORT_FORMAT
            or found_version != EXPORT_VERSION
            or isinstance(found_version, bool)
        ):
            self._refuse_document(
                BAD_FORMAT.format(
                    expected=EXPORT_FORMAT, version=EXPORT_VERSION, found=found,
                    found_version=found_version,
                )
            )  # fmt: skip
        if not isinstance(doc.get("tools"), list):
            self._refuse_document("the import has no 'tools' list")
        return doc

    def _refuse_document(self, message: str) -> NoReturn:
        self._emit(RegistryEvent("import_error", None, message))
        raise RegistryError(message, code="invalid_import")

    def _import_one(
        self, index: int, item: Any, seen: set[str]
    ) -> tuple[RegisteredTool | None, RefusedTool | None]:
        if not isinstance(item, Mapping):
            return None, RefusedTool(index, None, f"not a JSON object but {type(item).__name__}")
        raw = dict(item)
        enabled = raw.pop("enabled", True)
        name = _name_of(raw)
        if not isinstance(enabled, bool):
            return None, RefusedTool(index, name, "'enabled' must be true or false")
        try:
            defn = _as_definition(raw)
        except ToolDefinitionError as exc:
            return None, RefusedTool(index, name, exc.message, tuple(exc.issues))
        result = _validate(defn)
        if not result.valid:
            return None, RefusedTool(index, name, result.summary(), tuple(result.errors))
        if defn.name in self._tools or defn.name in seen:
            return None, RefusedTool(index, defn.name, DUPLICATE.format(name=defn.name))
        return RegisteredTool(definition=defn, enabled=enabled), None


def _name_of(raw: Mapping[str, Any]) -> str | None:
    function = raw.get("function")
    name = function.get("name") if isinstance(function, Mapping) else None
    return name if isinstance(name, str) else None


def _score(entry: RegisteredTool, text: str, words: list[str]) -> float:
    defn = entry.definition
    name = defn.function.name.lower()
    description = (defn.function.description or "").lower()
    meta = defn.metadata
    category = meta.category.lower()
    tags = [t.lower() for t in meta.tags]
    score = 0.0
    if name == text:
        score += 100
    elif name.startswith(text):
        score += 30
    for word in words:
        if word in name:
            score += 6
        if any(word in tag for tag in tags):
            score += 4
        if word in category:
            score += 3
        if word in description:
            score += 1
    if score == 0:
        # "wether" still finds get_weather: a near miss on a name part or tag scores below any
        # substring hit, by how close it is.
        parts = [*re.split(r"[_\-\s]+", name), name, *tags]
        for word in words:
            best = max(difflib.SequenceMatcher(None, word, part).ratio() for part in parts)
            if best >= _FUZZY_CUTOFF:
                score += best / len(words)
    return score
