"""Built-in tools and ``register_builtin_tools``, which wires them to the sandbox policies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tamma_tools.builtin.commands import RUN_COMMAND_DEFINITION, run_command_tool
from tamma_tools.builtin.files import (
    LIST_FILES_DEFINITION,
    READ_FILE_DEFINITION,
    WRITE_FILE_DEFINITION,
    content_budget,
    file_tools,
)
from tamma_tools.builtin.http import HTTP_REQUEST_DEFINITION, http_request_tool
from tamma_tools.builtin.system import SYSTEM_INFO_DEFINITION, get_system_info
from tamma_tools.errors import ConfigError
from tamma_tools.sandbox.config import SandboxConfig
from tamma_tools.sandbox.network import NetworkPolicy
from tamma_tools.sandbox.paths import PathPolicy

__all__ = [
    "BUILTIN_TOOL_NAMES",
    "HTTP_REQUEST_DEFINITION",
    "LIST_FILES_DEFINITION",
    "READ_FILE_DEFINITION",
    "RUN_COMMAND_DEFINITION",
    "SYSTEM_INFO_DEFINITION",
    "WRITE_FILE_DEFINITION",
    "register_builtin_tools",
]

BUILTIN_TOOL_NAMES = (
    "read_file",
    "write_file",
    "list_files",
    "get_system_info",
    "http_request",
    "run_command",
)


def register_builtin_tools(
    manager_or_registry: Any,
    *,
    config: SandboxConfig | None = None,
    roots: Sequence[Path | str] | None = None,
    network: NetworkPolicy | None = None,
    include: Iterable[str] | None = None,
) -> list[str]:
    """Register the built-ins under the policies ``config`` describes; return their names.

    ``roots`` overrides ``config.allowed_paths``. ``http_request`` is always registered: while
    the network is disabled it refuses every URL and says which setting enables it, which
    teaches a model more than a missing tool. ``run_command`` needs both
    ``config.enable_system_commands`` and a manager (its executor runs in ``manager.sandbox``).
    """
    cfg = config or getattr(manager_or_registry, "sandbox_config", None) or SandboxConfig()
    wanted = set(BUILTIN_TOOL_NAMES if include is None else include)
    unknown = wanted - set(BUILTIN_TOOL_NAMES)
    if unknown:
        raise ConfigError(
            f"unknown built-in tool(s) {sorted(unknown)}; choose from {list(BUILTIN_TOOL_NAMES)}"
        )
    registry = getattr(manager_or_registry, "registry", manager_or_registry)
    tools: list[tuple[Any, Any]] = []
    if wanted & {"read_file", "write_file", "list_files"}:
        paths = PathPolicy(
            cfg.allowed_paths if roots is None else tuple(Path(r) for r in roots),
            cfg.blocked_paths,
            enabled=cfg.enable_file_system_access,
        )
        tools += [t for t in file_tools(paths, cfg) if t[0].function.name in wanted]
    if "get_system_info" in wanted:
        tools.append((SYSTEM_INFO_DEFINITION, get_system_info))
    if "http_request" in wanted:
        policy = network or NetworkPolicy.from_config(cfg)
        tools.append(
            http_request_tool(
                policy,
                max_response_bytes=content_budget(cfg),
                max_body_bytes=cfg.max_file_size_bytes,
            )
        )
    if "run_command" in wanted and cfg.enable_system_commands:
        if not hasattr(manager_or_registry, "sandbox"):
            raise ConfigError(
                "run_command needs a FunctionCallingManager (its sandbox runs the command); "
                "pass the manager, not a registry"
            )
        tools.append(run_command_tool(manager_or_registry.sandbox))
    names: list[str] = []
    for definition, executor in tools:
        registry.register(definition, executor)
        names.append(definition.function.name)
    return names
