"""Wire types: OpenAI's tool and tool-call JSON, plus the metadata tamma-tools adds.

A round trip through these types never changes the JSON the API sends or accepts:
``ToolDefinition.model_validate(d).to_openai() == d`` for every definition the API takes.
Everywhere the library takes one of these types it also takes the plain dict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = [
    "CallerContext",
    "FunctionCall",
    "FunctionCallFunction",
    "FunctionDefinition",
    "FunctionResult",
    "Isolation",
    "RateLimit",
    "ResourceLimits",
    "ToolDefinition",
    "ToolMetadata",
    "ValidationIssue",
    "ValidationResult",
    "as_function_call",
    "as_tool_definition",
]

Isolation: TypeAlias = Literal["in_process", "worker", "process"]
"""Where a tool runs: in the caller's process, in a persistent worker, or a fresh child per call."""


class RateLimit(BaseModel):
    """Calls allowed per tool and caller in each window; ``None`` means no limit for that window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calls_per_minute: int | None = None
    calls_per_hour: int | None = None
    calls_per_day: int | None = None

    def windows(self) -> list[tuple[float, int]]:
        """(window length in seconds, allowed calls) for each configured window."""
        out: list[tuple[float, int]] = []
        for seconds, limit in (
            (60.0, self.calls_per_minute),
            (3600.0, self.calls_per_hour),
            (86400.0, self.calls_per_day),
        ):
            if limit is not None:
                out.append((seconds, limit))
        return out


class ToolMetadata(BaseModel):
    """What tamma-tools knows about a tool beyond OpenAI's definition. Never sent to the model."""

    model_config = ConfigDict(extra="forbid")

    category: str = "general"
    permissions: list[str] = Field(default_factory=list)
    """Every permission listed must be granted to the caller (deny by default)."""
    timeout_s: float | None = None
    """Wall-clock limit; the smallest of this, the manager's and the caller's limit wins."""
    rate_limit: RateLimit | None = None
    isolation: Isolation | None = None
    """``None`` lets the sandbox choose: in-process for built-ins, ``process`` for user tools."""
    requires_approval: bool = False
    idempotent: bool = False
    """Identical calls in one batch may run once and share the result."""
    read_only: bool = False
    """The tool neither writes nor sends anything; only such tools get truncated input repaired."""
    destructive: bool = False
    open_world: bool = False
    """The tool talks to the outside world (network)."""
    max_output_bytes: int | None = None
    tags: list[str] = Field(default_factory=list)


class FunctionDefinition(BaseModel):
    """OpenAI's ``function`` object: name, description, JSON-Schema parameters, strict."""

    model_config = ConfigDict(extra="allow")

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    _key_order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_key_order(cls, data: Any, handler: Any) -> Any:
        # A round trip keeps the caller's key order, so the JSON *bytes* come back unchanged too.
        model = handler(data)
        if isinstance(data, dict) and isinstance(model, FunctionDefinition):
            model._key_order = tuple(data)
        return model

    def to_openai(self) -> dict[str, Any]:
        dumped = self.model_dump(exclude_unset=True)
        if not self._key_order:
            return dumped
        ordered = {k: dumped[k] for k in self._key_order if k in dumped}
        ordered.update((k, v) for k, v in dumped.items() if k not in ordered)
        return ordered


class ToolDefinition(BaseModel):
    """A tool as OpenAI's Chat Completions API takes it, plus tamma-tools metadata."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionDefinition
    metadata: ToolMetadata = Field(default_factory=ToolMetadata)

    @property
    def name(self) -> str:
        return self.function.name

    def to_openai(self) -> dict[str, Any]:
        """Exactly what the API takes: no metadata, no field the input did not have."""
        return {"type": "function", "function": self.function.to_openai()}

    def to_responses(self) -> dict[str, Any]:
        """The Responses API's flat ``function`` tool shape."""
        fn = self.function.model_dump(exclude_unset=True)
        return {"type": "function", **fn}


class FunctionCallFunction(BaseModel):
    """The ``function`` part of a tool call: name and the arguments as a JSON string."""

    model_config = ConfigDict(extra="allow")

    name: str
    arguments: str = ""

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_as_string(cls, value: Any) -> Any:
        # Some servers (Ollama, older vLLM) send arguments as an object; the wire type is a string.
        if isinstance(value, dict | list):
            return orjson.dumps(value).decode()
        if value is None:
            return ""
        return value


