"""``tamma-tools chat [PROMPT]``: the full loop against any OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import click

from tamma_tools.cli._common import EXIT_CONFIG, State, console, fail, handle_errors, pass_state


async def _turn(
    provider: Any, messages: list[dict[str, Any]], context: Any
) -> list[dict[str, Any]]:
    from tamma_tools.provider import MessageRequest
    from tamma_tools.provider.events import (
        StreamError,
        TextDelta,
        ToolCallDone,
        ToolResult,
    )

    stream = provider.send_message(MessageRequest(messages=messages), context)
    async for event in stream:
        if isinstance(event, TextDelta):
            console.print(event.text, end="", soft_wrap=True)
        elif isinstance(event, ToolCallDone):
            console.print(
                f"\n[cyan]→ {event.call.function.name}[/] {event.call.function.arguments[:120]}"
            )
        elif isinstance(event, ToolResult):
            r = event.result
            mark = "[green]✓[/]" if r.success else f"[red]✗ {r.error_code}[/]"
            console.print(f"{mark} {r.to_message()['content'][:200]}", soft_wrap=True)
        elif isinstance(event, StreamError):
            console.print(f"\n[red]error[/] {event.message}")
    console.print()
    # The whole history, tool calls and results included: valid to send with the next prompt.
    return list(stream.messages)


@click.command()
@click.argument("prompt", required=False)
@click.option("--base-url", envvar="OPENAI_BASE_URL", help="OpenAI-compatible server URL.")
@click.option("--model", "-m", default=None, help="Model name (default: [model] model).")
@pass_state
@handle_errors
def chat(state: State, prompt: str | None, base_url: str | None, model: str | None) -> None:
    """Chat with tools. Interactive when no PROMPT is given (empty line or Ctrl-D quits)."""
    from tamma_tools.provider import OpenAIProvider, ProviderConfig

    settings = state.settings()
    key = os.environ.get(settings.model.api_key_env)
    base = base_url or settings.model.base_url
    if not key and base is None:
        fail(
            f"set {settings.model.api_key_env} (and --base-url for a non-OpenAI server)",
            EXIT_CONFIG,
        )

    async def run() -> None:
        with state.runtime() as rt:
            provider = OpenAIProvider(
                ProviderConfig(api_key=key or "not-needed", base_url=base,
                               model=model or settings.model.model),
                manager=rt.manager,
            )  # fmt: skip
            context = rt.settings.caller_context()
            messages: list[dict[str, Any]] = []
            try:
                if prompt:
                    await _turn(provider, [{"role": "user", "content": prompt}], context)
                    return
                while True:
                    try:
                        line = (await asyncio.to_thread(input, "you> ")).strip()
                    except EOFError:
                        break
                    if not line:
                        break
                    messages = await _turn(
                        provider, [*messages, {"role": "user", "content": line}], context
                    )
            finally:
                await provider.aclose()

    asyncio.run(run())
