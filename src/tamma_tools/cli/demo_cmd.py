"""``tamma-tools demo``: the whole loop, offline, against a scripted stand-in model.

A scripted model is served over real HTTP on loopback and reached through the real ``openai``
SDK and provider loop. It asks for five built-in tool calls in parallel against a throwaway
workspace; two of them are refused by the policy. Every decision lands in the audit log.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tamma_tools.cli._common import State, console, handle_errors, pass_state

WORKSPACE_FILES = {
    "notes/todo.md": "# To do\n\n- [ ] write the release notes\n- [ ] review the audit log\n"
    "- [ ] rotate the staging keys\n",
    "docs/guide.txt": "tamma-tools demo workspace. Only this folder is visible to the tools.\n",
    ".env": "API_KEY=sk-demo-not-a-real-key\n",
}


def make_workspace(root: Path) -> Path:
    workspace = root / "workspace"
    for rel, text in WORKSPACE_FILES.items():
        path = workspace / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return workspace


def _describe_args(arguments: str) -> str:
    return arguments if len(arguments) <= 70 else arguments[:67] + "..."


async def run_demo(workdir: Path, *, show: bool = True) -> dict[str, Any]:
    """Run the scripted conversation; returns what happened (used by the tests too)."""
    from tamma_tools.config import parse_settings
    from tamma_tools.demo.scripted_model import ScriptedModelServer
    from tamma_tools.provider import MessageRequest, OpenAIProvider, ProviderConfig
    from tamma_tools.provider.events import FinalMessage, TextDelta, ToolCallDone, ToolResult
    from tamma_tools.runtime import Runtime

    workspace = make_workspace(workdir)
    settings = parse_settings(
        {
            "sandbox": {"roots": [str(workspace)], "blocked_paths": [".env", "**/.env"]},
            "caller": {"user_id": "demo-user", "session_id": "demo", "roles": ["assistant"]},
            "roles": {"assistant": ["file:read", "file:write", "network:request", "system:info"]},
            "audit": {"path": str(workdir / "audit.db")},
        },
        source="demo",
        base_dir=workdir,
    )
    calls: dict[str, Any] = {}
    results: list[Any] = []
    final_text = ""
    with ScriptedModelServer() as server, Runtime(settings) as rt:
        provider = OpenAIProvider(
            ProviderConfig(api_key="demo-key-not-real", base_url=server.base_url,
                           model="scripted-demo-model"),
            manager=rt.manager,
        )  # fmt: skip
        request = MessageRequest(
            messages=[{"role": "user", "content": "Tidy up my workspace and summarise my to-dos."}]
        )
        async for event in provider.send_message(request, rt.settings.caller_context()):
            if isinstance(event, ToolCallDone):
                calls[event.call.id] = event.call
                if show:
                    args = escape(_describe_args(event.call.function.arguments))
                    console.print(f"  [cyan]model asks[/] {event.call.function.name}({args})",
                                  soft_wrap=True)  # fmt: skip
            elif isinstance(event, ToolResult):
                r = event.result
                results.append(r)
                if show:
                    if r.success:
                        text = escape(" ".join(r.to_message()["content"].split())[:80])
                        console.print(f"  [green]executed[/] {r.function_name}: {text}...",
                                      soft_wrap=True)  # fmt: skip
                    else:
                        why = escape(f"[{r.error_code}] {r.error}")
                        console.print(f"  [red]refused [/] {r.function_name}: {why}",
                                      soft_wrap=True)  # fmt: skip
            elif isinstance(event, TextDelta):
                final_text += event.text
            elif isinstance(event, FinalMessage):
                final_text = event.message.get("content") or final_text
        await provider.aclose()
        assert rt.observability is not None and rt.observability.audit is not None
        audit = rt.observability.audit
        summary = audit.summary()
        chain = audit.verify()
    return {
        "calls": calls,
        "results": results,
        "final": final_text,
        "summary": summary,
        "chain_ok": chain.ok,
        "chain_checked": chain.checked,
        "workspace": workspace,
        "requests": len(server.requests),
    }


@click.command()
@click.option("--keep", is_flag=True, help="Keep the throwaway workspace and audit log.")
@pass_state
@handle_errors
def demo(state: State, keep: bool) -> None:
    """Run the full loop offline against a scripted model (no API key, no network)."""
    console.print(Panel.fit(
        "[bold]tamma-tools demo[/]\nThe model here is [bold]scripted[/]: a stand-in served on "
        "127.0.0.1 that always asks for the same tool calls.\nEverything else is real: the openai "
        "SDK over HTTP, streaming, the manager, the sandbox policy and the audit log.",
    ))  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="tamma-demo-"))
    console.print(f"workspace: {tmp / 'workspace'} (files: {', '.join(WORKSPACE_FILES)})\n")
    console.print("[bold]turn 1[/]: the model asks for 5 tools in parallel")
    outcome = asyncio.run(run_demo(tmp))
    console.print(
        f"\n[bold]turn 2[/]: final answer\n  {escape(outcome['final'])}\n", soft_wrap=True
    )
    table = Table(title="audit log summary")
    table.add_column("outcome")
    table.add_column("records", justify="right")
    for name, count in outcome["summary"].items():
        table.add_row(name, str(count))
    console.print(table)
    chain = "intact" if outcome["chain_ok"] else "BROKEN"
    console.print(f"hash chain: {chain} ({outcome['chain_checked']} records verified)")
    if keep:
        console.print(f"kept: {tmp} (audit log: {tmp / 'audit.db'})")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
