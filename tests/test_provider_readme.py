"""The README's provider example, run as a test against the loopback server so it cannot drift.

``EXAMPLE`` is the text the README shows; the test executes exactly that text with ``BASE_URL``
pointing at the local OpenAI-compatible server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.openai_server import OpenAIServer, call, tool_messages

EXAMPLE = '''
import asyncio

from tamma_tools.function_tool import tool
from tamma_tools.manager import FunctionCallingManager
from tamma_tools.provider import (
    MessageRequest, OpenAIProvider, ProviderConfig, TextDelta, ToolCallDone, ToolResult,
)


@tool(isolation="in_process")
async def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Sunny and 21 °C in {city}"


async def main() -> None:
    manager = FunctionCallingManager()
    manager.register_tool(get_weather)
    provider = OpenAIProvider(
        ProviderConfig(base_url=BASE_URL, api_key="sk-...", model="gpt-4o-mini"),
        manager=manager,
    )
    request = MessageRequest(messages=[{"role": "user", "content": "Weather in Oslo?"}])

    # Streaming: typed events while the loop runs the tool calls.
    async with provider.send_message(request) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                print(event.text, end="")
            elif isinstance(event, ToolCallDone):
                print(f"-> {event.call.name}({event.call.arguments})")
            elif isinstance(event, ToolResult):
                print(f"<- {event.result.content_text()}")
    history = stream.messages  # valid to send again, even after an early close

    # Not streaming: the final message, every tool result and the whole history.
    result = await provider.complete(request)
    print(result.content, result.stop_reason, len(result.messages))
    await provider.aclose()


asyncio.run(main())
'''


def script(body: dict[str, Any]) -> dict[str, Any]:
    results = tool_messages(body)
    if not results:
        return {"tool_calls": [call("call_1", "get_weather", {"city": "Oslo"})]}
    return {"content": f"It is {results[0]['content'].split(' in ')[0].lower()} in Oslo."}


def test_the_readme_example_runs(capsys: Any) -> None:
    with OpenAIServer(script) as server:
        # The example calls asyncio.run itself, so run it in a thread with no loop running.
        namespace = {"BASE_URL": server.base_url, "__name__": "readme_example"}
        asyncio.run(asyncio.to_thread(exec, EXAMPLE, namespace))
    out = capsys.readouterr().out
    assert '-> get_weather({"city":"Oslo"})' in out
    assert "<- Sunny and 21 °C in Oslo" in out
    assert "It is sunny and 21 °c in Oslo. final 4" in out
    assert len(server.requests) == 4  # two turns streamed, two not
