"""tamma-tools: safe, fast, observable function calling for AI agents.

The public surface is re-exported here; submodules hold one concept each (see DESIGN).
"""

from __future__ import annotations

from tamma_tools.errors import *  # noqa: F403
from tamma_tools.errors import __all__ as _errors_all
from tamma_tools.events import CallObserver, CallRecord, Outcome
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.schema.validator import ArgumentsValidator, compile_validator
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

__version__ = "0.1.0"

__all__ = [
    *_errors_all,
    "ArgumentsValidator",
    "CallObserver",
    "CallRecord",
    "CallerContext",
    "FunctionCall",
    "FunctionDefinition",
    "FunctionResult",
    "Isolation",
    "Outcome",
    "RateLimit",
    "ResourceLimits",
    "SandboxConfig",
    "ToolDefinition",
    "ToolMetadata",
    "ValidationIssue",
    "ValidationResult",
    "__version__",
    "compile_validator",
]
