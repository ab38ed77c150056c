"""``tamma-tools exec RESPONSE``: run the tool calls of a saved response under the policy."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from tamma_tools.cli._common import EXIT_PROBLEM, State, console, fail, handle_errors, pass_state


def calls_from_file(path: Path) -> list[Any]:
    """Tool calls from a chat completion (JSON) or a raw SSE stream, as saved from a server."""
    from tamma_tools.manager.calls import extract_calls
    from tamma_tools.provider.accumulator import StreamAccumulator

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        fail(f"{path}: file not found")
        raise AssertionError from None  # unreachable
    head = data.lstrip()[:6]
    if head.startswith((b"data:", b":", b"event:")):
        acc = StreamAccumulator()
        acc.feed_text(data)
        acc.finish()
        if acc.error is not None:
            console.print(f"[yellow]warning[/] the stream reported an error: {acc.error.message}")
        return [call.to_openai() for call in acc.tool_calls]
    try:
        body = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{path}: neither a JSON chat completion nor an SSE stream ({exc})")
    try:
        return extract_calls(body)
    except TypeError as exc:
        fail(f"{path}: {exc}")
        raise AssertionError from None  # unreachable


@click.command("exec")
@click.argument("response", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the tool messages as JSON.")
@pass_state
@handle_errors
def exec_command(state: State, response: Path, as_json: bool) -> None:
    """Execute the tool calls in RESPONSE (JSON completion or SSE stream) and print the tool
    messages. Exit 1 when any call was refused or failed."""
    calls = calls_from_file(response)
    with state.runtime() as rt:
        context = rt.settings.caller_context()
        results = asyncio.run(rt.manager.process_function_calls(calls, context))
    messages = [r.to_message() for r in results]
    if as_json:
        click.echo(json.dumps(messages, indent=2, ensure_ascii=False))
    else:
        if not results:
            console.print("no tool calls in the response")
        for r in results:
            status = "[green]ok[/]" if r.success else f"[red]{r.error_code}[/]"
            console.print(f"{status} {r.function_name} ({r.tool_call_id})")
            console.print(f"   {r.to_message()['content'][:500]}", soft_wrap=True)
    if any(not r.success for r in results):
        sys.exit(EXIT_PROBLEM)
