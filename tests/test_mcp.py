"""MCP in both directions, with the official MCP client and server over stdio."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tamma_tools import FunctionCallingManager
from tamma_tools.mcp import import_mcp_tools
from tamma_tools.observability import SQLiteAuditLog

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

GOVERNED_SERVER = textwrap.dedent(
    """
    import sys
    from tamma_tools import CallerContext, FunctionCallingManager, Observability, tool
    from tamma_tools.mcp import build_mcp_server

    @tool(isolation="in_process", read_only=True, permissions=["notes:read"])
    def read_note(name: str) -> str:
        '''Read a note.'''
        return f"note {name}: buy milk"

    @tool(isolation="in_process", destructive=True, permissions=["notes:delete"])
    def delete_note(name: str) -> str:
        '''Delete a note.'''
        return "deleted"

    obs = Observability(audit=sys.argv[1], metrics=False, tracing=False)
    manager = FunctionCallingManager(observers=obs.observers)
    manager.register_tool(read_note)
    manager.register_tool(delete_note)
    caller = CallerContext(user_id="mcp-client", permissions=frozenset({"notes:read"}))
    try:
        build_mcp_server(manager, context=caller, show_all=True).run()
    finally:
        obs.close()
    """
)


async def test_example_server_lists_and_calls_a_tool() -> None:
    params = StdioServerParameters(command=sys.executable, args=[str(EXAMPLES / "mcp_server.py")])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = (await session.list_tools()).tools
        assert [t.name for t in tools] == ["shout"]
        assert tools[0].annotations is not None and tools[0].annotations.readOnlyHint is True
        result = await session.call_tool("shout", {"text": "hi"})
        assert not result.isError and result.content[0].text == "HI"  # type: ignore[union-attr]
        bad = await session.call_tool("shout", {"text": 5})
        assert bad.isError and "schema_violation" in bad.content[0].text  # type: ignore[union-attr]


async def test_calls_are_governed_and_audited(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(GOVERNED_SERVER)
    audit_path = tmp_path / "audit.db"
    params = StdioServerParameters(command=sys.executable, args=[str(script), str(audit_path)])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {t.name: t for t in (await session.list_tools()).tools}
        assert set(names) == {"read_note", "delete_note"}
        delete_hints = names["delete_note"].annotations
        assert delete_hints is not None and delete_hints.destructiveHint is True
        ok = await session.call_tool("read_note", {"name": "shopping"})
        assert not ok.isError and "buy milk" in ok.content[0].text  # type: ignore[union-attr]
        denied = await session.call_tool("delete_note", {"name": "shopping"})
        assert denied.isError and "permission_denied" in denied.content[0].text  # type: ignore[union-attr]
    log = SQLiteAuditLog(str(audit_path))
    try:
        outcomes = [(e.tool, e.outcome, e.user_id) for e in log.query()]
        assert ("read_note", "executed", "mcp-client") in outcomes
        assert ("delete_note", "denied", "mcp-client") in outcomes
        assert log.verify().ok
    finally:
        log.close()


async def test_imported_mcp_tools_are_governed_like_ours() -> None:
    params = StdioServerParameters(command=sys.executable, args=[str(EXAMPLES / "mcp_server.py")])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        manager = FunctionCallingManager()
        names = await import_mcp_tools(manager, session, prefix="remote_")
        assert names == ["remote_shout"]
        meta = manager.registry.get("remote_shout").definition.metadata
        assert meta.read_only and not meta.requires_approval and meta.permissions == ["mcp:shout"]
        call = {"id": "c1", "function": {"name": "remote_shout", "arguments": '{"text": "yo"}'}}
        denied = await manager.execute_function_call(call)
        assert denied.error_code == "permission_denied"
        from tamma_tools import CallerContext

        ctx = CallerContext(permissions=frozenset({"mcp:shout"}))
        ok = await manager.execute_function_call(call, ctx)
        assert ok.success and ok.result == "YO"
