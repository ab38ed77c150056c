"""``tamma-tools serve mcp``: expose the registry's tools over MCP, every call governed."""

from __future__ import annotations

import click

from tamma_tools.cli._common import State, fail, handle_errors, pass_state


@click.group()
def serve() -> None:
    """Serve the tools to other programs."""


@serve.command("mcp")
@click.option(
    "--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@pass_state
@handle_errors
def serve_mcp(state: State, transport: str, host: str, port: int) -> None:
    """Run an MCP server (stdio or streamable HTTP) over the configured tools."""
    try:
        from tamma_tools.mcp import build_mcp_server
    except ImportError:
        fail("MCP support needs the optional extra: pip install 'tamma-tools[mcp]'")
        return
    with state.runtime() as rt:
        server = build_mcp_server(
            rt.manager, context=rt.settings.caller_context(), host=host, port=port
        )
        server.run(transport="stdio" if transport == "stdio" else "streamable-http")