class FunctionCall(BaseModel):
    """One tool call from the model: ``{"id", "type", "function": {name, arguments}}``."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCallFunction

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def arguments(self) -> str:
        return self.function.arguments

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.function.name, "arguments": self.function.arguments},
        }


@dataclass(frozen=True, slots=True)
class ResourceLimits:
    """A caller's own ceilings; the effective limit is the smallest of config, tool and caller."""

    timeout_s: float | None = None
    max_memory_bytes: int | None = None
    max_output_bytes: int | None = None


NO_RESOURCE_LIMITS = ResourceLimits()
"""Shared by every context without limits (frozen), so the manager's check is one identity test."""


@dataclass(frozen=True, slots=True)
class CallerContext:
    """Who is calling. Immutable: nothing a call does can widen its own context.

    A tool parameter annotated with ``CallerContext`` receives it and never appears in the schema.
    """

    user_id: str = "anonymous"
    session_id: str | None = None
    roles: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    resource_limits: ResourceLimits = NO_RESOURCE_LIMITS

    def __post_init__(self) -> None:
        # Accept any iterable for convenience but store frozensets so the context stays immutable.
        if not isinstance(self.roles, frozenset):
            object.__setattr__(self, "roles", frozenset(self.roles))
        if not isinstance(self.permissions, frozenset):
            object.__setattr__(self, "permissions", frozenset(self.permissions))


@dataclass(slots=True)
class ValidationIssue:
    """One violation: where (a JSON path like ``function.parameters.properties.city.type``),
    a stable code, and a message a developer understands at once."""

    path: str
    message: str
    code: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message} [{self.code}]"


@dataclass(slots=True)
class ValidationResult:
    """Outcome of validating a definition or a list of them."""

    valid: bool
    errors: list[ValidationIssue] = field(default_factory=list)
    warnings: list[ValidationIssue] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.valid

    def summary(self) -> str:
        return "; ".join(str(e) for e in self.errors)


@dataclass(slots=True)
class FunctionResult:
    """The outcome of one tool call; ``to_message()`` is the tool message the model gets."""

    tool_call_id: str
    function_name: str
    success: bool
    result: Any = None
    error: str | None = None
    error_code: str | None = None
    execution_time_ms: float = 0.0
    timestamp: float = field(default_factory=time.time)
    repairs: list[str] = field(default_factory=list)
    """Every repair applied to the arguments before they were accepted."""
    truncated_bytes: int = 0
    """How many bytes of output were cut by the output cap."""
    content: str | None = None
    """The serialised result, cached so it is encoded once."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.error_code == "approval_pending"

    def content_text(self) -> str:
        if self.content is not None:
            return self.content
        if not self.success:
            text = f"Error [{self.error_code or 'error'}]: {self.error or 'the call failed'}"
        elif isinstance(self.result, str):
            text = self.result
        else:
            text = orjson.dumps(self.result, option=orjson.OPT_NON_STR_KEYS).decode()
        self.content = text
        return text

    def to_message(self) -> dict[str, Any]:
        return {"role": "tool", "tool_call_id": self.tool_call_id, "content": self.content_text()}


def as_tool_definition(defn: ToolDefinition | dict[str, Any]) -> ToolDefinition:
    """Accept a ``ToolDefinition`` or the OpenAI-shaped dict (with optional ``metadata``)."""
    if isinstance(defn, ToolDefinition):
        return defn
    return ToolDefinition.model_validate(defn)


def as_function_call(call: FunctionCall | dict[str, Any] | Any) -> FunctionCall:
    """Accept our type, the OpenAI dict, or an SDK ``ChatCompletionMessageToolCall`` object."""
    if isinstance(call, FunctionCall):
        return call
    if isinstance(call, dict):
        return FunctionCall.model_validate(call)
    dump = getattr(call, "model_dump", None)
    if dump is not None:
        return FunctionCall.model_validate(dump())
    raise TypeError(f"not a tool call: {type(call).__name__}")
