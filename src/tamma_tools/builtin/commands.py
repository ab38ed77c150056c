"""The ``run_command`` built-in tool: the model asks for an argv, the sandbox runs it.

Opt-in twice: the tool must be registered, and the sandbox config must enable commands and list
the binaries (``SandboxConfig.enable_system_commands`` / ``allowed_commands``). The executor itself
is trusted glue and runs in-process; the command runs in the ``process`` sandbox with a PID
namespace (``tamma_tools.sandbox.commands``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tamma_tools.types import CallerContext, ToolDefinition

if TYPE_CHECKING:
    from tamma_tools.sandbox.sandbox import ExecutionSandbox

__all__ = ["RUN_COMMAND_DEFINITION", "run_command_tool"]

RUN_COMMAND_DEFINITION = ToolDefinition.model_validate(
    {
        "type": "function",
        "function": {
            "name": "run_command",
            "description": (
                "Run one allowed program with arguments (no shell: pipes, redirects and globs "
                "are not interpreted) in the workspace directory or a directory inside it. "
                "Returns exit_code, stdout, stderr and whether the output was truncated."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "argv": {
                        "type": "array",
                        "items": {"type": "string"},
                        "minItems": 1,
                        "maxItems": 256,
                        "description": "Program name followed by its arguments, e.g. "
                        '["ls", "-la"].',
                    },
                    "cwd": {
                        "type": ["string", "null"],
                        "description": "Directory to run in, relative to the workspace root "
                        "(null: the workspace root).",
                    },
                    "timeout": {
                        "type": ["number", "null"],
                        "description": "Stop the command after this many seconds (null: the "
                        "operator's limit; a longer value is cut to that limit).",
                    },
                },
                "required": ["argv", "cwd", "timeout"],
                "additionalProperties": False,
            },
            "strict": True,
        },
        "metadata": {
            "category": "system",
            "permissions": ["system:exec", "file:read"],
            "isolation": "in_process",
            "destructive": True,
            "tags": ["builtin", "commands"],
        },
    }
)


def run_command_tool(
    sandbox: ExecutionSandbox,
) -> tuple[ToolDefinition, Callable[..., Awaitable[dict[str, Any]]]]:
    """The definition and an executor bound to ``sandbox`` (register both with the manager)."""

    async def run_command(
        argv: list[str], context: CallerContext, cwd: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the model-facing argument name
    ) -> dict[str, Any]:  # fmt: skip
        return await sandbox.run_command(argv, context=context, tool=RUN_COMMAND_DEFINITION,
                                         cwd=cwd, timeout_s=timeout)  # fmt: skip

    return RUN_COMMAND_DEFINITION, run_command
