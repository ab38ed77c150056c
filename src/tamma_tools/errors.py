"""Exceptions with stable machine-readable codes.

Every error carries a ``code`` (a stable string callers and tests can match on) and a message
written so that a model reading it in a tool message knows what to change. Callers can catch a
family (``PolicyDenied``) or one case (``PathDenied``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApprovalRequired",
    "ArgumentError",
    "ArgumentValidationError",
    "ArgumentsTooDeep",
    "ArgumentsTooLarge",
    "CallRejected",
    "CommandDenied",
    "ConfigError",
    "DuplicateToolError",
    "ExecutionCancelled",
    "ExecutionError",
    "ExecutorMissing",
    "ExecutorNotTransferable",
    "InvalidArgumentsJSON",
    "LoopDetected",
    "MaxTurnsExceeded",
    "NetworkDenied",
    "OutputNotSerializable",
    "PathDenied",
    "PermissionDenied",
    "PolicyDenied",
    "ProviderAuthError",
    "ProviderBadRequest",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderStreamError",
    "ProviderUnavailable",
    "RateLimited",
    "RegistryError",
    "RegistryFullError",
    "ResourceLimitExceeded",
    "RetryBudgetExhausted",
    "SandboxUnavailable",
    "SandboxViolation",
    "StreamInterrupted",
    "TammaToolsError",
    "ToolCrashed",
    "ToolDefinitionError",
    "ToolDisabled",
    "ToolNotFound",
    "ToolTimeout",
]


class TammaToolsError(Exception):
    """Base of every error raised by tamma-tools."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class ConfigError(TammaToolsError):
    """A configuration value is invalid (file, key and what is allowed are in the message)."""

    code = "config_invalid"


# --- definitions and registry -------------------------------------------------------------


