"""Chat Completions turns: ``/chat/completions``, streamed into the accumulator or read whole."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from tamma_tools.errors import ProviderError, ProviderStreamError
from tamma_tools.provider.accumulator import StreamAccumulator, message_from_completion
from tamma_tools.provider.events import StreamEvent
from tamma_tools.provider.transport import RawTransport
from tamma_tools.provider.turn import TurnOutcome

__all__ = ["ChatTurns"]

PATH = "/chat/completions"


class ChatTurns:
    """``turn(body, stream)`` for the Chat Completions API over one transport."""

    __slots__ = ("transport",)

    def __init__(self, transport: RawTransport) -> None:
        self.transport = transport

    async def __call__(
        self, body: dict[str, Any], stream: bool
    ) -> AsyncGenerator[list[StreamEvent] | TurnOutcome, None]:
        if not stream:
            data = await self.transport.post_json(PATH, body)
            try:
                message, calls, finish_reason, usage = message_from_completion(data)
            except ProviderError as exc:
                # A 200 body carrying {"error": ...} (Groq, OpenRouter, LiteLLM proxies).
                raise ProviderStreamError(exc.message, status=200, body=data) from exc
            yield TurnOutcome(message, calls, finish_reason, usage)
            return
        acc = StreamAccumulator()
        feed = acc.feed_text
        pieces = self.transport.stream_bytes(PATH, body)
        try:
            async for piece in pieces:
                events = feed(piece)
                if events:
                    yield events
                if acc.done or acc.error is not None:
                    break  # [DONE] or a failed turn: do not wait for the server to close
        finally:
            await pieces.aclose()
        events = acc.finish()
        if events:
            yield events
        yield TurnOutcome(acc.message(), acc.tool_calls, acc.finish_reason, acc.usage, acc.error)
