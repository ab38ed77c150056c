"""The ``run_command`` executor path: an allowlisted binary, an argv list, a tree that dies.

Off by default (``SandboxConfig.enable_system_commands``). When on:

* ``argv`` is a list of strings, never a shell string: nothing is interpreted by a shell, so
  ``;``, ``$(...)`` and globs in an argument are just bytes handed to the binary.
* ``argv[0]`` must be on ``SandboxConfig.allowed_commands``, by bare name (resolved on a fixed
  ``PATH``, never the application's) or by exact absolute path. Relative paths are refused.
* The command runs in the ``process`` sandbox with exec allowed, in the first allowed root or in
  ``cwd`` (a directory the path policy accepts; Landlock keeps the process inside the roots even
  if the directory is swapped after the check). The roots are read-only unless the tool passed
  in declares ``file:write`` (the default tool declares ``file:read``). It runs as PID 1 of a
  fresh PID namespace: killing the call kills every process it started, ``setsid`` daemons
  included (research/sandbox.md §2.2: ``killpg`` misses them).
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tamma_tools.errors import CommandDenied
from tamma_tools.sandbox.config import EffectiveLimits, effective_limits
from tamma_tools.types import CallerContext, ToolDefinition

if TYPE_CHECKING:
    from tamma_tools.sandbox.paths import ResolvedPath
    from tamma_tools.sandbox.sandbox import ExecutionSandbox

__all__ = [
    "COMMANDS_DISABLED_TEXT",
    "COMMAND_NOT_ALLOWED_TEXT",
    "MAX_ARGV_BYTES",
    "resolve_command",
    "run_command",
]

COMMAND_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_ARGV_ITEMS = 1024
MAX_ARGV_BYTES = 128 * 1024

COMMANDS_DISABLED_TEXT = (
    "system commands are disabled; the operator must set "
    "SandboxConfig(enable_system_commands=True) and list the binary in allowed_commands"
)
COMMAND_NOT_ALLOWED_TEXT = "command {name!r} is not allowed; allowed commands are: {allowed}"
BAD_ARGV_TEXT = "argv must be a non-empty list of strings without NUL bytes ({why})"
RELATIVE_TEXT = "command {name!r} is a relative path; use a bare name or an absolute path"
BAD_TIMEOUT_TEXT = (
    "timeout must be a positive number of seconds (longer than {limit:g} is cut to {limit:g}), "
    "got {value!r}"
)

_COMMAND_TOOL = ToolDefinition.model_validate(
    {"type": "function", "function": {"name": "run_command"},
     "metadata": {"permissions": ["system:exec", "file:read"], "isolation": "process"}}
)  # fmt: skip


def resolve_command(argv: Any, *, enabled: bool, allowed: tuple[str, ...]) -> str:
    """The absolute path of the binary ``argv[0]`` names, or ``CommandDenied``."""
    if not enabled:
        raise CommandDenied(COMMANDS_DISABLED_TEXT, rule="commands.disabled")
    if not isinstance(argv, list) or not argv:
        raise CommandDenied(BAD_ARGV_TEXT.format(why="not a non-empty list"), rule="commands.argv")
    if len(argv) > MAX_ARGV_ITEMS:
        raise CommandDenied(BAD_ARGV_TEXT.format(why=f"more than {MAX_ARGV_ITEMS} items"),
                            rule="commands.argv")  # fmt: skip
    size = 0
    for item in argv:
        if not isinstance(item, str) or "\x00" in item:
            raise CommandDenied(BAD_ARGV_TEXT.format(why=f"bad item {item!r:.40}"),
                                rule="commands.argv")  # fmt: skip
        size += len(item.encode("utf-8", "surrogateescape")) + 1
    if size > MAX_ARGV_BYTES:
        raise CommandDenied(BAD_ARGV_TEXT.format(why=f"longer than {MAX_ARGV_BYTES} bytes"),
                            rule="commands.argv")  # fmt: skip
    name = argv[0]
    listing = ", ".join(allowed) or "(none)"
    if "/" in name:
        if not os.path.isabs(name):
            raise CommandDenied(RELATIVE_TEXT.format(name=name), rule="commands.relative")
        if os.path.normpath(name) != name or name not in allowed:
            raise CommandDenied(COMMAND_NOT_ALLOWED_TEXT.format(name=name, allowed=listing),
                                rule="commands.allowlist")  # fmt: skip
        return str(name)
    if name not in allowed:
        raise CommandDenied(COMMAND_NOT_ALLOWED_TEXT.format(name=name, allowed=listing),
                            rule="commands.allowlist")  # fmt: skip
    found = shutil.which(name, path=COMMAND_PATH)
    if found is None:
        raise CommandDenied(f"command {name!r} is allowed but not installed on this machine",
                            rule="commands.missing")  # fmt: skip
    return found


async def run_command(
    sandbox: ExecutionSandbox, argv: list[str], *, context: CallerContext | None = None,
    call_id: str | None = None, limits: EffectiveLimits | None = None,
    tool: ToolDefinition | None = None, cwd: str | None = None, timeout_s: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run ``argv``; returns ``{"exit_code", "stdout", "stderr", "truncated"}``.

    A non-zero exit code is a result, not an error: the model sees it and can react. The deadline,
    memory and output limits are the sandbox's; ``timeout_s`` can only shorten the deadline.
    stdout+stderr beyond ``max_output_bytes`` are cut (``truncated``) and the command is stopped.
    """
    config = sandbox.config
    binary = resolve_command(argv, enabled=config.enable_system_commands,
                             allowed=config.allowed_commands)  # fmt: skip
    ctx = context or CallerContext()
    tool = tool or _COMMAND_TOOL
    if limits is None:
        limits = effective_limits(config, tool.metadata, ctx)
    if timeout_s is not None:
        limits = replace(limits, timeout_s=_checked_timeout(timeout_s, limits.timeout_s))
    workdir = None if cwd is None else str(_checked_cwd(sandbox, cwd))
    # The command's own output is capped inside the child; leave room for the JSON around it.
    limits = replace(limits, max_result_bytes=max(limits.max_result_bytes,
                                                  limits.max_output_bytes * 7 + 4096))  # fmt: skip
    target = {"kind": "command", "argv": list(argv), "binary": binary,
              "max_output_bytes": limits.max_output_bytes, "cwd": workdir}  # fmt: skip
    value: dict[str, Any] = await sandbox._run_command_child(
        call_id=call_id or f"cmd_{uuid.uuid4().hex[:16]}", tool=tool, target=target, context=ctx,
        limits=limits,
    )  # fmt: skip
    return value


def _checked_timeout(value: Any, limit: float) -> float:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value <= 0):  # fmt: skip
        raise CommandDenied(BAD_TIMEOUT_TEXT.format(limit=limit, value=value),
                            rule="commands.timeout")  # fmt: skip
    return min(float(value), limit)


def _checked_cwd(sandbox: ExecutionSandbox, cwd: Any) -> Path:
    """The absolute directory ``cwd`` leads to; the path policy raises ``PathDenied`` otherwise."""
    if not isinstance(cwd, str):
        raise CommandDenied(f"cwd must be a string, got {cwd!r:.40}", rule="commands.cwd")
    resolved: ResolvedPath = sandbox.check_path(cwd, "list")
    return resolved.absolute