class ToolDefinitionError(TammaToolsError):
    """A tool definition breaks OpenAI's rules or ours; ``issues`` lists every violation."""

    code = "invalid_definition"

    def __init__(self, message: str, *, issues: list[Any] | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.issues: list[Any] = list(issues or [])


class RegistryError(TammaToolsError):
    """A registry operation cannot be done."""

    code = "registry_error"


class DuplicateToolError(RegistryError):
    """A tool with this name is already registered."""

    code = "duplicate_tool"


class RegistryFullError(RegistryError):
    """The registry holds ``max_tools`` tools already."""

    code = "registry_full"


class ToolNotFound(RegistryError):
    """No tool with this name is registered."""

    code = "unknown_tool"


class ToolDisabled(RegistryError):
    """The tool is registered but disabled."""

    code = "tool_disabled"


class ExecutorMissing(RegistryError):
    """The tool is registered (e.g. imported) but no executor is bound to it."""

    code = "executor_missing"


# --- arguments ----------------------------------------------------------------------------


class ArgumentError(TammaToolsError):
    """The model's ``arguments`` string cannot be used as is."""

    code = "invalid_arguments"


class ArgumentsTooLarge(ArgumentError):
    """The arguments string is over the size cap (checked before parsing)."""

    code = "arguments_too_large"


class ArgumentsTooDeep(ArgumentError):
    """The arguments nest deeper than the depth cap (checked before parsing)."""

    code = "arguments_too_deep"


class InvalidArgumentsJSON(ArgumentError):
    """The arguments are not strict JSON (syntax, duplicate keys, NaN, lone surrogates)."""

    code = "invalid_json"


class ArgumentValidationError(ArgumentError):
    """The parsed arguments do not match the tool's schema; ``issues`` lists each violation."""

    code = "schema_violation"

    def __init__(self, message: str, *, issues: list[Any] | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.issues: list[Any] = list(issues or [])


class RetryBudgetExhausted(ArgumentError):
    """The model spent its retries for bad arguments on this tool in this conversation."""

    code = "retry_budget_exhausted"


class LoopDetected(ArgumentError):
    """The same call (tool and arguments) was repeated too often in one conversation."""

    code = "loop_detected"


class MaxTurnsExceeded(TammaToolsError):
    """A function-calling run reached its limit of model turns before a final answer."""

    code = "max_turns_exceeded"


# --- policy denials -----------------------------------------------------------------------


class PolicyDenied(TammaToolsError):
    """Policy refused the call; ``rule`` names the rule that decided."""

    code = "policy_denied"

    def __init__(self, message: str, *, rule: str = "", **details: Any) -> None:
        super().__init__(message, **details)
        self.rule = rule


class PermissionDenied(PolicyDenied):
    """The caller lacks a permission the tool requires."""

    code = "permission_denied"


class PathDenied(PolicyDenied):
    """A path is outside the allowed roots, blocked, or not a kind of file we open."""

    code = "path_denied"


class NetworkDenied(PolicyDenied):
    """A URL or address is refused by the network policy."""

    code = "network_denied"


class RateLimited(PolicyDenied):
    """A rate limit is exhausted; ``retry_after_s`` says when to try again."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after_s = retry_after_s


class ApprovalRequired(PolicyDenied):
    """The tool needs a human's approval before it runs; the call is pending."""

    code = "approval_pending"


class CallRejected(PolicyDenied):
    """A human rejected a call that needed approval."""

    code = "approval_rejected"


class SandboxUnavailable(PolicyDenied):
    """An isolation layer the configuration needs is missing on this machine."""

    code = "sandbox_unavailable"


class SandboxViolation(PolicyDenied):
    """An isolated tool tried something its sandbox forbids and the kernel refused it."""

    code = "sandbox_violation"


class CommandDenied(PolicyDenied):
    """``run_command`` was refused: commands are off, or the binary is not on the allowlist."""

    code = "command_denied"


# --- execution ----------------------------------------------------------------------------


class ExecutionError(TammaToolsError):
    """The tool ran (or tried to) and did not produce a usable result."""

    code = "execution_failed"


class ToolTimeout(ExecutionError):
    """The tool ran past its deadline and was stopped."""

    code = "timeout"


class ResourceLimitExceeded(ExecutionError):
    """The tool hit a memory, CPU, file-size, process or output limit."""

    code = "resource_limit"


class ToolCrashed(ExecutionError):
    """The tool raised or its process died."""

    code = "tool_error"


class OutputNotSerializable(ExecutionError):
    """The tool returned a value that cannot be turned into JSON."""

    code = "output_not_serializable"


class ExecutorNotTransferable(ExecutionError):
    """An isolated tool's executor can be neither imported by path nor cloudpickled."""

    code = "executor_not_transferable"


class ExecutionCancelled(ExecutionError):
    """The call was cancelled before it finished."""

    code = "cancelled"


# --- provider -----------------------------------------------------------------------------


class ProviderError(TammaToolsError):
    """The model server answered with an error, or its stream broke."""

    code = "provider_error"

    def __init__(
        self, message: str, *, status: int | None = None, body: Any = None, **details: Any
    ) -> None:
        super().__init__(message, **details)
        self.status = status
        """The HTTP status, when the server sent one."""
        self.body = body
        """The server's error body (parsed JSON when it was JSON), kept as the cause."""


class ProviderAuthError(ProviderError):
    """The server refused the credentials (HTTP 401 or 403)."""

    code = "provider_auth"


class ProviderRateLimited(ProviderError):
    """The server's rate limit or quota is exhausted (HTTP 429) after the SDK's retries."""

    code = "provider_rate_limited"


class ProviderBadRequest(ProviderError):
    """The server rejected the request itself (HTTP 400, 404, 409, 413, 422)."""

    code = "provider_bad_request"


class ProviderUnavailable(ProviderError):
    """The server failed (HTTP 5xx), timed out or could not be reached, after the SDK's retries."""

    code = "provider_unavailable"


class StreamInterrupted(ProviderError):
    """The response stream ended before the turn was complete (connection cut, no finish)."""

    code = "stream_interrupted"


class ProviderStreamError(ProviderError):
    """The server reported an error inside a stream or a 200 body, or sent an unreadable chunk."""

    code = "provider_stream_error"
