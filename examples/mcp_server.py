"""An MCP server in five lines: every call goes through the manager (policy, limits, audit)."""

from tamma_tools import FunctionCallingManager, tool
from tamma_tools.mcp import build_mcp_server


@tool(isolation="in_process", read_only=True)
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


manager = FunctionCallingManager()
manager.register_tool(shout)
build_mcp_server(manager).run()  # stdio; run(transport="streamable-http") for HTTP
