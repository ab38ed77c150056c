"""What the manager derives once per tool, so the call path does no per-call set-up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tamma_tools.manager.config import ManagerConfig
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.schema.validator import ArgumentsValidator, compile_validator
from tamma_tools.types import ToolDefinition

if TYPE_CHECKING:
    from collections.abc import Callable

    from tamma_tools.registry import RegisteredTool

__all__ = ["Prepared"]


class Prepared:
    """Everything the call path needs about one tool, derived once from its registry entry."""

    __slots__ = (
        "context_param",
        "definition",
        "entry",
        "executor",
        "has_params",
        "idempotent",
        "is_async",
        "isolation",
        "max_output_bytes",
        "name",
        "nullable_required",
        "permissions",
        "read_only",
        "requires_approval",
        "timeout_s",
        "validator",
        "version",
        "windows",
    )  # fmt: skip

    def __init__(self, entry: RegisteredTool, config: ManagerConfig, sandbox: SandboxConfig):
        defn: ToolDefinition = entry.definition
        meta = defn.metadata
        params = defn.function.parameters
        self.entry = entry
        self.version = entry.version
        self.definition = defn
        self.name = defn.function.name
        self.executor: Callable[..., Any] | None = entry.executor
        self.is_async: bool = entry.is_async
        self.context_param: str | None = entry.context_param
        self.validator: ArgumentsValidator = compile_validator(params)
        self.has_params = bool(params and params.get("properties"))
        self.nullable_required = _nullable_required(params) if defn.function.strict else ()
        self.permissions = frozenset(meta.permissions)
        self.windows = meta.rate_limit.windows() if meta.rate_limit else []
        self.requires_approval = meta.requires_approval
        self.idempotent = meta.idempotent
        self.read_only = meta.read_only
        self.isolation = meta.isolation or sandbox.default_isolation
        self.timeout_s = min(
            t
            for t in (config.default_timeout_s, meta.timeout_s, sandbox.max_execution_time_s)
            if t is not None
        )
        self.max_output_bytes = min(
            b
            for b in (config.max_output_bytes, meta.max_output_bytes, sandbox.max_output_bytes)
            if b is not None
        )


def _admits_null(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_admits_null(branch) for branch in schema.get("anyOf") or ())


def _nullable_required(params: dict[str, Any] | None) -> tuple[str, ...]:
    """Top-level required properties of a strict schema that may be null.

    In strict mode "optional" is spelled required-and-nullable, and OpenAI's models always send
    such fields. Other servers (Ollama, vLLM, ...) ignore ``strict`` and leave them out; the
    manager then fills them with null, which is exactly what a strict model would have sent.
    """
    if not params:
        return ()
    props = params.get("properties") or {}
    return tuple(name for name in params.get("required") or () if _admits_null(props.get(name)))
