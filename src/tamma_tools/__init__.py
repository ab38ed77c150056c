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
    from tamma_tools.observability import Observability
    from tamma_tools.provider import (
        FunctionCallingConfig,
        MessageRequest,
        OpenAIProvider,
        ProviderConfig,
        StreamAccumulator,
    )
    from tamma_tools.runtime import Runtime
    from tamma_tools.sandbox.sandbox import ExecutionSandbox

__version__ = "0.1.0"

_LAZY = {
    "OpenAIProvider": "tamma_tools.provider",
    "ProviderConfig": "tamma_tools.provider",
    "FunctionCallingConfig": "tamma_tools.provider",
    "MessageRequest": "tamma_tools.provider",
    "StreamAccumulator": "tamma_tools.provider",
    "Observability": "tamma_tools.observability",
    "ExecutionSandbox": "tamma_tools.sandbox.sandbox",
    "Runtime": "tamma_tools.runtime",
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
