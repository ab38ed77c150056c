"""tamma-tools: safe, fast, observable function calling for AI agents.

The public surface is re-exported here; submodules hold one concept each (see the README's
architecture section). Heavier parts (the provider and its SDK, observability, the sandbox)
are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tamma_tools.errors import *  # noqa: F403
from tamma_tools.errors import __all__ as _errors_all
from tamma_tools.events import CallObserver, CallRecord, Outcome
from tamma_tools.function_tool import FunctionTool, tool, tool_from_function
from tamma_tools.manager import (
    FunctionCallingManager,
    ManagerConfig,
    Policy,
    ensure_tool_messages,
)
from tamma_tools.registry import ImportReport, RegisteredTool, ToolRegistry
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.schema import (
    ArgumentsValidator,
    compile_validator,
)
from tamma_tools.schema.definition import (
    assert_valid_definition,
    validate_tool_definition,
    validate_tool_list,
)
from tamma_tools.schema.strict import StrictReport, to_strict_schema
from tamma_tools.types import (
    CallerContext,
    FunctionCall,
    FunctionDefinition,
    FunctionResult,
    Isolation,
    RateLimit,
    ResourceLimits,
    ToolDefinition,
    ToolMetadata,
    ValidationIssue,
    ValidationResult,
)

if TYPE_CHECKING:
    from tamma_tools.builtin import register_builtin_tools
    from tamma_tools.config import Settings, load_settings
    from tamma_tools.manager.ratelimit import InMemoryRateLimiter, RateLimiter
    from tamma_tools.manager.ratelimit_redis import RedisRateLimiter
    from tamma_tools.observability import AuditLog, Observability, SQLiteAuditLog, open_audit_log
    from tamma_tools.provider import (
        CompletionResult,
        FunctionCallingConfig,
        MessageRequest,
        MessageStream,
        OpenAIProvider,
        ProviderConfig,
        StreamAccumulator,
    )
    from tamma_tools.runtime import Runtime
    from tamma_tools.sandbox.network import NetworkPolicy
    from tamma_tools.sandbox.paths import PathPolicy
    from tamma_tools.sandbox.sandbox import ExecutionSandbox

__version__ = "0.1.0"

_LAZY = {
    "OpenAIProvider": "tamma_tools.provider",
    "ProviderConfig": "tamma_tools.provider",
    "FunctionCallingConfig": "tamma_tools.provider",
    "MessageRequest": "tamma_tools.provider",
    "MessageStream": "tamma_tools.provider",
    "CompletionResult": "tamma_tools.provider",
    "StreamAccumulator": "tamma_tools.provider",
    "Observability": "tamma_tools.observability",
    "AuditLog": "tamma_tools.observability",
    "SQLiteAuditLog": "tamma_tools.observability",
    "open_audit_log": "tamma_tools.observability",
    "ExecutionSandbox": "tamma_tools.sandbox.sandbox",
    "PathPolicy": "tamma_tools.sandbox.paths",
    "NetworkPolicy": "tamma_tools.sandbox.network",
    "register_builtin_tools": "tamma_tools.builtin",
    "InMemoryRateLimiter": "tamma_tools.manager.ratelimit",
    "RateLimiter": "tamma_tools.manager.ratelimit",
    "RedisRateLimiter": "tamma_tools.manager.ratelimit_redis",
    "Runtime": "tamma_tools.runtime",
    "Settings": "tamma_tools.config",
    "load_settings": "tamma_tools.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tamma_tools' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    *_errors_all,
    "AuditLog",
    "CompletionResult",
    "InMemoryRateLimiter",
    "MessageStream",
    "NetworkPolicy",
    "PathPolicy",
    "RateLimiter",
    "RedisRateLimiter",
    "SQLiteAuditLog",
    "Settings",
    "load_settings",
    "open_audit_log",
    "register_builtin_tools",
    "ArgumentsValidator",
    "CallObserver",
    "CallRecord",
    "CallerContext",
    "ExecutionSandbox",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionCallingManager",
    "FunctionDefinition",
    "FunctionResult",
    "FunctionTool",
    "ImportReport",
    "Isolation",
    "ManagerConfig",
    "MessageRequest",
    "Observability",
    "OpenAIProvider",
    "Outcome",
    "Policy",
    "ProviderConfig",
    "RateLimit",
    "RegisteredTool",
    "ResourceLimits",
    "Runtime",
    "SandboxConfig",
    "StreamAccumulator",
    "StrictReport",
    "ToolDefinition",
    "ToolMetadata",
    "ToolRegistry",
    "ValidationIssue",
    "ValidationResult",
    "__version__",
    "assert_valid_definition",
    "compile_validator",
    "ensure_tool_messages",
    "to_strict_schema",
    "tool",
    "tool_from_function",
    "validate_tool_definition",
    "validate_tool_list",
]
