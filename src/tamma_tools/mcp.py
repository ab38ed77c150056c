"""MCP in both directions, with the official ``mcp`` SDK (optional extra ``tamma-tools[mcp]``).

- ``build_mcp_server(manager)``: an MCP server (stdio or streamable HTTP) exposing the
  registry's tools; every call goes through the manager, so permissions, limits, the sandbox and
  the audit log apply exactly as for a model's call. Tool annotations come from metadata.
- ``import_mcp_tools(manager, session)``: another MCP server's tools registered as ours; their
  annotations become policy defaults (a destructive tool needs approval), so their calls are
  governed like ours.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import orjson

from tamma_tools.errors import ToolCrashed
from tamma_tools.types import CallerContext, ToolDefinition, ToolMetadata

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.server.fastmcp import FastMCP

    from tamma_tools.manager import FunctionCallingManager

__all__ = ["annotations_for", "build_mcp_server", "import_mcp_tools"]

_ids = itertools.count(1)


def annotations_for(defn: ToolDefinition) -> dict[str, Any]:
    """MCP tool annotations derived from our metadata."""
    meta = defn.metadata
    read_only = meta.read_only
    return {
        "readOnlyHint": read_only,
        "destructiveHint": (not read_only) and (meta.destructive or meta.requires_approval),
        "idempotentHint": meta.idempotent,
        "openWorldHint": meta.open_world,
    }


def build_mcp_server(
    manager: FunctionCallingManager,
    *,
    context: CallerContext | None = None,
    name: str = "tamma-tools",
    host: str = "127.0.0.1",
    port: int = 8765,
    show_all: bool = False,
) -> FastMCP:
    """An MCP server over ``manager``'s tools; calls run as ``context`` (deny by default).

    A client is shown only the tools ``context`` may call unless ``show_all`` (calls of the
    others are still refused and audited).
    """
    from mcp import types
    from mcp.server.fastmcp import FastMCP

    server = FastMCP(name, host=host, port=port)
    lowlevel = server._mcp_server
    caller = context or CallerContext(user_id="mcp")

    async def list_tools() -> list[types.Tool]:
        out: list[types.Tool] = []
        for entry in manager.registry.all():
            if not entry.callable:
                continue
            perms = frozenset(entry.definition.metadata.permissions)
            if not show_all and manager.policy.missing(caller, perms):
                continue  # a client sees only what it may call
            fn = entry.definition.function
            out.append(
                types.Tool(
                    name=fn.name,
                    description=fn.description or "",
                    inputSchema=fn.parameters or {"type": "object", "properties": {}},
                    annotations=types.ToolAnnotations(**annotations_for(entry.definition)),
                )
            )
        return out

    async def call_tool(tool_name: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        call = {
            "id": f"mcp_{next(_ids)}",
            "type": "function",
            "function": {"name": tool_name, "arguments": orjson.dumps(arguments or {}).decode()},
        }
        result = await manager.execute_function_call(call, caller)
        text = result.to_message()["content"]
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], isError=not result.success
        )

    lowlevel.list_tools()(list_tools)  # type: ignore[no-untyped-call]
    lowlevel.call_tool(validate_input=False)(call_tool)
    return server


async def import_mcp_tools(
    manager: FunctionCallingManager,
    session: ClientSession,
    *,
    prefix: str = "",
    permissions: list[str] | None = None,
    category: str = "mcp",
) -> list[str]:
    """Register every tool of an initialized MCP ``session``; returns the names registered.

    Policy defaults from annotations: ``readOnlyHint`` makes the tool read-only; a tool that is
    not read-only and not explicitly non-destructive (MCP's default is destructive) requires
    approval; ``openWorldHint`` marks it as talking to the outside world.
    """
    listed = await session.list_tools()
    names: list[str] = []
    for tool in listed.tools:
        hints = tool.annotations
        read_only = bool(hints and hints.readOnlyHint)
        destructive = not read_only and not (hints is not None and hints.destructiveHint is False)
        open_world = bool(hints is None or hints.openWorldHint is not False)
        name = f"{prefix}{tool.name}"
        defn = ToolDefinition.model_validate(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": tool.description or "",
                    "parameters": tool.inputSchema or {"type": "object", "properties": {}},
                },
            }
        )
        defn.metadata = ToolMetadata(
            category=category,
            permissions=list(permissions or [f"mcp:{tool.name}"]),
            isolation="in_process",  # the work happens in the MCP server's process
            read_only=read_only,
            destructive=destructive,
            requires_approval=destructive,
            open_world=open_world,
            tags=["mcp"],
        )
        manager.register_tool(defn, _remote_executor(session, tool.name))
        names.append(name)
    return names


def _remote_executor(session: ClientSession, remote_name: str) -> Any:
    async def call_remote(**arguments: Any) -> str:
        result = await session.call_tool(remote_name, arguments)
        text = "\n".join(getattr(part, "text", "") for part in result.content)
        if result.isError:
            raise ToolCrashed(f"the MCP tool {remote_name!r} failed: {text[:500]}")
        return text

    return call_remote
